package dev.memtube;

import java.nio.ByteBuffer;

/**
 * Space reserved in a sender's ring ({@link Sender#reserve}): write the
 * message in place through {@link #buffer()}, then {@link #commit} it (one
 * message, published) or {@link #abort()} (nothing sent). try-with-resources
 * aborts a grant that was not committed.
 *
 * <p>While a grant is outstanding every other writing call on its sender
 * throws {@link BusyException}. The buffer is a writable direct buffer over
 * the ring and Java cannot invalidate it: after the commit or abort, writes
 * through it would corrupt later messages, so drop it. After the close of
 * its sender or connection (from any thread) the ring is unmapped:
 * {@link #buffer()} then throws, but a buffer obtained before the close must
 * not be used after it (that would crash the JVM).
 */
public final class Grant implements AutoCloseable {
    Sender sender; // moves to the new sender on Connection.split()
    private final long addr;
    private final int len;
    private ByteBuffer buf;
    private boolean done;

    Grant(Sender sender, long addr, int len) {
        this.sender = sender;
        this.addr = addr;
        this.len = len;
    }

    /**
     * The reserved bytes (the same buffer each time; position 0, limit
     * {@link #size()}, big-endian).
     *
     * @throws IllegalStateException the grant was committed or aborted, or
     *     its sender (or connection) is closed: the ring may be unmapped
     */
    public ByteBuffer buffer() {
        if (done) throw new IllegalStateException("grant already committed or aborted");
        if (sender.guard.isClosed()) {
            throw new IllegalStateException("the grant's sender is closed (its ring is unmapped)");
        }
        if (buf == null) buf = Native.view(addr, len);
        return buf;
    }

    /** How many bytes were reserved. */
    public int size() {
        return len;
    }

    /** The reserved bytes' address in this process (8-byte aligned). */
    public long address() {
        return addr;
    }

    /** Whether it was committed or aborted. */
    public boolean isDone() {
        return done;
    }

    /**
     * Publish the first {@code used} bytes as one message of type {@code typeId}.
     *
     * @throws IllegalArgumentException {@code used} exceeds {@link #size()}
     *     (the grant stays outstanding)
     */
    public void commit(int used, int typeId) throws MemtubeException {
        if (done) throw new IllegalStateException("grant already committed or aborted");
        if (used < 0 || used > len) throw new IllegalArgumentException("used " + used + " of " + len + " reserved");
        Sender s = sender;
        s.guard.enter();
        try {
            Errors.check(Native.commit(s.ptr, used, typeId));
            done = true;
            s.grant = null;
        } finally {
            s.guard.exit();
        }
    }

    /** Drop the grant: nothing is sent. Harmless once done or once its sender is closed. */
    public void abort() {
        if (done) return;
        done = true;
        Sender s = sender;
        try {
            if (!s.guard.enterIfOpen()) return; // the close dropped it
        } catch (BusyException e) {
            done = false;
            throw new IllegalStateException(e.getMessage(), e);
        }
        try {
            Native.abort(s.ptr);
            s.grant = null;
        } finally {
            s.guard.exit();
        }
    }

    /** {@link #abort()} unless committed. */
    @Override
    public void close() {
        abort();
    }
}
