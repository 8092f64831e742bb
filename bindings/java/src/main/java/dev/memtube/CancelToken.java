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
    /** The connections' own tokens made with options holding this one: cancelled with it. */
    private final java.util.List<java.lang.ref.WeakReference<ConnectionToken>> linked = new java.util.ArrayList<>();
    private boolean cancelled;

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
        cancelled = true;
        for (java.lang.ref.WeakReference<ConnectionToken> w : linked) {
            ConnectionToken t = w.get();
            if (t != null) t.cancel();
        }
        linked.clear();
    }

    /** {@code t} is cancelled with this token (at once if it is cancelled already). */
    synchronized void link(ConnectionToken t) {
        if (cancelled) {
            t.cancel();
            return;
        }
        linked.removeIf(w -> w.get() == null);
        linked.add(new java.lang.ref.WeakReference<>(t));
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
