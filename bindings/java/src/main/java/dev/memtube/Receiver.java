package dev.memtube;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;

/**
 * The reading end of a ring: a connection's own ({@link Connection#receiver()},
 * borrowed, lives with the connection) or owned ({@link Connection#split()},
 * closed on its own or by the Cleaner when forgotten). One thread at a time.
 *
 * <p>Blocking receives wait in slices of about 50 ms: {@link Thread#interrupt()}
 * ends them with an {@link java.io.InterruptedIOException} (the interrupt
 * status stays set; no message is lost: one that arrived is returned), and a
 * close from another thread with a {@link HandleClosedException}.
 */
public final class Receiver extends RingEnd implements AutoCloseable {
    /** Bumped whenever the held message changes (receive, release, call, close); under the guard. */
    long gen;
    final long[] out = new long[3]; // under the guard
    /**
     * Sender.sendRecv's results, written by the JNI shim in place (see
     * memtube_jni.c: struct exchange_out), so that no JNI call back into the
     * JVM returns them; made on the first sendRecv, used under this
     * receiver's guard.
     */
    ByteBuffer exchangeOut;
    long exchangeOutAddr;

    void exchangeArea() {
        if (exchangeOut == null) {
            ByteBuffer b = ByteBuffer.allocateDirect(32).order(java.nio.ByteOrder.nativeOrder());
            exchangeOutAddr = Native.address(b);
            exchangeOut = b;
        }
    }

    /**
     * A read-only buffer over the ring's whole mapping, from which message
     * views are sliced in Java (no JNI call per view). One object, so a
     * reader sees a consistent start and buffer.
     */
    private static final class Window {
        final ByteBuffer buf;
        final long start;

        Window(ByteBuffer buf, long start) {
            this.buf = buf;
            this.start = start;
        }
    }

    /**
     * Written only under the guard (by {@link #held}, right after a receive,
     * so the ring is mapped while /proc/self/maps is read); read by
     * {@link #view} from any thread: volatile, and a final-field object.
     */
    private volatile Window window;
    /** No window could be made (a 2 GiB ring, no /proc): one JNI buffer per view. Under the guard. */
    private boolean windowless;
    /** The message this receiver holds (when {@code heldGen == gen}); under the guard. */
    private long heldAddr, heldGen = -1;
    private int heldLen;

    /**
     * The Message for what a receive (or call, or sendRecv) just returned;
     * the caller holds the guard. Finds the window over the ring the first
     * time, here, while the ring is certainly mapped (never from
     * {@link #view}, which runs outside the guard).
     */
    Message held(long addr, int len, int typeId) {
        heldAddr = addr;
        heldLen = len;
        heldGen = gen;
        Window w = window;
        if (w == null && !windowless && len > 0) {
            long[] start = new long[1];
            ByteBuffer b = Native.window(addr, start);
            if (b == null || addr - start[0] + len > b.capacity()) {
                windowless = true;
            } else {
                // Views are slices of b (their attachment keeps b reachable), so
                // while one is reachable a forgotten handle is not unmapped.
                guard.trackWindow(b);
                window = new Window(b.asReadOnlyBuffer(), start[0]);
            }
        }
        return new Message(this, addr, len, typeId, gen);
    }

    /** Whether [addr, addr+len) overlaps the message this receiver holds; under the guard. */
    boolean overlapsHeld(long addr, int len) {
        return heldGen == gen && len > 0 && heldLen > 0 && addr < heldAddr + heldLen && heldAddr < addr + len;
    }

    /**
     * A read-only view of {@code len} bytes at {@code addr}, a live message of
     * this receiver (the caller checked). Sliced from the window over the
     * ring's mapping (found under the guard by {@link #held}); a message
     * outside it gets a view of its own, tracked like the window so that a
     * forgotten handle stays mapped while it is reachable. Never reads
     * /proc/self/maps, so a close racing with it cannot make it build a
     * window over some other mapping.
     */
    ByteBuffer view(long addr, int len) {
        Window w = window;
        if (w == null || addr < w.start || addr - w.start + len > w.buf.capacity()) {
            ByteBuffer b = Native.view(addr, len);
            if (len > 0) guard.trackWindow(b); // the read-only view's attachment keeps b reachable
            return b.asReadOnlyBuffer();
        }
        return w.buf.slice((int) (addr - w.start), len);
    }

