package dev.memtube;

/** The handle is busy: a grant is outstanding on the sender (commit or abort it first), a memtube call was made from inside a serve handler on the connection being served, or another thread is using the handle right now (handles are for one thread at a time). */
public class BusyException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public BusyException(String message) {
        super(Status.BUSY, message);
    }

    BusyException(Status status, String message) {
        super(status, message);
    }
}
