package dev.memtube;

import java.io.IOException;
import java.time.Duration;

/**
 * A listening socket, from {@link Memtube#listen}. Closing it removes the
 * socket file (for a path); connections accepted from it live on. One
 * thread at a time; a forgotten listener is closed by the Cleaner.
 */
public final class Listener implements AutoCloseable {
    private final Handle handle;
    private final String address;
    private final long[] out = new long[1];
    private final Options options; // a copy of the listen options, for accept(null, ...)

    Listener(long l, String address, Options options) {
        this.handle = new Handle("Listener", this, l, Native::listenerFree);
        this.address = address;
        this.options = options;
    }

    /** The address listened on, as given. */
    public String address() {
        return address;
    }

    /** Accept one connection, waiting without limit (interruptible: see {@link #accept(Options, Duration)}). */
    public Connection accept() throws IOException {
        return accept(null, null);
    }

    /** Accept one connection, waiting at most {@code timeout} (null: no limit). */
    public Connection accept(Duration timeout) throws IOException {
        return accept(null, timeout);
    }

    /**
     * Accept one connection: wait for a peer, check its uid, hand it the rings.
     * {@code options} null: the listener's; else these for this connection.
     * A refused peer (PermissionDenied, Handshake) throws; the listener keeps working.
     *
     * @param timeout how long to wait for a peer: {@link Duration#ZERO} only
     *     takes one already waiting; null waits without limit
     * @throws TimeoutException no peer came in time
     * @throws java.io.InterruptedIOException the thread was interrupted while waiting
     * @throws HandleClosedException another thread closed the listener meanwhile
     */
    public Connection accept(Options options, Duration timeout) throws IOException {
        long ns = Handle.nanos(timeout);
        handle.enter();
        // Always explicit options: the connection gets its own cancel token
        // (the listener's options when none are given).
        ConnectionToken tok = null;
        long o = 0;
        boolean ok = false;
        try {
            tok = new ConnectionToken();
            o = (options == null ? this.options : options).toNative(tok);
            Handle.Wait w = new Handle.Wait(ns);
            while (true) {
                int st = Native.accept(handle.ptr(), o, w.slice(), out);
                if (st == 0) {
                    Connection c = new Connection(out[0], tok);
                    ok = true;
                    return c;
                }
                if (st != Status.TIMEOUT.code()) throw Errors.of(st);
                if (w.over()) throw new TimeoutException("no peer connected within " + timeout);
                handle.checkpoint();
            }
        } finally {
            handle.exit();
            if (o != 0) Native.optionsFree(o);
            if (!ok && tok != null) tok.free();
        }
    }

    /** The listening socket's descriptor, to poll (readable: a peer waits). Owned by the listener. */
    public int fd() throws MemtubeException {
        handle.enter();
        try {
            int fd = Native.listenerFd(handle.ptr());
            if (fd < 0) throw Errors.of(Status.INVALID_ARGUMENT.code());
            return fd;
        } finally {
            handle.exit();
        }
    }

    /** Close: the socket closes and its file (if a path) is removed. Idempotent. */
    @Override
    public void close() {
        handle.close();
    }
}
