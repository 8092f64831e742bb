package dev.memtube;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Objects;

/**
 * The reply a {@link Handler} fills; valid only during the handler's call.
 *
 * <p>The reply is built in Java heap memory and handed to the C library in
 * one piece when the handler returns (the C library's reply buffer may move
 * on every write, so no Java buffer ever points into it). A buffer from
 * {@link #extend} is therefore valid, like a region of a growing array,
 * until the next {@code write}/{@code extend} on this reply: after that, the
 * reply may have moved to a larger array, and writes through the old buffer
 * are lost (they never reach the reply, and never touch native memory).
 */
public final class Reply {
    private boolean valid = true;
    private byte[] buf = EMPTY;
    private int len;

    private static final byte[] EMPTY = new byte[0];

    Reply() {}

    void invalidate() {
        valid = false;
    }

    private void check() {
        if (!valid) throw new IllegalStateException("a Reply is valid only inside its handler");
    }

    /** Room for {@code n} more bytes; returns the offset they start at. */
    private int grow(int n) {
        check();
        if (n < 0) throw new IllegalArgumentException("negative length " + n);
        int need = len + n;
        if (need < 0) throw new OutOfMemoryError("reply larger than 2 GiB");
        if (need > buf.length) {
            int cap = Math.max(need, Math.max(64, buf.length * 2));
            if (cap < 0) cap = need; // doubling overflowed
            buf = Arrays.copyOf(buf, cap);
        }
        int at = len;
        len = need;
        return at;
    }

    /** How many bytes the reply holds so far. */
    public int size() {
        return len;
    }

    /** Append {@code data}. */
    public Reply write(byte[] data) throws MemtubeException {
        return write(data, 0, data.length);
    }

    /** Append {@code len} bytes of {@code data} from {@code off}. */
    public Reply write(byte[] data, int off, int n) throws MemtubeException {
        Objects.checkFromIndexSize(off, n, data.length);
        int at = grow(n);
        System.arraycopy(data, off, buf, at, n);
        return this;
    }

    /** Append the remaining bytes of {@code data} (its position moves to its limit). */
    public Reply write(ByteBuffer data) throws MemtubeException {
        int n = data.remaining();
        int at = grow(n);
        data.get(buf, at, n);
        return this;
    }

    /**
     * Append {@code n} zero bytes and return them as a writable buffer to fill
     * in place (position 0, limit {@code n}, big-endian). Valid until the next
     * {@code write}/{@code extend} on this reply or the handler's return:
     * writes through it after that are lost (see the class comment).
     */
    public ByteBuffer extend(int n) throws MemtubeException {
        int at = grow(n);
        return ByteBuffer.wrap(buf, at, n).slice();
    }

    /** Hands the reply to the C library: one memtube_reply_write, after the handler returned. */
    void flush(long replyPtr) throws MemtubeException {
        valid = false;
        if (len > 0) Errors.check(Native.replyWriteArray(replyPtr, buf, 0, len));
    }
}
