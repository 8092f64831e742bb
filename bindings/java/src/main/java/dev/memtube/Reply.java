package dev.memtube;

import java.nio.ByteBuffer;
import java.util.Objects;

/** The reply a {@link Handler} fills; valid only during the handler's call. */
public final class Reply {
    private long ptr;

    Reply(long ptr) {
        this.ptr = ptr;
    }

    void invalidate() {
        ptr = 0;
    }

    private long ptr() {
        if (ptr == 0) throw new IllegalStateException("a Reply is valid only inside its handler");
        return ptr;
    }

    /** Append {@code data}. */
    public Reply write(byte[] data) throws MemtubeException {
        return write(data, 0, data.length);
    }

    /** Append {@code len} bytes of {@code data} from {@code off}. */
    public Reply write(byte[] data, int off, int len) throws MemtubeException {
        Objects.checkFromIndexSize(off, len, data.length);
        Errors.check(Native.replyWriteArray(ptr(), data, off, len));
        return this;
    }

    /** Append the remaining bytes of {@code data} (its position moves to its limit). */
    public Reply write(ByteBuffer data) throws MemtubeException {
        int n = data.remaining();
        if (data.isDirect()) {
            Errors.check(Native.replyWriteDirect(ptr(), data, data.position(), n));
        } else if (data.hasArray()) {
            write(data.array(), data.arrayOffset() + data.position(), n);
        } else {
            byte[] copy = new byte[n];
            data.duplicate().get(copy);
            write(copy);
        }
        data.position(data.limit());
        return this;
    }

    /**
     * Append {@code n} zero bytes and return them as a writable buffer to fill
     * in place, valid until the next call on this reply or the handler's return.
     */
    public ByteBuffer extend(int n) throws MemtubeException {
        if (n < 0) throw new IllegalArgumentException("negative length " + n);
        ByteBuffer b = Native.replyExtend(ptr(), n);
        if (b == null) throw new OsException("out of memory extending a reply", 12);
        return b;
    }
}
