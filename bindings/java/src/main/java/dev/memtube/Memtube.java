package dev.memtube;

/**
 * Entry points: {@link #listen(String, Options)} and {@link #connect(String, Options)}.
 *
 * <p>An address is a filesystem path (a Unix socket file, created mode 0600)
 * or {@code "@name"}, a Linux abstract socket name.
 */
public final class Memtube {
    private Memtube() {}

    /** Listen on {@code addr} with the default options. */
    public static Listener listen(String addr) throws MemtubeException {
        return listen(addr, new Options());
    }

    /**
     * Listen on {@code addr}. The listener's options decide the rings of the
     * connections it accepts (capacity, duplex, spin, isolation, huge pages).
     *
     * @throws AddressInUseException a live listener owns the address
     * @throws NotASocketException something else is at the path
     * @throws IllegalArgumentException a bad address or option value
     */
    public static Listener listen(String addr, Options options) throws MemtubeException {
        if (addr == null) throw new IllegalArgumentException("addr is null");
        long o = options.toNative();
        try {
            long[] out = new long[1];
            Errors.check(Native.listen(addr, o, out));
            return new Listener(out[0], addr, options.copy());
        } finally {
            Native.optionsFree(o);
        }
    }

    /** Connect to the listener at {@code addr} with the default options. */
    public static Connection connect(String addr) throws MemtubeException {
        return connect(addr, new Options());
    }

    /**
     * Connect to the listener at {@code addr}. Duplex and direction must match
     * the listener's ({@link HandshakeException} otherwise).
     *
     * @throws NoListenerException nothing listens there
     */
    public static Connection connect(String addr, Options options) throws MemtubeException {
        if (addr == null) throw new IllegalArgumentException("addr is null");
        ConnectionToken tok = new ConnectionToken();
        boolean ok = false;
        try {
            long o = options.toNative(tok);
            try {
                long[] out = new long[1];
                Errors.check(Native.connect(addr, o, out));
                Connection c = new Connection(out[0], tok);
                ok = true;
                return c;
            } finally {
                Native.optionsFree(o);
            }
        } finally {
            if (!ok) tok.free();
        }
    }

    /** The native library's version ("0.1.0"). */
    public static String version() {
        return Native.version();
    }

    /** The C ABI version of the library loaded: {@code major << 16 | minor}. */
    public static int abiVersion() {
        return Native.abiVersion();
    }
}
