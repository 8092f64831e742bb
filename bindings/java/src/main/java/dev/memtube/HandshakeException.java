package dev.memtube;

/** The handshake was refused (malformed, mismatched options such as duplex or direction, bad descriptors). */
public class HandshakeException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public HandshakeException(String message) {
        super(Status.HANDSHAKE, message);
    }

    HandshakeException(Status status, String message) {
        super(status, message);
    }
}
