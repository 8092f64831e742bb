package dev.memtube;

/** Status to exception, with the C library's thread-local message. */
final class Errors {
    private Errors() {}

    /** Throws for any status but OK. Call right after the native call, on the same thread. */
    static void check(int st) throws MemtubeException {
        if (st != 0) throw of(st);
    }

    /**
     * The exception for a failed status. INVALID_ARGUMENT is thrown as an
     * {@link IllegalArgumentException} (a programming error, unchecked).
     */
    static MemtubeException of(int st) {
        if (st == Native.EXCEPTION_PENDING) {
            // The native method returned with a Java exception pending, which the
            // JVM has thrown already: this is unreachable.
            throw new AssertionError("JNI exception not thrown");
        }
        String msg = Native.lastError();
        Status s = Status.of(st);
        if (msg == null || msg.isEmpty()) msg = "MEMTUBE_" + s;
        switch (s) {
            case CLOSED: return new ClosedException(msg);
            case PEER_GONE: return new PeerGoneException(msg);
            case TIMEOUT: return new TimeoutException(msg);
            case CANCELLED: return new CancelledException(msg);
            case TOO_LARGE: return new TooLargeException(msg);
            case REPLY_TOO_LARGE: return new ReplyTooLargeException(msg);
            case CORRUPT: return new CorruptException(msg);
            case HANDSHAKE: return new HandshakeException(msg);
            case PROTOCOL: return new ProtocolException(msg);
            case PERMISSION_DENIED: return new PermissionDeniedException(msg);
            case ADDR_IN_USE: return new AddressInUseException(msg);
            case NO_LISTENER: return new NoListenerException(msg);
            case NOT_A_SOCKET: return new NotASocketException(msg);
            case NO_SUCH_HANDLE: return new NoSuchHandleException(msg);
            case UNSUPPORTED: return new UnsupportedException(msg);
            case OS: return new OsException(msg, Native.lastOsError());
            case BUSY: return new BusyException(msg);
            case INVALID_ARGUMENT: throw new IllegalArgumentException(msg);
            default: return new MemtubeException(s, msg);
        }
    }

    /** A query's result encoded as {@code >= 0} value or {@code -(status + 1)}. */
    static int value(int r) throws MemtubeException {
        if (r < 0) throw of(-r - 1);
        return r;
    }

    static long value(long r) throws MemtubeException {
        if (r < 0) throw of((int) (-r - 1));
        return r;
    }
}
