package dev.memtube;

import java.io.InterruptedIOException;
import java.lang.ref.Cleaner;
import java.lang.ref.WeakReference;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;

/**
 * One native handle's guard: the C handles are Send, not Sync (one thread at
 * a time), so every call enters the guard with a compare-and-set and leaves
 * it after. A second thread entering meanwhile gets a {@link BusyException}
 * instead of a data race; a closed guard an {@link IllegalStateException}.
 *
 * <p>The pointer of an owned handle lives in an {@link AtomicLong} shared
 * with the {@link Cleaner} action: {@link #close()} and the Cleaner both
 * take it with {@code getAndSet(0)}, so it is freed exactly once, never
 * while a call on it runs (close waits for the guard), and never used
 * after (every use enters the guard first, which fails once closed).
 * Borrowed handles (a connection's sender and receiver) share their
 * connection's guard and own no pointer.
 */
final class Handle {
    static final Cleaner CLEANER = Cleaner.create();

    /** Longest single wait in the C library, so that interrupts and closes are seen. */
    static final long SLICE_NS = 50_000_000L;

    private static final int IDLE = 0, BUSY = 1, CLOSED = 2;

    private final String what;
    /**
     * The Java object the Cleaner watches. Held here on purpose: a thread in
     * a call holds this Handle (it calls {@link #exit()} after the native
     * call), so the referent stays reachable, and the Cleaner cannot free the
     * pointer under a running native call even when the program has dropped
     * every other reference (the case {@code Reference.reachabilityFence}
     * exists for). The Cleaner's action does not reach this Handle.
     */
    @SuppressWarnings("unused")
    private final Object referent;
    private final AtomicInteger state = new AtomicInteger(IDLE);
    private volatile boolean closeRequested;
    // The thread inside a call, only to refuse a close from inside it (a serve
    // handler closing its own connection). Plain field: a thread reading it
    // compares it with itself, and it always sees its own writes.
    private Thread owner;
    private final AtomicLong ptr;
    private final Cleaner.Cleanable cleanable;

    /**
     * The freeing action: holds the pointer and weak references to the view
     * windows handed out, never the Java object it guards.
     *
     * <p>Run by {@link #close()}, it frees at once. Run by the Cleaner (the
     * handle was forgotten), it first checks the windows over the handle's
     * rings (see {@link Receiver#view}): while one is still reachable (a
     * forgotten connection's message buffer kept by the program), the free
     * waits for that window's own collection, so a buffer that outlives a
     * forgotten connection never reads unmapped memory.
     */
    private static final class Free implements Runnable {
        private final AtomicLong ptr;
        private final LongConsumer free;
        private final List<WeakReference<Object>> windows = new ArrayList<>();
        volatile boolean explicit;

        Free(AtomicLong ptr, LongConsumer free) {
            this.ptr = ptr;
            this.free = free;
        }

        synchronized void track(Object window) {
            windows.removeIf(w -> w.get() == null);
            windows.add(new WeakReference<>(window));
        }

        @Override
        public void run() {
            if (!explicit) {
                synchronized (this) {
                    for (WeakReference<Object> w : windows) {
                        Object live = w.get();
                        if (live != null) {
                            CLEANER.register(live, this); // again once that window is collected
                            return;
                        }
                    }
                }
            }
            long p = ptr.getAndSet(0);
            if (p != 0) free.accept(p);
        }
    }

    private final Free action;

    /** Guards (and, when {@code free} is not null, owns) pointer {@code p} for {@code referent}. */
    Handle(String what, Object referent, long p, LongConsumer free) {
        this.what = what;
        this.referent = referent;
        this.ptr = new AtomicLong(p);
        this.action = free == null ? null : new Free(ptr, free);
        this.cleanable = action == null ? null : CLEANER.register(referent, action);
    }

    /**
     * A guarded query: {@code call} (a native call on this handle) between
     * {@link #enter()} and {@link #exit()}, its result checked by
     * {@link Errors#value(int)}.
     */
    int value(IntSupplier call) throws MemtubeException {
        return (int) longValue(call::getAsInt); // an int's value, or its status, is the same as a long
    }

    /** As {@link #value(IntSupplier)} for a native call that returns a long. */
    long longValue(LongSupplier call) throws MemtubeException {
        enter();
        try {
            return Errors.value(call.getAsLong());
        } finally {
            exit();
        }
    }

    /** A guarded call: {@code call} between {@link #enter()} and {@link #exit()}, its status checked by {@link Errors#check}. */
    void check(IntSupplier call) throws MemtubeException {
        enter();
        try {
            Errors.check(call.getAsInt());
        } finally {
            exit();
        }
    }

    /** Keep the native handle mapped while {@code window}, a buffer over its memory, is reachable. */
    void trackWindow(Object window) {
        if (action != null) action.track(window);
    }

    /** The windows still reachable that this handle tracks (to hand on at a split). */
    List<Object> liveWindows() {
        List<Object> l = new ArrayList<>();
        if (action != null) {
            synchronized (action) {
                for (WeakReference<Object> w : action.windows) {
                    Object o = w.get();
                    if (o != null) l.add(o);
                }
            }
        }
        return l;
    }

    /** The pointer; read only between {@link #enter()} and {@link #exit()}. */
    long ptr() {
        return ptr.get();
    }

