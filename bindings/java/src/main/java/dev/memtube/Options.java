package dev.memtube;

import java.time.Duration;

/**
 * Connection options, a mutable builder: {@code new Options().capacity(1 << 20).duplex(true)}.
 * {@link Memtube#listen}, {@link Memtube#connect} and {@link Listener#accept(Options, Duration)}
 * copy what they need, so an Options may be changed or reused after.
 *
 * <p>The defaults are the C ABI's: the connector sends, 64 KiB rings, not
 * duplex, isolation on, spin-then-sleep waiting, same uid only, 5 s connect
 * and handshake timeouts, 64 MiB largest ring a connector accepts.
 */
public final class Options {
    private Integer capacity;
    private Integer maxCapacity;
    private boolean duplex;
    private boolean isolation = true;
    private boolean pureSpin;
    private boolean hugePages;
    private boolean mlock;
    private Direction direction = Direction.CONNECTOR_TO_LISTENER;
    private Duration connectTimeout;
    private Duration handshakeTimeout;
    private int uidKind; // 0 same uid, 1 any, 2 list
    private int[] uids;
    private CancelToken cancelToken;

    /**
     * Data-area bytes of each ring: a power of two from 64 to 2^31 (checked
     * when used: IllegalArgumentException). The largest message is half of it less 8.
     */
    public Options capacity(int bytes) {
        capacity = bytes;
        return this;
    }

    /** The largest ring a connector accepts from a listener (default 64 MiB). */
    public Options maxCapacity(int bytes) {
        maxCapacity = bytes;
        return this;
    }

    /** Two rings, one each way (needed by call/serve). */
    public Options duplex(boolean on) {
        duplex = on;
        return this;
    }

    /** Kernel-enforced isolation (default on): each side maps the other's pages read-only. */
    public Options isolation(boolean on) {
        isolation = on;
        return this;
    }

    /** Blocked calls only spin, never sleep: the lowest latency, a core burnt per waiter. */
    public Options pureSpin(boolean on) {
        pureSpin = on;
        return this;
    }

    /** Back the rings with 2 MiB huge pages ({@link UnsupportedException} when the kernel has none). */
    public Options hugePages(boolean on) {
        hugePages = on;
        return this;
    }

    /** mlock this side's mappings. */
    public Options mlock(boolean on) {
        mlock = on;
        return this;
    }

    /** Which side sends in a one-way connection. */
    public Options direction(Direction d) {
        if (d == null) throw new IllegalArgumentException("direction is null");
        direction = d;
        return this;
    }

    /** How long connect waits for the listener's backlog to have room; null: no limit. */
    public Options connectTimeout(Duration d) {
        connectTimeout = d == null ? Duration.ofSeconds(-1) : d;
        return this;
    }

    /** How long either side waits for the other's handshake message; null: no limit. */
    public Options handshakeTimeout(Duration d) {
        handshakeTimeout = d == null ? Duration.ofSeconds(-1) : d;
        return this;
    }

    /** Only processes of this process's uid may connect (the default). */
    public Options allowSameUid() {
        uidKind = 0;
        uids = null;
        return this;
    }

    /** Anyone who can reach the socket may connect. */
    public Options allowAnyUid() {
        uidKind = 1;
        uids = null;
        return this;
    }

    /** Only these uids may connect (none: nobody). */
    public Options allowUids(int... list) {
        uidKind = 2;
        uids = list.clone();
        return this;
    }

    /** Blocking calls of listeners and connections made with these options stop when it is cancelled. */
    public Options cancelToken(CancelToken token) {
        cancelToken = token;
        return this;
    }

    /** A copy (the listener keeps one for the connections it accepts). */
    Options copy() {
        Options o = new Options();
        o.capacity = capacity;
        o.maxCapacity = maxCapacity;
        o.duplex = duplex;
        o.isolation = isolation;
        o.pureSpin = pureSpin;
        o.hugePages = hugePages;
        o.mlock = mlock;
        o.direction = direction;
        o.connectTimeout = connectTimeout;
        o.handshakeTimeout = handshakeTimeout;
        o.uidKind = uidKind;
        o.uids = uids == null ? null : uids.clone();
        o.cancelToken = cancelToken;
        return o;
    }

    /** A native memtube_options with these settings; the caller frees it. */
    long toNative() throws MemtubeException {
        return toNative(null);
    }

    /**
     * As {@link #toNative()}, for a connection with its own token {@code conn}
     * (not null): the options carry it instead of the user's token, which is
     * linked to it (cancelling the user's token cancels it).
     */
    long toNative(ConnectionToken conn) throws MemtubeException {
        long o = Native.optionsNew();
        if (o == 0) throw new OutOfMemoryError("memtube_options_new");
        boolean ok = false;
        try {
            if (capacity != null) set(o, Native.OPT_CAPACITY, Integer.toUnsignedLong(capacity));
            if (maxCapacity != null) set(o, Native.OPT_MAX_CAPACITY, Integer.toUnsignedLong(maxCapacity));
            set(o, Native.OPT_DUPLEX, duplex ? 1 : 0);
            set(o, Native.OPT_ISOLATION, isolation ? 1 : 0);
            set(o, Native.OPT_PURE_SPIN, pureSpin ? 1 : 0);
            set(o, Native.OPT_HUGE_PAGES, hugePages ? 1 : 0);
            set(o, Native.OPT_MLOCK, mlock ? 1 : 0);
            set(o, Native.OPT_DIRECTION, direction.ordinal());
            if (connectTimeout != null) set(o, Native.OPT_CONNECT_TIMEOUT, Handle.nanos(neg(connectTimeout)));
            if (handshakeTimeout != null) set(o, Native.OPT_HANDSHAKE_TIMEOUT, Handle.nanos(neg(handshakeTimeout)));
            if (uidKind != 0) Errors.check(Native.optionsSetUidPolicy(o, uidKind, uids));
            if (conn != null) {
                if (cancelToken != null) cancelToken.link(conn);
                synchronized (conn) {
                    set(o, Native.OPT_CANCEL_TOKEN, conn.ptr());
                }
            } else if (cancelToken != null) {
                synchronized (cancelToken) {
                    set(o, Native.OPT_CANCEL_TOKEN, cancelToken.ptr());
                }
            }
            ok = true;
            return o;
        } finally {
            if (!ok) Native.optionsFree(o);
        }
    }

    private static Duration neg(Duration d) {
        return d.isNegative() ? null : d;
    }

    private static void set(long o, int what, long v) throws MemtubeException {
        Errors.check(Native.optionsSet(o, what, v));
    }
}
