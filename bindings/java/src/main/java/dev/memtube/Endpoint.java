package dev.memtube;

import java.util.function.LongConsumer;

/**
 * What a {@link Connection}, a {@link Sender} and a {@link Receiver} share:
 * the guard every call enters, and the queries of the peer's state (written
 * once here; each subclass names its native call).
 */
abstract class Endpoint {
    final Handle guard;

    /** On {@code guard}, another object's (a connection's borrowed handles). */
    Endpoint(Handle guard) {
        this.guard = guard;
    }

    /** Owning pointer {@code p}, freed by {@code free} (see {@link Handle}). */
    Endpoint(String what, long p, LongConsumer free) {
        this.guard = new Handle(what, this, p, free);
    }

    /** This handle's memtube_*_peer_state; called under the guard. */
    abstract int peerStateCode(boolean probe);

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
        return PeerState.of(guard.value(() -> peerStateCode(probe)));
    }
}
