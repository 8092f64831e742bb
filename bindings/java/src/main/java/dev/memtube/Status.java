package dev.memtube;

/**
 * The C ABI's status codes ({@code enum memtube_status}), carried by every
 * {@link MemtubeException}. The numbers are the ABI's and stable.
 */
public enum Status {
    OK(0), EMPTY(1), FULL(2), TIMEOUT(3), CLOSED(4), PEER_GONE(5), CANCELLED(6), TOO_LARGE(7),
    REPLY_TOO_LARGE(8), CORRUPT(9), HANDSHAKE(10), PROTOCOL(11), PERMISSION_DENIED(12),
    ADDR_IN_USE(13), NO_LISTENER(14), NOT_A_SOCKET(15), NO_SUCH_HANDLE(16), UNSUPPORTED(17), OS(18),
    INVALID_ARGUMENT(19), BUSY(20), BAD_REGION(21), ROLE_TAKEN(22), PANIC(23),
    /** A status this binding does not know (a newer library), or none (a Java-side condition). */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The ABI's number ({@code MEMTUBE_*}); -1 for {@link #UNKNOWN}. */
    public int code() {
        return code;
    }

    private static final Status[] BY_CODE = values();

    /** The status of ABI number {@code code}. */
    public static Status of(int code) {
        return code >= 0 && code < BY_CODE.length - 1 ? BY_CODE[code] : UNKNOWN;
    }
}
