package dev.memtube;

/** The peer died (SIGKILL, crash) or closed its socket without a clean close; noticed within about 50 ms, after every message it committed. */
public class PeerGoneException extends DisconnectedException {
    private static final long serialVersionUID = 1L;

    public PeerGoneException(String message) {
        super(Status.PEER_GONE, message);
    }

    PeerGoneException(Status status, String message) {
        super(status, message);
    }
}
