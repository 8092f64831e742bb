package dev.memtube;

/**
 * Stops blocking calls from outside: once {@link #cancel()} is called, the
 * blocking calls of every listener and connection made with options holding
 * this token throw {@link CancelledException} within about 50 ms. Cannot be
 * undone. Any thread may cancel at any time. {@link #close()} frees the
 * token (listeners and connections given it keep working and keep its
 * cancelled state); the Cleaner frees a forgotten one.
 */
public final class CancelToken implements AutoCloseable {
    private final Handle handle;

    public CancelToken() {
        long t = Native.tokenNew();
        if (t == 0) throw new OutOfMemoryError("memtube_cancel_token_new");
        handle = new Handle("CancelToken", this, t, Native::tokenFree);
    }

    /**
     * Cancel. Thread-safe: serialised with {@link #close()} so it never touches
     * a freed token (the C call itself is one atomic store).
     */
    public synchronized void cancel() {
        if (handle.isClosed()) throw new IllegalStateException("CancelToken is closed");
        Native.tokenCancel(handle.ptr());
    }

    /** The token's pointer for {@link Options}; the caller holds this object's lock. */
    long ptr() {
        if (handle.isClosed()) throw new IllegalStateException("CancelToken is closed");
        return handle.ptr();
    }

    @Override
    public synchronized void close() {
        handle.close();
    }
}
