package dev.memtube;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Objects;

/**
 * A connection: one ring (one-way) or two (duplex), from
 * {@link Memtube#connect} or {@link Listener#accept}.
 *
 * <p>{@link #sender()} and {@link #receiver()} are the connection's own
 * handles (borrowed: they live and die with it). The connection and its
 * borrowed handles are one unit used by one thread at a time; a second
 * thread calling meanwhile gets a {@link BusyException}. {@link #split()}
 * gives independent owned handles for two threads.
 *
 * <p>{@link #close()} closes the rings cleanly (the peer receives every
 * message, then {@link ClosedException}); a forgotten connection is closed
 * by the Cleaner once it, its handles and its messages are unreachable.
 */
public final class Connection extends Endpoint implements AutoCloseable {
    private Sender sender;
    private Receiver receiver;
    private final long[] out = new long[3];

    private final ConnectionToken tok;

    Connection(long c, ConnectionToken tok) {
        // The free action holds the token, never this object.
        super("Connection", c, p -> {
            Native.connectionFree(p);
            tok.free();
        });
        this.tok = tok;
    }

    @Override
    int peerStateCode(boolean probe) {
        return Native.connectionPeerState(guard.ptr(), probe);
    }

    /**
     * This side's sender (the same object each time).
     *
     * @throws NoSuchHandleException on the receiving side of a one-way connection
     */
    public Sender sender() throws MemtubeException {
        guard.enter();
        try {
            return senderLocked();
        } finally {
            guard.exit();
        }
    }

    /**
     * This side's receiver (the same object each time).
     *
     * @throws NoSuchHandleException on the sending side of a one-way connection
     */
    public Receiver receiver() throws MemtubeException {
        guard.enter();
        try {
            return receiverLocked();
        } finally {
            guard.exit();
        }
    }

    private Sender senderLocked() throws MemtubeException {
        if (sender == null) {
            long p = Native.connectionSender(guard.ptr());
            if (p == 0) throw Errors.of(Status.NO_SUCH_HANDLE.code());
            sender = new Sender(guard, p, this);
        }
        return sender;
    }

    private Receiver receiverLocked() throws MemtubeException {
        if (receiver == null) {
            long p = Native.connectionReceiver(guard.ptr());
            if (p == 0) throw Errors.of(Status.NO_SUCH_HANDLE.code());
            receiver = new Receiver(guard, p, this);
        }
        return receiver;
    }

    /** The owned halves of a split connection; either is null for a side this end does not have. */
    public record Split(Sender sender, Receiver receiver) {}

    /**
     * Split into owned handles that two threads may use at once (each closed
     * on its own; the peer sees the connection closed once both are).
     * This connection and its borrowed handles are consumed: using them
     * again throws {@link IllegalStateException}. An outstanding {@link Grant}
     * moves to the new sender. A message held on the old receiver stays held
     * until the new receiver's next receive, but its {@link Message} object
     * is no longer valid. call/serve are not available on split handles.
     */
    public Split split() throws MemtubeException {
        guard.enter();
        long[] o = new long[2];
        int st;
        // Payload buffers taken before the split read the same rings: the new
        // owned handles keep them mapped while they are reachable.
        java.util.List<Object> windows = guard.liveWindows();
        try {
            st = Native.split(guard.ptr(), o);
        } finally {
            // memtube_connection_split consumes the connection even on failure.
            guard.consumed();
            tok.free(); // the split handles keep its flag; nobody cancels it any more
        }
        if (receiver != null) receiver.gen++;
        Errors.check(st);
        Sender tx = o[0] == 0 ? null : new Sender(o[0]);
        Receiver rx = o[1] == 0 ? null : new Receiver(o[1]);
        if (rx != null) for (Object w : windows) rx.guard.trackWindow(w);
        if (tx != null && sender != null && sender.grant != null) {
            tx.grant = sender.grant;
            tx.grant.sender = tx;
            sender.grant = null;
        }
        return new Split(tx, rx);
    }

    /** The peer's credentials (pid, uid, gid when it connected). */
    public PeerCred peerCred() throws MemtubeException {
        int[] v = new int[3];
        guard.check(() -> Native.peerCred(guard.ptr(), v));
        return new PeerCred(v[0], v[1], v[2]);
    }

    // peerState() and isPeerAlive(): Endpoint's.

    /** Ask the system now whether the peer is alive (one system call). */
    @Override
    public PeerState probePeer() throws MemtubeException {
        return super.probePeer();
    }

    /** The largest request body {@link #call} sends. */
    public int maxRequest() throws MemtubeException {
        return guard.value(() -> Native.maxRequest(guard.ptr()));
    }

    /** {@link #call(int, byte[], Duration)} without a time limit. */
    public Message call(int typeId, byte[] request) throws MemtubeException {
        return call(typeId, request, null);
    }

    /**
     * Send a request on a duplex connection and wait for its reply. The reply
     * is held like a received message: valid until released, or the next
     * call, serve or receive on this connection.
     *
     * <p>Not interruptible: the C ABI's call cannot be resumed after a partial
     * wait, so bound it with {@code timeout} (a reply that comes after a
     * timeout is skipped by the next call) or a {@link CancelToken}.
     * {@link #close()} from another thread ends it at once (each connection
     * has its own cancel token, which close cancels) with
     * {@link HandleClosedException}.
     *
     * @param timeout bounds the whole call; null: no limit
     * @throws TimeoutException no reply in time
     * @throws TooLargeException the body exceeds {@link #maxRequest()}
     * @throws ReplyTooLargeException the server's reply did not fit
     * @throws NoSuchHandleException a one-way connection
     * @throws ProtocolException the server's handler failed
     */
    public Message call(int typeId, byte[] request, Duration timeout) throws MemtubeException {
        Objects.requireNonNull(request, "request");
        return callImpl(typeId, null, request, 0, request.length, timeout);
    }