    void enter() throws BusyException {
        if (!closeRequested && state.compareAndSet(IDLE, BUSY)) {
            owner = Thread.currentThread();
            return;
        }
        if (closeRequested || state.get() == CLOSED) throw new IllegalStateException(what + " is closed");
        throw new BusyException(what + " is in use by another thread (a handle is for one thread at a time)");
    }

    /** As {@link #enter()}, but false (not entered) when the handle is closed. */
    boolean enterIfOpen() throws BusyException {
        if (!closeRequested && state.compareAndSet(IDLE, BUSY)) {
            owner = Thread.currentThread();
            return true;
        }
        if (closeRequested || state.get() == CLOSED) return false;
        throw new BusyException(what + " is in use by another thread (a handle is for one thread at a time)");
    }

    void exit() {
        owner = null;
        // Release store: the next thread's compare-and-set (acquire) sees
        // everything this call did, as with a lock's unlock.
        state.setRelease(IDLE);
    }

    boolean isClosed() {
        return closeRequested || state.get() == CLOSED;
    }

    /**
     * Between two wait slices of a blocking call: throws when the thread was
     * interrupted (the interrupt status stays set, as for NIO channels) or
     * another thread asked to close the handle.
     */
    void checkpoint() throws InterruptedIOException, HandleClosedException {
        if (Thread.currentThread().isInterrupted()) {
            throw new InterruptedIOException(what + ": interrupted while waiting");
        }
        if (closeRequested) throw new HandleClosedException(what + " was closed by another thread");
    }

    /**
     * The exception for a failed status of a blocking call: CANCELLED after
     * another thread asked to close (it cancelled the connection's token) is
     * a {@link HandleClosedException}, as a close noticed between slices is.
     */
    MemtubeException error(int st) {
        if (st == Status.CANCELLED.code() && closeRequested) {
            return new HandleClosedException(what + " was closed by another thread");
        }
        return Errors.of(st);
    }

    void close() {
        close(null);
    }

    /**
     * Close: waits for a call running on another thread to leave (a blocking
     * call notices within one slice, about 50 ms, and throws
     * {@link HandleClosedException}), then frees the pointer once. Idempotent.
     */
    void close(Runnable wake) {
        if (owner == Thread.currentThread()) {
            throw new IllegalStateException(what + " cannot be closed from inside its own call (a serve handler)");
        }
        closeRequested = true;
        // A call that waits in one piece (Connection.call) is woken by the
        // connection's cancel token; sliced waits notice closeRequested.
        if (wake != null && state.get() != CLOSED) wake.run();
        while (true) {
            int s = state.get();
            if (s == CLOSED) return;
            if (s == IDLE && state.compareAndSet(IDLE, CLOSED)) break;
            LockSupport.parkNanos(200_000); // a blocking call leaves within one slice
        }
        if (cleanable != null) {
            action.explicit = true;
            cleanable.clean();
        }
    }

    /**
     * Marks the guard closed after the native handle was consumed (split):
     * nothing is freed. The caller holds the guard.
     */
    void consumed() {
        ptr.set(0);
        closeRequested = true;
        owner = null;
        state.set(CLOSED);
        if (cleanable != null) {
            action.explicit = true;
            cleanable.clean();
        }
    }

    /** A timeout as the C ABI wants it: negative for none. */
    static long nanos(Duration timeout) {
        if (timeout == null) return -1;
        if (timeout.isNegative()) throw new IllegalArgumentException("negative timeout " + timeout);
        try {
            return timeout.toNanos();
        } catch (ArithmeticException e) {
            return -1; // longer than 292 years: no limit
        }
    }

    /**
     * Deadline arithmetic for sliced waits. A lazy wait ({@link #lazy}) reads
     * no clock before its first slice: that slice is min(timeout, SLICE_NS),
     * and the start is only reconstructed (now minus that slice) when it timed
     * out, so a call that succeeds at once costs no clock read.
     */
    static final class Wait {
        private final long total;
        private long start;
        /** The first slice of a lazy wait whose start is not known yet; 0 otherwise. */
        private long first;

        Wait(long timeoutNs) {
            this.total = timeoutNs;
            this.start = timeoutNs > 0 ? System.nanoTime() : 0;
        }

        /** A wait that began at {@code start} (a {@link System#nanoTime()}). */
        Wait(long timeoutNs, long start) {
            this.total = timeoutNs;
            this.start = start;
        }

        /**
         * A wait whose first slice reads no clock. Only for C calls that, when
         * they give TIMEOUT for a slice, waited that whole slice (the start is
         * then taken as now minus the slice).
         */
        static Wait lazy(long timeoutNs) {
            return new Wait(timeoutNs, 0L, timeoutNs > 0 ? Math.min(timeoutNs, SLICE_NS) : 0);
        }

        private Wait(long timeoutNs, long start, long first) {
            this.total = timeoutNs;
            this.start = start;
            this.first = first;
        }

        /** The next slice: at most {@link #SLICE_NS}; 0 when the time is up (or was 0). */
        long slice() {
            if (total < 0) return SLICE_NS;
            if (total == 0) return 0;
            if (first != 0) return first; // lazy, before its first slice timed out
            long left = total - (System.nanoTime() - start);
            return left <= 0 ? 0 : Math.min(left, SLICE_NS);
        }

        /** Whether a TIMEOUT of a slice means the whole wait is over. */
        boolean over() {
            if (total < 0) return false;
            if (total == 0) return true;
            long now = System.nanoTime();
            if (first != 0) { // the first slice (all of it) is behind us
                start = now - first;
                first = 0;
            }
            return now - start >= total;
        }
    }
}
