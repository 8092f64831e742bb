package dev.memtube.interop;

import dev.memtube.ClosedException;
import dev.memtube.Connection;
import dev.memtube.Direction;
import dev.memtube.Grant;
import dev.memtube.Listener;
import dev.memtube.Memtube;
import dev.memtube.MemtubeException;
import dev.memtube.Message;
import dev.memtube.NoListenerException;
import dev.memtube.Options;
import dev.memtube.Receiver;
import dev.memtube.Sender;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Locale;

/**
 * The Java twin of examples/interop.rs: the same command line, the same
 * deterministic sequence of messages, the same checks and closing line, so
 * that Java can be run against Rust, C, Python, ... between two processes.
 * See examples/interop.rs for the specification. Uses the public API only:
 * received messages are zero-copy views, --send writes each message in place
 * (reserve + commit), --echo forwards each held message straight from the ring
 * and receives the next in one call (sendRecv), and --ping takes the latency
 * path (send from a direct buffer and receive the echo in one call, sendRecv).
 *
 * <pre>
 * interop-java (--listen ADDR | --connect ADDR) ROLE [OPTIONS]
 *   ROLE: --send N | --recv | --serve | --call N | --echo | --ping N | --dump
 *   OPTIONS: --size S (default 256, at least 8) --capacity C (default 65536)
 *            --timeout SECS (default 10) --unchecked --spin
 * </pre>
 *
 * <p>--dump receives until the stream ends and prints every message, checking
 * nothing: {@code msg TYPE HEX} ({@code -} for an empty payload), then
 * {@code end closed}, or {@code end KIND} and exit status 1 on any other error
 * (KIND: the {@link dev.memtube.Status} in lower case, the C status name
 * without MEMTUBE_, e.g. {@code peer_gone}).
 */
public final class Interop {
    private Interop() {}

    private enum Role { SEND, RECV, SERVE, CALL, ECHO, PING, DUMP }

    private static final class Args {
        String listen, connect;
        Role role;
        long n;
        int size = 256;
        int capacity = 1 << 16;
        Duration timeout = Duration.ofSeconds(10);
        boolean unchecked, spin;
    }

    /** FNV-1a, 64-bit. */
    private static long fnv(long h, int b) {
        return (h ^ (b & 0xff)) * 0x0000_0100_0000_01b3L;
    }

    private static final long FNV_START = 0xcbf2_9ce4_8422_2325L;

    /** The length of message {@code i} with payloads of at most {@code size} bytes. */
    private static int length(long i, int size) {
        return 8 + (int) Long.remainderUnsigned(i * 7919, size - 7);
    }

    /** Byte {@code j} (from 8) of message {@code i}. */
    private static byte patternByte(long i, int j) {
        return (byte) (i * 31 + j);
    }

    /** Message {@code i} into {@code buf} (at least {@code size} long); returns its length. */
    private static int message(long i, int size, byte[] buf) {
        int len = length(i, size);
        for (int k = 0; k < 8; k++) buf[k] = (byte) (i >>> (8 * k));
        for (int j = 8; j < len; j++) buf[j] = patternByte(i, j);
        return len;
    }

    static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;

