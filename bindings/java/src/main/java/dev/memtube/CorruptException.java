package dev.memtube;

/** The peer wrote invalid ring contents: the ring is poisoned and every later call on it fails again. */
public class CorruptException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public CorruptException(String message) {
        super(Status.CORRUPT, message);
    }

    CorruptException(Status status, String message) {
        super(status, message);
    }
}
