package dev.memtube;

import java.util.function.LongConsumer;

/**
 * What a {@link Sender} and a {@link Receiver} share: one ring's pointer,
 * borrowed from a connection or owned (from {@link Connection#split()}),
 * its counters, and the close of an owned one.
 */
abstract class RingEnd extends Endpoint {
    final long ptr;
    private final Connection owner; // keeps a borrowed handle's connection reachable

    /** Borrowed: {@code ptr} under its connection's guard. */
    RingEnd(Handle connectionGuard, long ptr, Connection owner) {
        super(connectionGuard);
        this.ptr = ptr;
        this.owner = owner;
    }

    /** Owned: {@code ptr} under a guard of its own that frees it with {@code free}. */
    RingEnd(String what, long ptr, LongConsumer free) {
        super(what, ptr, free);
        this.ptr = ptr;
        this.owner = null;
    }

    /** This ring's memtube_*_stats into {@code v}; called under the guard. */
    abstract int statsCode(long[] v);

    /** The ring's counters (may be slightly stale). */
    public Stats stats() throws MemtubeException {
        long[] v = new long[7];
        guard.check(() -> statsCode(v));
        return Stats.of(v);
    }

    /**
     * Close an owned handle; {@code what} ("sender", "receiver") names a
     * borrowed one in the {@link IllegalStateException} its close throws.
     */
    void closeOwned(String what) {
        if (owner != null) {
            throw new IllegalStateException("a connection's own " + what + " is closed with the connection");
        }
        guard.close();
    }
}
