package dev.memtube;

/** The timeout elapsed (receive, send, reserve, accept, call, handshake). Named like {@code java.util.concurrent.TimeoutException}: import one of the two. */
public class TimeoutException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public TimeoutException(String message) {
        super(Status.TIMEOUT, message);
    }

    TimeoutException(Status status, String message) {
        super(status, message);
    }
}
