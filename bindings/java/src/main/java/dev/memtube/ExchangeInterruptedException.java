package dev.memtube;

import java.io.InterruptedIOException;

/**
 * A {@link Sender#sendRecv sendRecv} was interrupted ({@link Thread#interrupt()})
 * while it waited: for room in the ring (nothing sent; {@link #messageSent()}
 * false) or, after its message went out, for the next message
 * ({@link #messageSent()} true, {@link #bytesTransferred} the message's
 * length: continue with {@link Receiver#recv}, do not send it again). The
 * thread's interrupt status stays set, as for every interrupted wait here.
 */
public class ExchangeInterruptedException extends InterruptedIOException {
    private static final long serialVersionUID = 1L;
    private final boolean sent;

    ExchangeInterruptedException(String message, boolean sent, int length) {
        super(message);
        this.sent = sent;
        this.bytesTransferred = sent ? length : 0;
    }

    /** Whether the message went out before the interrupt (then receive, never resend). */
    public boolean messageSent() {
        return sent;
    }
}
