package dev.memtube;

/** The path exists and is not a socket (memtube never replaces it). */
public class NotASocketException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public NotASocketException(String message) {
        super(Status.NOT_A_SOCKET, message);
    }

    NotASocketException(Status status, String message) {
        super(status, message);
    }
}