        Failure(String m) {
            super(m);
        }
    }

    private static Args parse(String[] argv) throws Failure {
        Args a = new Args();
        for (int k = 0; k < argv.length; k++) {
            String arg = argv[k];
            switch (arg) {
                case "--unchecked": a.unchecked = true; continue;
                case "--spin": a.spin = true; continue;
                case "--recv": a.role = Role.RECV; continue;
                case "--serve": a.role = Role.SERVE; continue;
                case "--echo": a.role = Role.ECHO; continue;
                case "--dump": a.role = Role.DUMP; continue;
                default: break;
            }
            if (!java.util.List.of("--listen", "--connect", "--send", "--call", "--ping", "--size", "--capacity",
                    "--timeout").contains(arg)) {
                throw new Failure("unknown argument " + arg);
            }
            if (k + 1 >= argv.length) throw new Failure(arg + " needs a value");
            String v = argv[++k];
            try {
                switch (arg) {
                    case "--listen": a.listen = v; break;
                    case "--connect": a.connect = v; break;
                    case "--send": a.role = Role.SEND; a.n = Long.parseUnsignedLong(v); break;
                    case "--call": a.role = Role.CALL; a.n = Long.parseUnsignedLong(v); break;
                    case "--ping": a.role = Role.PING; a.n = Long.parseUnsignedLong(v); break;
                    case "--size": a.size = Integer.parseInt(v); break;
                    case "--capacity": a.capacity = Integer.parseUnsignedInt(v); break;
                    case "--timeout": a.timeout = Duration.ofNanos((long) (Double.parseDouble(v) * 1e9)); break;
                    default: throw new Failure("unknown argument " + arg);
                }
            } catch (NumberFormatException e) {
                throw new Failure("bad value for " + arg + ": " + v);
            }
        }
        if ((a.listen != null) == (a.connect != null)) {
            throw new Failure("give exactly one of --listen ADDR and --connect ADDR");
        }
        if (a.size < 8) throw new Failure("--size must be at least 8");
        if (a.role == null) throw new Failure("give a role: --send N, --recv, --serve, --call N, --echo, --ping N or --dump");
        return a;
    }

    private static Connection open(Args a) throws Exception {
        boolean duplex = a.role == Role.SERVE || a.role == Role.CALL || a.role == Role.ECHO || a.role == Role.PING;
        boolean sends = a.role == Role.SEND;
        boolean listening = a.listen != null;
        Options opts = new Options()
                .capacity(a.capacity)
                .duplex(duplex)
                .direction(sends == listening ? Direction.LISTENER_TO_CONNECTOR : Direction.CONNECTOR_TO_LISTENER)
                .pureSpin(a.spin);
        if (listening) {
            try (Listener l = Memtube.listen(a.listen, opts)) {
                System.out.println("listening");
                System.out.flush();
                return l.accept(a.timeout);
            }
        }
        long until = System.nanoTime() + a.timeout.toNanos();
        while (true) {
            try {
                return Memtube.connect(a.connect, opts);
            } catch (NoListenerException e) {
                if (System.nanoTime() - until >= 0) throw e;
                Thread.sleep(10);
            }
        }
    }

    private static String run(Args a) throws Exception {
        long count = 0, bytes = 0, h = FNV_START;
        long start = 0;
        boolean started = false;
        String extra = "";
        byte[] want = new byte[a.size];
        try (Connection conn = open(a)) {
            switch (a.role) {
                case SEND: {
                    Sender tx = conn.sender();
                    for (long i = 0; i < a.n; i++) {
                        int len = length(i, a.size);
                        try (Grant g = tx.reserve(len, a.timeout)) {
                            ByteBuffer b = g.buffer().order(ByteOrder.LITTLE_ENDIAN);
                            b.putLong(0, i);
                            for (int k = 0; k < 8; k++) h = fnv(h, (int) (i >>> (8 * k)));
                            for (int j = 8; j < len; j++) {
                                byte x = patternByte(i, j);
                                b.put(j, x);
                                h = fnv(h, x);
                            }
                            g.commit(len, (int) i);
                        }
                        if (!started) { start = System.nanoTime(); started = true; }
                        bytes += len;
                        count++;
                    }
                    break;
                }
                case RECV: {
                    Receiver rx = conn.receiver();
                    while (true) {
                        try (Message m = rx.recv(a.timeout)) {
                            if (!started) { start = System.nanoTime(); started = true; }
                            if (a.unchecked) {
                                bytes += m.size();
                                count++;
                                continue;
                            }
                            int len = message(count, a.size, want);
                            ByteBuffer p = m.payload();
                            if (m.typeId() != (int) count || !p.equals(ByteBuffer.wrap(want, 0, len))) {
                                throw new Failure("message " + count + " differs: type id "
                                        + Integer.toUnsignedString(m.typeId()) + ", " + m.size()
                                        + " bytes (expected " + len + " bytes)");
                            }
                            for (int k = 0; k < len; k++) h = fnv(h, p.get(k));
                            bytes += len;
                            count++;
                        } catch (ClosedException e) {
                            break;
                        }
                    }
                    break;
                }
                case SERVE: {
                    long[] st = {0, 0, FNV_START, -1, 0}; // count, bytes, fnv, first bad, start
                    conn.serve((ty, req, reply) -> {
                        if (st[4] == 0) st[4] = System.nanoTime();
                        long c = st[0];
                        int len = message(c, a.size, want);
                        if ((ty != (int) c || !req.equals(ByteBuffer.wrap(want, 0, len))) && st[3] < 0) st[3] = c;
                        int n = req.remaining();
                        long hh = st[2];
                        for (int k = 0; k < n; k++) hh = fnv(hh, req.get(k));
                        st[2] = hh;
                        ByteBuffer out = reply.extend(n);
                        for (int k = 0; k < n; k++) out.put(k, req.get(n - 1 - k));
                        st[1] += n;
                        st[0] = c + 1;
                        return ty + 1;
                    });
                    if (st[3] >= 0) throw new Failure("request " + st[3] + " differs");
                    count = st[0];
                    bytes = st[1];
                    h = st[2];
                    if (st[4] != 0) { start = st[4]; started = true; }
                    break;
                }
                case CALL: {
                    byte[] rev = new byte[a.size];
                    for (long i = 0; i < a.n; i++) {
                        int len = message(i, a.size, want);
                        byte[] req = Arrays.copyOf(want, len);
                        try (Message reply = conn.call((int) i, req, a.timeout)) {
                            if (!started) { start = System.nanoTime(); started = true; }
                            for (int k = 0; k < len; k++) rev[k] = want[len - 1 - k];
                            if (reply.typeId() != (int) (i + 1) || !reply.payload().equals(ByteBuffer.wrap(rev, 0, len))) {
                                throw new Failure("reply " + i + " differs");
                            }
                        }
                        for (int k = 0; k < len; k++) h = fnv(h, want[k]);
                        bytes += len;
                        count++;
                    }
                    break;
                }
                case ECHO: {
                    // One native call per round trip: the held message goes back
                    // straight from the ring and the next one is received
                    // (Sender.sendRecv(Message, ...), the C ABI's memtube_sendrecv).
                    Connection.Split s = conn.split();
                    try (Sender tx = s.sender(); Receiver rx = s.receiver()) {
                        Message m;
                        try {
                            m = rx.recv(a.timeout);
                        } catch (ClosedException e) {
                            m = null;
                        }
                        if (m != null) start = System.nanoTime();
                        started = m != null;
                        while (m != null) {
                            int size = m.size();
                            try {
                                m = tx.sendRecv(m, m.typeId(), rx, a.timeout);
                            } catch (ClosedException e) {
                                if (!e.messageSent()) throw e;
                                m = null; // forwarded; then the peer closed
                            }
                            bytes += size;
                            count++;
                        }
                    }
                    break;
                }
                case PING: {
                    Connection.Split s = conn.split();
                    try (Sender tx = s.sender(); Receiver rx = s.receiver()) {
                        long warm = a.n / 10;
                        long[] samples = new long[(int) a.n];
                        ByteBuffer msg = ByteBuffer.allocateDirect(a.size).order(ByteOrder.LITTLE_ENDIAN);
                        long prev = System.nanoTime();
                        for (long i = 0; i < warm + a.n; i++) {
                            msg.clear();
                            msg.putLong(0, i);
                            // The latency path: send, then receive the echo in one
                            // native call (Sender.sendRecv, memtube_sendrecv); the
                            // echo is read in place and released by the next call.
                            Message m = tx.sendRecv(msg, (int) i, rx, a.timeout);
                            if (m.size() != a.size || m.typeId() != (int) i
                                    || m.payload().order(ByteOrder.LITTLE_ENDIAN).getLong(0) != i) {
                                throw new Failure("echo " + i + " differs");
                            }
                            long now = System.nanoTime();
                            if (i >= warm) {
                                samples[(int) count] = now - prev;
                                if (!started) { start = prev; started = true; }
                                bytes += a.size;
                                count++;
                            }
                            prev = now;
                        }
                        Arrays.sort(samples);
                        extra = " p50_ns=" + q(samples, 0.5) + " p99_ns=" + q(samples, 0.99)
                                + " p999_ns=" + q(samples, 0.999);
                    }
                    break;
                }
                default:
                    throw new AssertionError(a.role);
            }
        }
        double secs = started ? (System.nanoTime() - start) / 1e9 : 0.0;
        if (a.unchecked || a.role == Role.ECHO || a.role == Role.PING) h = 0;
        return String.format("ok count=%d bytes=%d fnv=%016x secs=%.6f%s", count, bytes, h, secs, extra);
    }

    /**
     * --dump: prints every message as {@code msg TYPE HEX} until an error ends
     * the stream, then {@code end KIND}; whether that was the peer's clean close.
     */
    private static boolean dump(Args a) throws Exception {
        String end;
        HexFormat hex = HexFormat.of();
        try (Connection conn = open(a)) {
            Receiver rx = conn.receiver();
            while (true) {
                try (Message m = rx.recv(a.timeout)) {
                    byte[] p = m.toByteArray();
                    System.out.println("msg " + Integer.toUnsignedString(m.typeId()) + " "
                            + (p.length == 0 ? "-" : hex.formatHex(p)));
                }
            }
        } catch (MemtubeException e) {
            end = e.status().name().toLowerCase(Locale.ROOT);
        }
        System.out.println("end " + end);
        System.out.flush();
        return end.equals("closed");
    }

    private static long q(long[] s, double p) {
        return s[Math.min((int) (s.length * p), s.length - 1)];
    }

    public static void main(String[] argv) {
        String line;
        int code = 0;
        try {
            Args a = parse(argv);
            if (a.role == Role.DUMP) System.exit(dump(a) ? 0 : 1);
            line = run(a);
        } catch (Failure e) {
            line = "error: " + e.getMessage();
            code = 1;
        } catch (Exception e) {
            line = "error: " + e.getClass().getSimpleName() + ": " + e.getMessage();
            code = 1;
        }
        System.out.println(line);
        System.out.flush();
        System.exit(code);
    }
}
