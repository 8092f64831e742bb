package dev.memtube;

/** The peer broke the call/serve protocol (also what a caller gets when the server's handler threw). */
public class ProtocolException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public ProtocolException(String message) {
        super(Status.PROTOCOL, message);
    }

    ProtocolException(Status status, String message) {
        super(status, message);
    }
}
