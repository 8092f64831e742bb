package dev.memtube;

/** The server's reply to this call did not fit in the ring (the server goes on serving). */
public class ReplyTooLargeException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public ReplyTooLargeException(String message) {
        super(Status.REPLY_TOO_LARGE, message);
    }

    ReplyTooLargeException(Status status, String message) {
        super(status, message);
    }
}
