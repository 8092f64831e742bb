package dev.memtube;

import java.nio.ByteBuffer;

/**
 * A received message (or a call's reply), in place in the shared ring: no
 * copy, no allocation of its bytes.
 *
 * <p><b>Lifetime.</b> A message is valid until {@link #release()} /
 * {@link #close()} (try-with-resources), the next receive on its receiver
 * (or call/serve on its connection), or the close of its receiver or
 * connection. {@link #payload()} and {@link #toByteArray()} check this and
 * throw {@link IllegalStateException} once it is over. The
 * {@link ByteBuffer} that {@link #payload()} returns cannot be invalidated
 * by Java: after the release it still reads ring memory, which the sender
 * then reuses for later messages (stale or changing bytes, never a crash
 * while the receiver is open). A receiver or connection that is merely
 * forgotten stays mapped while such a buffer is reachable (the Cleaner
 * waits for it). But after an explicit {@code close()} of the receiver or
 * connection the ring is unmapped, and reading a buffer kept past it would
 * crash the JVM. So do not keep a payload buffer past its message: copy
 * what you need.
 *
 * <p>The bytes are the sender's: a hostile sender can change them while you
 * read (never the length). Use {@link Receiver#recvInto} for untrusted peers.
 */
public final class Message implements AutoCloseable {
    private final Receiver rx;
    private final long addr;
    private final int len;
    private final int typeId;
    private final long gen;
    private boolean released;

    Message(Receiver rx, long addr, int len, int typeId, long gen) {
        this.rx = rx;
        this.addr = addr;
        this.len = len;
        this.typeId = typeId;
        this.gen = gen;
    }

    /** The type id the sender gave it (unsigned: {@link Integer#toUnsignedLong}). */
    public int typeId() {
        return typeId;
    }

    /** Its length in bytes. */
    public int size() {
        return len;
    }

    /** The payload's address in this process (in the ring's mapping; 8-byte aligned). */
    public long address() {
        return addr;
    }

    /** The receiver that holds it. */
    Receiver receiver() {
        return rx;
    }

    /** Whether the message is still held (not released, not replaced, receiver open). */
    public boolean isValid() {
        return !released && rx.gen == gen && !rx.guard.isClosed();
    }

    private void check() {
        if (!isValid()) {
            throw new IllegalStateException("message released (release(), a later receive, or its receiver closed)");
        }
    }

    /**
     * The payload as a read-only direct buffer over the ring (no copy),
     * position 0, limit {@link #size()}, big-endian like every new buffer
     * (the interop format is little-endian: {@code order(LITTLE_ENDIAN)}).
     * Valid only while the message is: see the class comment.
     */
    public ByteBuffer payload() {
        check();
        return rx.view(addr, len);
    }

    /** A copy of the payload. */
    public byte[] toByteArray() {
        byte[] a = new byte[len];
        payload().get(a);
        return a;
    }

    /**
     * Give the message's ring space back to the sender. Harmless when it was
     * released already, replaced by a later receive, or its receiver closed.
     */
    public void release() {
        if (released) return;
        boolean entered;
        try {
            entered = rx.guard.enterIfOpen();
        } catch (BusyException e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
        released = true;
        if (!entered) return; // the close released it
        try {
            if (rx.gen == gen) {
                rx.gen++;
                Native.release(rx.ptr); // OK also when nothing is held
            }
        } finally {
            rx.guard.exit();
        }
    }

    /** {@link #release()}, for try-with-resources. */
    @Override
    public void close() {
        release();
    }

    @Override
    public String toString() {
        return "Message[typeId=" + Integer.toUnsignedString(typeId) + ", size=" + len
                + (isValid() ? "" : ", released") + "]";
    }
}
