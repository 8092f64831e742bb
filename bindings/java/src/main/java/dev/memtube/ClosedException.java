package dev.memtube;

/** The peer closed cleanly: a receiver gets this after every message sent before (the end of the stream). */
public class ClosedException extends DisconnectedException {
    private static final long serialVersionUID = 1L;

    public ClosedException(String message) {
        super(Status.CLOSED, message);
    }

    ClosedException(Status status, String message) {
        super(status, message);
    }
}
