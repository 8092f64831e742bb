package dev.memtube;

/**
 * A connection's own cancel token (memtube_cancel_token), given to the C
 * library in its options at connect/accept: {@link Connection#close()}
 * cancels it so that a call waiting in one piece ({@link Connection#call})
 * returns at once; a user's {@link CancelToken} in the options cancels it
 * too (it is linked to it). Freed with the connection.
 */
final class ConnectionToken {
    private long ptr; // under this object's lock; 0 once freed

    ConnectionToken() {
        long t = Native.tokenNew();
        if (t == 0) throw new OutOfMemoryError("memtube_cancel_token_new");
        ptr = t;
    }

    /** The pointer, for memtube_options_set_cancel_token; the caller holds this object's lock. */
    long ptr() {
        return ptr;
    }

    synchronized void cancel() {
        if (ptr != 0) Native.tokenCancel(ptr);
    }

    /** Frees the handle (the connection keeps the token's flag). Idempotent. */
    synchronized void free() {
        long p = ptr;
        ptr = 0;
        if (p != 0) Native.tokenFree(p);
    }
}
