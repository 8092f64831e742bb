package dev.memtube;

/** The {@link CancelToken} of the options was cancelled. */
public class CancelledException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public CancelledException(String message) {
        super(Status.CANCELLED, message);
    }

    CancelledException(Status status, String message) {
        super(status, message);
    }
}