    /** As {@link #call(int, byte[], Duration)} with the remaining bytes of {@code request} (not moved). */
    public Message call(int typeId, ByteBuffer request, Duration timeout) throws MemtubeException {
        if (request.isDirect()) return callImpl(typeId, request, null, request.position(), request.remaining(), timeout);
        if (request.hasArray()) {
            return callImpl(typeId, null, request.array(), request.arrayOffset() + request.position(),
                    request.remaining(), timeout);
        }
        byte[] copy = new byte[request.remaining()];
        request.duplicate().get(copy);
        return callImpl(typeId, null, copy, 0, copy.length, timeout);
    }

    private Message callImpl(int typeId, ByteBuffer direct, byte[] arr, int off, int len, Duration timeout)
            throws MemtubeException {
        long ns = Handle.nanos(timeout);
        guard.enter();
        try {
            if (sender != null && sender.grant != null) {
                throw new BusyException("a grant is outstanding on this connection's sender");
            }
            Receiver rx = receiverLocked();
            if (direct != null && rx.overlapsHeld(Native.address(direct) + off, len)) {
                // memtube_call releases the held message before it reads the
                // request: a request in that message is copied first.
                arr = new byte[len];
                direct.duplicate().position(off).get(arr);
                direct = null;
                off = 0;
            }
            rx.gen++; // memtube_call releases a message held on the receiver
            int st = direct != null
                    ? Native.callDirect(guard.ptr(), typeId, direct, off, len, ns, out)
                    : Native.callArray(guard.ptr(), typeId, arr, off, len, ns, out);
            if (st != 0) throw guard.error(st);
            return rx.held(out[0], (int) out[1], (int) out[2]);
        } finally {
            guard.exit();
        }
    }

    /**
     * A lockstep exchange on this duplex connection's own handles:
     * {@code sender().sendRecv(data, typeId, receiver(), timeout)}, see
     * {@link Sender#sendRecv(byte[], int, Receiver, Duration)}. Unlike
     * {@link #call} it pairs with any peer that sends (an echo, a stream of
     * replies), is interruptible, and tells which step failed
     * ({@link MemtubeException#messageSent()}).
     *
     * @throws NoSuchHandleException a one-way connection
     */
    public Message sendRecv(byte[] data, int typeId, Duration timeout) throws IOException {
        return sender().sendRecv(data, typeId, receiver(), timeout);
    }

    /** As {@link #sendRecv(byte[], int, Duration)} with the remaining bytes of {@code data} (moved once sent). */
    public Message sendRecv(ByteBuffer data, int typeId, Duration timeout) throws IOException {
        return sender().sendRecv(data, typeId, receiver(), timeout);
    }

    /** Forward {@code held}, the message this connection's receiver holds: see {@link Sender#sendRecv(Message, int, Receiver, Duration)}. */
    public Message sendRecv(Message held, int typeId, Duration timeout) throws IOException {
        return sender().sendRecv(held, typeId, receiver(), timeout);
    }

    /**
     * Serve one request: wait for it (at most {@code timeout}; null: no limit),
     * call {@code handler}, send its reply. Interruptible (within about 50 ms).
     *
     * @throws TimeoutException no request came in time (also with {@link Duration#ZERO})
     * @throws ClosedException the peer closed
     * @throws IOException whatever the handler threw (the caller gets a ProtocolException)
     */
    public void serveOne(Handler handler, Duration timeout) throws IOException {
        Objects.requireNonNull(handler, "handler");
        long ns = Handle.nanos(timeout);
        guard.enter();
        try {
            if (receiver != null) receiver.gen++; // a held message is released first
            Handle.Wait w = new Handle.Wait(ns);
            while (true) {
                int st = Native.serveOne(guard.ptr(), w.slice(), handler);
                if (st == 0) return;
                if (st != Status.TIMEOUT.code() && st != Status.EMPTY.code()) throw guard.error(st);
                if (w.over()) throw new TimeoutException("no request within " + timeout);
                guard.checkpoint();
            }
        } finally {
            guard.exit();
        }
    }

    /**
     * Serve requests until the peer closes (then return normally). A reply
     * too large for the ring is not sent (its caller gets
     * ReplyTooLargeException) and serving goes on.
     *
     * @throws PeerGoneException the peer died
     * @throws IOException whatever the handler threw
     */
    public void serve(Handler handler) throws IOException {
        while (true) {
            try {
                serveOne(handler, null);
            } catch (ClosedException e) {
                return;
            } catch (ReplyTooLargeException e) {
                // the caller was told; go on
            }
        }
    }

    // Called from the JNI shim's memtube_handler (memtube_jni.c: serve_cb).
    private static int dispatch(Handler h, int typeId, ByteBuffer request, long replyPtr) throws IOException {
        Reply r = new Reply();
        int type;
        try {
            type = h.handle(typeId, request.asReadOnlyBuffer(), r);
        } finally {
            r.invalidate();
        }
        r.flush(replyPtr); // the reply's one hand-over to the C library
        return type;
    }

    /** Whether {@link #close()} or {@link #split()} was called. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    /**
     * Close cleanly: staged messages are published, the peer receives every
     * message and then {@link ClosedException}. A blocking call of another
     * thread on this connection ends within about 50 ms with
     * {@link HandleClosedException} first. Idempotent.
     */
    @Override
    public void close() {
        guard.close(tok::cancel);
    }
}
