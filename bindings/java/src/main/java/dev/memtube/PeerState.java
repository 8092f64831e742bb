package dev.memtube;

/** What is known of the peer ({@code MEMTUBE_PEER_STATE_*}). */
public enum PeerState {
    /** Alive, as of the last probe. */
    ALIVE,
    /** Closed cleanly. */
    CLOSED,
    /** Died (its socket closed without a clean close). */
    GONE;

    static PeerState of(int s) {
        PeerState[] v = values();
        if (s < 0 || s >= v.length) throw new IllegalStateException("unknown peer state " + s + " (a newer libmemtube)");
        return v[s];
    }
}
