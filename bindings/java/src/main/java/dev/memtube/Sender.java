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
public final class Sender extends RingEnd implements AutoCloseable {
    /** The outstanding grant, if any; under the guard. */
    Grant grant;
    private final long[] out = new long[1];

    Sender(Handle connectionGuard, long ptr, Connection owner) {
        super(connectionGuard, ptr, owner);
    }

    Sender(long ptr) {
        super("Sender", ptr, Native::senderFree);
    }

    @Override
    int peerStateCode(boolean probe) {
        return Native.senderPeerState(ptr, probe);
    }

    @Override
    int statsCode(long[] v) {
        return Native.senderStats(ptr, v);
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
                if (st != Status.TIMEOUT.code() && st != Status.FULL.code()) throw guard.error(st);
                if (ns == 0) return false;
                if (w.over()) throw new TimeoutException("no room in the ring within " + Duration.ofNanos(ns));
                guard.checkpoint();
            }
        } finally {
            guard.exit();
        }
    }

    /** {@link #sendRecv(byte[], int, Receiver, Duration)} without a time limit. */
    public Message sendRecv(byte[] data, int typeId, Receiver rx) throws IOException {
        return sendRecv(data, typeId, rx, null);
    }

    /**
     * A lockstep exchange in one native call (the C ABI's
     * {@code memtube_sendrecv}, MPI's Sendrecv): send {@code data} as one
     * message of type {@code typeId} on this sender, then wait for the next
     * message on {@code rx} and return it, zero copy, held like
     * {@link Receiver#recv}'s (the message {@code rx} held before is released
     * once the send is done). {@code rx} may be this connection's own
     * receiver or another one (a split pair); both handles are entered, so a
     * second thread on either gets a {@link BusyException}.
     *
     * <p>{@code timeout} (null: no limit; {@link Duration#ZERO}: neither step
     * waits) bounds each of the two waits, as in the C ABI: the wait for room
     * and the wait for the next message. Both wait in slices of about 50 ms
     * ({@link Thread#interrupt()}, a close from another thread).
     *
     * <p>On failure {@link MemtubeException#messageSent()} (or
     * {@link ExchangeInterruptedException#messageSent()}) says which step
     * failed. False: nothing was sent, and a message {@code rx} held is still
     * held and valid. True: the message went out and the receive failed
     * (a {@link TimeoutException}, {@link ClosedException}, ...): continue
     * with {@link Receiver#recv}, never with sendRecv again, or the message
     * goes out twice.
     *
     * @throws TimeoutException no room in time (nothing sent), or no message in time (sent)
     * @throws TooLargeException above {@link #maxPayload()} (nothing sent)
     * @throws BusyException a grant is outstanding, or another thread uses one of the handles
     * @throws ClosedException the peer closed (nothing sent, or sent and every message received)
     * @throws PeerGoneException the peer died
     */
    public Message sendRecv(byte[] data, int typeId, Receiver rx, Duration timeout) throws IOException {
        Objects.requireNonNull(data, "data");
        return exchange(rx, null, data, null, 0, data.length, typeId, Handle.nanos(timeout), null);
    }

    /**
     * As {@link #sendRecv(byte[], int, Receiver, Duration)} with the
     * remaining bytes of {@code data}; its position moves to its limit once
     * the message went out. A direct buffer is copied straight into the ring
     * (it may be the payload of the message {@code rx} holds: an echo).
     */
    public Message sendRecv(ByteBuffer data, int typeId, Receiver rx, Duration timeout) throws IOException {
        long ns = Handle.nanos(timeout);
        if (data.isDirect()) return exchange(rx, data, null, null, data.position(), data.remaining(), typeId, ns, data);
        if (data.hasArray()) {
            return exchange(rx, null, data.array(), null, data.arrayOffset() + data.position(), data.remaining(),
                    typeId, ns, data);
        }
        byte[] copy = new byte[data.remaining()];
        data.duplicate().get(copy);
        return exchange(rx, null, copy, null, 0, copy.length, typeId, ns, data);
    }

    /**
     * Forward: send the payload of {@code held}, the message {@code rx} holds,
     * straight from the ring as a message of type {@code typeId} (no copy of
     * our own, no buffer made), then wait for the next message on {@code rx}
     * as {@link #sendRecv(byte[], int, Receiver, Duration)} does. {@code held}
     * stays valid until its bytes went out, and is released then. An echo:
     * {@code m = tx.sendRecv(m, m.typeId(), rx, timeout)} in a loop. (For a
     * message of another receiver, pass its {@link Message#payload()}.)
     *
     * @throws IllegalStateException {@code held} is no longer valid
     * @throws IllegalArgumentException {@code held} is not {@code rx}'s
     */
    public Message sendRecv(Message held, int typeId, Receiver rx, Duration timeout) throws IOException {
        Objects.requireNonNull(held, "held");
        return exchange(rx, null, null, held, 0, held.size(), typeId, Handle.nanos(timeout), null);
    }

    /**
     * sendRecv's core: enters both guards (once when they are one, a
     * connection's own handles), then calls memtube_sendrecv in slices while
     * nothing went out, and memtube_recv in slices once it did (never the
     * exchange again: the message would go out twice).
     */
    private Message exchange(Receiver rx, ByteBuffer direct, byte[] arr, Message held, int off, int len, int typeId,
            long ns, ByteBuffer moved) throws IOException {
        Objects.requireNonNull(rx, "rx");
        Handle rg = rx.guard;
        guard.enter();
        try {
            if (rg != guard) rg.enter();
            try {
                if (held != null) {
                    if (held.receiver() != rx) throw new IllegalArgumentException("the message is not rx's");
                    if (!held.isValid()) throw new IllegalStateException("message released (release(), a later receive, or its receiver closed)");
                }
                return exchangeLocked(rx, direct, arr, held, off, len, typeId, ns, moved);
            } finally {
                if (rg != guard) rg.exit();
            }
        } finally {
            guard.exit();
        }
    }

    /**
     * The last direct buffer sendRecv sent from and its address (a direct
     * buffer's address never changes), so that the next sendRecv from the
     * same buffer is an all-primitive JNI call. Under the guard. Holds that
     * one buffer until a sendRecv from another one or the close.
     */
    private ByteBuffer lastBuf;
    private long lastAddr;

    private Message exchangeLocked(Receiver rx, ByteBuffer direct, byte[] arr, Message held, int off, int len,
            int typeId, long ns, ByteBuffer moved) throws IOException {
        rx.exchangeArea();
        ByteBuffer o = rx.exchangeOut;
        long oa = rx.exchangeOutAddr;
        // Lazy: no clock read unless a slice times out (memtube_sendrecv's
        // TIMEOUT means one of its waits took the whole slice).
        Handle.Wait w = Handle.Wait.lazy(ns);
        int st;
        long slice;
        while (true) {
            slice = w.slice();
            if (held != null) {
                st = Native.sendRecvAddress(ptr, held.address(), len, typeId, rx.ptr, slice, oa);
            } else if (direct != null) {
                if (direct == lastBuf) {
                    st = Native.sendRecvAddress(ptr, lastAddr + off, len, typeId, rx.ptr, slice, oa);
                } else {
                    st = Native.sendRecvDirect(ptr, direct, off, len, typeId, rx.ptr, slice, oa);
                    lastBuf = direct; // (a buffer that is not direct threw above)
                    lastAddr = o.getLong(24);
                }
            } else {
                st = Native.sendRecvArray(ptr, arr, off, len, typeId, rx.ptr, slice, oa);
            }
            if (o.getInt(20) != 0) break; // sent
            // Nothing sent: a message rx holds is still held (and `held` valid).
            if (st != Status.TIMEOUT.code() && st != Status.FULL.code()) throw guard.error(st);
            if (w.over()) {
                throw new TimeoutException(ns == 0 ? "no room in the ring now"
                        : "no room in the ring within " + Duration.ofNanos(ns));
            }
            checkpoint(rx, false, len);
        }
        // Sent: the receive released the message rx held (whatever it returned).
        rx.gen++;
        if (moved != null) moved.position(moved.limit());
        if (st == 0) return rx.held(o.getLong(0), (int) o.getLong(8), o.getInt(16));
        long[] r = rx.out;
        try {
            if (st != Status.TIMEOUT.code() && st != Status.EMPTY.code()) throw guard.error(st);
            // The receive's wait took the whole last slice (TIMEOUT), or none of it
            // (EMPTY, slice 0): it began that slice before now.
            Handle.Wait rw = new Handle.Wait(ns, ns > 0 ? System.nanoTime() - slice : 0);
            while (true) {
                if (rw.over()) {
                    throw new TimeoutException(ns == 0 ? "sent; no message now"
                            : "sent; no message within " + Duration.ofNanos(ns));
                }
                checkpoint(rx, true, len);
                st = Native.recv(rx.ptr, rw.slice(), r);
                if (st == 0) return rx.held(r[0], (int) r[1], (int) r[2]);
                if (st != Status.TIMEOUT.code() && st != Status.EMPTY.code()) throw guard.error(st);
            }
        } catch (MemtubeException e) {
            e.sent = true;
            throw e;
        }
    }

    /** Between two slices of sendRecv: an interrupt, or a close of either handle by another thread. */
    private void checkpoint(Receiver rx, boolean sent, int len) throws IOException {
        if (Thread.currentThread().isInterrupted()) {
            throw new ExchangeInterruptedException(sent
                    ? "sendRecv: sent, then interrupted while waiting for the next message (continue with recv)"
                    : "sendRecv: interrupted while waiting for room (nothing sent)", sent, len);
        }
        guard.checkpoint();
        rx.guard.checkpoint();
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
                if (st != Status.TIMEOUT.code() && st != Status.FULL.code()) throw guard.error(st);
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
        guard.check(() -> Native.publish(ptr));
    }

    /** The largest payload this ring takes. */
    public int maxPayload() throws MemtubeException {
        return guard.value(() -> Native.senderMaxPayload(ptr));
    }

    /** The ring's data-area bytes. */
    public long capacity() throws MemtubeException {
        return guard.longValue(() -> Native.senderCapacity(ptr));
    }

    /**
     * Copying sends of at least {@code bytes} bytes use non-temporal stores
     * (x86-64; -1: never; the default depends on the processor: 16 KiB on
     * AMD, off elsewhere). Applies to sends from direct buffers (memtube_send);
     * a {@code byte[]} send copies from the Java heap straight into reserved
     * ring space (one copy, reserve+commit), which this setting does not change.
     */
    public void setNontemporalThreshold(int bytes) throws MemtubeException {
        guard.check(() -> Native.setNontemporalThreshold(ptr, bytes));
    }

    /** Pad small published messages to the end of their cache line. */
    public void setLinePadding(boolean on) throws MemtubeException {
        guard.check(() -> Native.setLinePadding(ptr, on));
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
        closeOwned("sender");
    }
}
