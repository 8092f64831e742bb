package dev.memtube;

/** Nothing listens at the address. */
public class NoListenerException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public NoListenerException(String message) {
        super(Status.NO_LISTENER, message);
    }

    NoListenerException(Status status, String message) {
        super(status, message);
    }
}
