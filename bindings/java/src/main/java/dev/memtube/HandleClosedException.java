package dev.memtube;

/**
 * A blocking call ended because another thread closed the handle it was
 * using (like {@code java.nio.channels.AsynchronousCloseException}). Using a
 * handle after it was closed is an {@link IllegalStateException} instead.
 */
public class HandleClosedException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public HandleClosedException(String message) {
        super(Status.UNKNOWN, message);
    }
}
