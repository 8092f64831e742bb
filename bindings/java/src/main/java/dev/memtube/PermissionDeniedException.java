package dev.memtube;

/** The peer's uid is not allowed by the uid policy. */
public class PermissionDeniedException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public PermissionDeniedException(String message) {
        super(Status.PERMISSION_DENIED, message);
    }

    PermissionDeniedException(Status status, String message) {
        super(status, message);
    }
}
