package dev.memtube;

/**
 * The peer is no longer there: it closed cleanly ({@link ClosedException})
 * or died ({@link PeerGoneException}). A receiver gets it only after every
 * message the peer sent (or committed) before.
 */
public abstract class DisconnectedException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    DisconnectedException(Status status, String message) {
        super(status, message);
    }
}
