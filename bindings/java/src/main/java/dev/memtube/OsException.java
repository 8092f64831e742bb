package dev.memtube;

/** A system call failed; {@link #errno()} is its errno. */
public class OsException extends MemtubeException {
    private static final long serialVersionUID = 1L;
    private final int errno;

    public OsException(String message, int errno) {
        super(Status.OS, message);
        this.errno = errno;
    }

    /** The errno of the failed system call (0 when unknown). */
    public int errno() {
        return errno;
    }
}