    /** Whether the window over the ring was found (for the tests). */
    boolean hasWindow() {
        return window != null;
    }

    Receiver(Handle connectionGuard, long ptr, Connection owner) {
        super(connectionGuard, ptr, owner);
    }

    Receiver(long ptr) {
        super("Receiver", ptr, Native::receiverFree);
    }

    @Override
    int peerStateCode(boolean probe) {
        return Native.receiverPeerState(ptr, probe);
    }

    @Override
    int statsCode(long[] v) {
        return Native.receiverStats(ptr, v);
    }

    /** Receive the next message, waiting without limit. The message held before is released. */
    public Message recv() throws IOException {
        return recvImpl(-1);
    }

    /**
     * Receive the next message, waiting at most {@code timeout} (null: no
     * limit). The message held before (if any) is released first.
     *
     * @throws TimeoutException nothing came in time
     * @throws ClosedException the peer closed (after every message it sent)
     * @throws PeerGoneException the peer died (after every message it committed)
     */
    public Message recv(Duration timeout) throws IOException {
        long ns = Handle.nanos(timeout);
        if (ns == 0) {
            Message m = recvImpl(0);
            if (m == null) throw new TimeoutException("no message now");
            return m;
        }
        return recvImpl(ns);
    }

    /** The next message if one is there now, else null (never waits). */
    public Message tryRecv() throws MemtubeException {
        try {
            return recvImpl(0);
        } catch (MemtubeException e) {
            throw e;
        } catch (IOException e) {
            throw new AssertionError("a non-blocking receive does not wait", e);
        }
    }

    private Message recvImpl(long ns) throws IOException {
        guard.enter();
        try {
            gen++; // memtube_recv releases the message held before
            Handle.Wait w = new Handle.Wait(ns);
            while (true) {
                int st = Native.recv(ptr, w.slice(), out);
                if (st == 0) return held(out[0], (int) out[1], (int) out[2]);
                if (st != Status.TIMEOUT.code() && st != Status.EMPTY.code()) throw guard.error(st);
                if (ns == 0) return null;
                if (w.over()) throw new TimeoutException("no message within " + Duration.ofNanos(ns));
                guard.checkpoint();
            }
        } finally {
            guard.exit();
        }
    }

    /**
     * Receive the next message by copying it into {@code dst} (a direct
     * buffer) at its position, which moves past the payload; the message is
     * released at once. Each byte is read from the ring exactly once, so this
     * is the receive for a sender you do not trust, and the cheapest for
     * small messages. Returns the type id.
     *
     * @throws TooLargeException {@code dst.remaining()} is smaller than the
     *     payload; nothing was copied and the message stays for the next receive
     */
    public int recvInto(ByteBuffer dst, Duration timeout) throws IOException {
        if (!dst.isDirect()) throw new IllegalArgumentException("recvInto needs a direct ByteBuffer");
        if (dst.isReadOnly()) throw new java.nio.ReadOnlyBufferException();
        long ns = Handle.nanos(timeout);
        guard.enter();
        try {
            gen++;
            Handle.Wait w = new Handle.Wait(ns);
            while (true) {
                int st = Native.recvCopyDirect(ptr, w.slice(), dst, dst.position(), dst.remaining(), out);
                if (st == 0) {
                    dst.position(dst.position() + (int) out[0]);
                    return (int) out[1];
                }
                if (st == Status.TOO_LARGE.code()) {
                    throw new TooLargeException("the message has " + out[0] + " bytes, the buffer room for "
                            + dst.remaining());
                }
                if (st != Status.TIMEOUT.code() && st != Status.EMPTY.code()) throw guard.error(st);
                if (w.over()) throw new TimeoutException("no message within " + timeout);
                guard.checkpoint();
            }
        } finally {
            guard.exit();
        }
    }

    /** The largest payload this ring carries. */
    public int maxPayload() throws MemtubeException {
        return guard.value(() -> Native.receiverMaxPayload(ptr));
    }

    /** Whether this receiver (or, if borrowed, its connection) is closed. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    /**
     * Close an owned receiver (from {@link Connection#split()}): a held message
     * is released, the ring closes (the peer's sender gets ClosedException).
     * Idempotent. A connection's own receiver closes with its connection:
     * closing it here throws {@link IllegalStateException}.
     */
    @Override
    public void close() {
        closeOwned("receiver");
        gen++;
    }
}
