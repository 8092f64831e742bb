package dev.memtube;

/** Not available on this system or with these options (huge pages when the kernel has none, abstract names on macOS). */
public class UnsupportedException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public UnsupportedException(String message) {
        super(Status.UNSUPPORTED, message);
    }

    UnsupportedException(Status status, String message) {
        super(status, message);
    }
}
