package dev.memtube;

/** This side of the connection has no such handle: a sender on the receiving side of a one-way connection, the receiver on its sending side, or call on a one-way connection. */
public class NoSuchHandleException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public NoSuchHandleException(String message) {
        super(Status.NO_SUCH_HANDLE, message);
    }

    NoSuchHandleException(Status status, String message) {
        super(status, message);
    }
}
