package dev.memtube;

/** The message exceeds the ring's maximum payload ({@link Sender#maxPayload()}, {@link Connection#maxRequest()}), or a destination buffer is too small for it. */
public class TooLargeException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public TooLargeException(String message) {
        super(Status.TOO_LARGE, message);
    }

    TooLargeException(Status status, String message) {
        super(status, message);
    }
}
