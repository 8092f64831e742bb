package dev.memtube;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Objects;

/**
 * The writing end of a ring: a connection's own ({@link Connection#sender()},
 * borrowed, lives with the connection) or owned ({@link Connection#split()},
 * closed on its own or by the Cleaner when forgotten). One thread at a time.
 *
 * <p>Blocking sends and reserves wait for room in slices of about 50 ms:
 * {@link Thread#interrupt()} ends them with an
 * {@link java.io.InterruptedIOException} (nothing sent), and a close from
 * another thread with a {@link HandleClosedException}.
 */
public final class Sender implements AutoCloseable {
    final Handle guard;
    final long ptr;
    private final Connection owner; // keeps a borrowed handle's connection reachable
    /** The outstanding grant, if any; under the guard. */
    Grant grant;
    private final long[] out = new long[1];

    Sender(Handle connectionGuard, long ptr, Connection owner) {
        this.guard = connectionGuard;
        this.ptr = ptr;
        this.owner = owner;
    }

    Sender(long ptr) {
        this.guard = new Handle("Sender", this, ptr, Native::senderFree);
        this.ptr = ptr;
        this.owner = null;
    }

    /** Send {@code data} as one message (copied into the ring), waiting for room without limit. */
    public void send(byte[] data, int typeId) throws IOException {
        send(data, typeId, null);
    }

    /**
     * Copy {@code data} into the ring as one message of type {@code typeId} and
     * publish it, waiting at most {@code timeout} for room (null: no limit).
     *
     * @throws TimeoutException no room in time
     * @throws TooLargeException above {@link #maxPayload()}
     * @throws BusyException a grant is outstanding
     * @throws ClosedException the peer closed
     * @throws PeerGoneException the peer died
     */
    public void send(byte[] data, int typeId, Duration timeout) throws IOException {
        Objects.requireNonNull(data, "data");
        sendImpl(null, data, 0, data.length, typeId, Handle.nanos(timeout));
    }

    /** As {@link #send(byte[], int, Duration)} for {@code len} bytes of {@code data} from {@code off}. */
    public void send(byte[] data, int off, int len, int typeId, Duration timeout) throws IOException {
        Objects.checkFromIndexSize(off, len, data.length);
        sendImpl(null, data, off, len, typeId, Handle.nanos(timeout));
    }

    /**
     * Send the remaining bytes of {@code data} as one message; on success its
     * position moves to its limit. A direct buffer (for example another
     * message's payload) is copied straight into the ring.
     */
    public void send(ByteBuffer data, int typeId, Duration timeout) throws IOException {
        bufferImpl(data, typeId, Handle.nanos(timeout));
    }

    /** Send {@code data} if there is room now: false (nothing sent) when the ring is full. */
    public boolean trySend(byte[] data, int typeId) throws IOException {
        return sendImpl(null, data, 0, data.length, typeId, 0);
    }

    /** Send the remaining bytes of {@code data} if there is room now, else false. */
    public boolean trySend(ByteBuffer data, int typeId) throws IOException {
        return bufferImpl(data, typeId, 0);
    }

    private boolean bufferImpl(ByteBuffer data, int typeId, long ns) throws IOException {
        boolean sent;
        if (data.isDirect()) {
            sent = sendImpl(data, null, data.position(), data.remaining(), typeId, ns);
        } else if (data.hasArray()) {
            sent = sendImpl(null, data.array(), data.arrayOffset() + data.position(), data.remaining(), typeId, ns);
        } else {
            byte[] copy = new byte[data.remaining()];
            data.duplicate().get(copy);
            sent = sendImpl(null, copy, 0, copy.length, typeId, ns);
        }
        if (sent) data.position(data.limit());
        return sent;
    }

    private boolean sendImpl(ByteBuffer direct, byte[] arr, int off, int len, int typeId, long ns)
            throws IOException {
        guard.enter();
        try {
            Handle.Wait w = new Handle.Wait(ns);
            while (true) {
                int st = direct != null
                        ? Native.sendDirect(ptr, direct, off, len, typeId, w.slice())
                        : Native.sendArray(ptr, arr, off, len, typeId, w.slice());
                if (st == 0) return true;
                if (st != Status.TIMEOUT.code() && st != Status.FULL.code()) throw Errors.of(st);
                if (ns == 0) return false;
                if (w.over()) throw new TimeoutException("no room in the ring within " + Duration.ofNanos(ns));
                guard.checkpoint();
            }
        } finally {
            guard.exit();
        }
    }

    /** Reserve {@code n} bytes to write in place, waiting for room without limit. */
    public Grant reserve(int n) throws IOException {
        return reserve(n, null);
    }

    /**
     * Reserve {@code n} bytes in the ring (zero copy): fill {@link Grant#buffer()},
     * then {@link Grant#commit}. Waits at most {@code timeout} for room (null: no limit).
     *
     * @throws BusyException a grant is outstanding already
     * @throws TooLargeException above {@link #maxPayload()}
     */
    public Grant reserve(int n, Duration timeout) throws IOException {
        return reserveImpl(n, Handle.nanos(timeout));
    }

    /** Reserve if there is room now, else null. */
    public Grant tryReserve(int n) throws IOException {
        return reserveImpl(n, 0);
    }

    private Grant reserveImpl(int n, long ns) throws IOException {
        if (n < 0) throw new IllegalArgumentException("negative length " + n);
        guard.enter();
        try {
            Handle.Wait w = new Handle.Wait(ns);
            while (true) {
                int st = Native.reserve(ptr, n, w.slice(), out);
                if (st == 0) {
                    grant = new Grant(this, out[0], n);
                    return grant;
                }
                if (st != Status.TIMEOUT.code() && st != Status.FULL.code()) throw Errors.of(st);
                if (ns == 0) return null;
                if (w.over()) throw new TimeoutException("no room in the ring within " + Duration.ofNanos(ns));
                guard.checkpoint();
            }
        } finally {
            guard.exit();
        }
    }

    /**
     * Copy a message in without publishing it (never waits): staged messages
     * become visible together at the next {@link #publish()} (or publishing
     * send/commit). False, nothing staged, when there is no room now.
     */
    public boolean sendStaged(byte[] data, int typeId) throws MemtubeException {
        return staged(null, data, 0, data.length, typeId);
    }

    /** As {@link #sendStaged(byte[], int)} with the remaining bytes of {@code data} (moved on success). */
    public boolean sendStaged(ByteBuffer data, int typeId) throws MemtubeException {
        boolean ok;
        if (data.isDirect()) {
            ok = staged(data, null, data.position(), data.remaining(), typeId);
        } else if (data.hasArray()) {
            ok = staged(null, data.array(), data.arrayOffset() + data.position(), data.remaining(), typeId);
        } else {
            byte[] copy = new byte[data.remaining()];
            data.duplicate().get(copy);
            ok = staged(null, copy, 0, copy.length, typeId);
        }
        if (ok) data.position(data.limit());
        return ok;
    }

    private boolean staged(ByteBuffer direct, byte[] arr, int off, int len, int typeId) throws MemtubeException {
        guard.enter();
        try {
            int st = direct != null
                    ? Native.sendStagedDirect(ptr, direct, off, len, typeId)
                    : Native.sendStagedArray(ptr, arr, off, len, typeId);
            if (st == Status.FULL.code()) return false;
            Errors.check(st);
            return true;
        } finally {
            guard.exit();
        }
    }

    /** Publish the staged messages (one store and one wake-up check for the batch). */
    public void publish() throws MemtubeException {
        guard.enter();
        try {
            Errors.check(Native.publish(ptr));
        } finally {
            guard.exit();
        }
    }

    /** The largest payload this ring takes. */
    public int maxPayload() throws MemtubeException {
        guard.enter();
        try {
            return Errors.value(Native.senderMaxPayload(ptr));
        } finally {
            guard.exit();
        }
    }

    /** The ring's data-area bytes. */
    public long capacity() throws MemtubeException {
        guard.enter();
        try {
            return Errors.value(Native.senderCapacity(ptr));
        } finally {
            guard.exit();
        }
    }

    /** The ring's counters (may be slightly stale). */
    public Stats stats() throws MemtubeException {
        long[] v = new long[7];
        guard.enter();
        try {
            Errors.check(Native.senderStats(ptr, v));
        } finally {
            guard.exit();
        }
        return Stats.of(v);
    }

    /** The peer's state as of the last probe (no system call; may be stale). */
    public PeerState peerState() throws MemtubeException {
        return state(false);
    }

    /** Ask the system now (one system call). */
    public PeerState probePeer() throws MemtubeException {
        return state(true);
    }

    /** Whether the peer was alive at the last probe (may be stale). */
    public boolean isPeerAlive() throws MemtubeException {
        return state(false) == PeerState.ALIVE;
    }

    private PeerState state(boolean probe) throws MemtubeException {
        guard.enter();
        try {
            return PeerState.of(Errors.value(Native.senderPeerState(ptr, probe)));
        } finally {
            guard.exit();
        }
    }

    /** Copying sends of at least {@code bytes} bytes use non-temporal stores (x86-64; -1: never). */
    public void setNontemporalThreshold(int bytes) throws MemtubeException {
        guard.enter();
        try {
            Errors.check(Native.setNontemporalThreshold(ptr, bytes));
        } finally {
            guard.exit();
        }
    }

    /** Pad small published messages to the end of their cache line. */
    public void setLinePadding(boolean on) throws MemtubeException {
        guard.enter();
        try {
            Errors.check(Native.setLinePadding(ptr, on));
        } finally {
            guard.exit();
        }
    }

    /** Whether this sender (or, if borrowed, its connection) is closed. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    /**
     * Close an owned sender (from {@link Connection#split()}): staged messages
     * are published, then the ring closes cleanly (the peer receives every
     * message, then ClosedException); an outstanding grant is dropped.
     * Idempotent. A connection's own sender closes with its connection:
     * closing it here throws {@link IllegalStateException}.
     */
    @Override
    public void close() {
        if (owner != null) {
            throw new IllegalStateException("a connection's own sender is closed with the connection");
        }
        guard.close();
    }
}
