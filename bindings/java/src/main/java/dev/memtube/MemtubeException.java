package dev.memtube;

import java.io.IOException;

/**
 * A failure of a memtube operation that the caller can act on: the peer
 * closed or died, a timeout, a refused handshake, ... Each kind is a
 * subclass ({@link PeerGoneException}, {@link ClosedException},
 * {@link TimeoutException}, ...), and {@link #status()} gives the C ABI's
 * status. The message is the library's explanation.
 *
 * <p>Checked, as an {@link IOException}: these are failures of
 * communication with another process, which a correct program must expect
 * (like {@code SocketTimeoutException} or {@code ClosedChannelException}).
 * Programming errors are unchecked instead: a bad argument is an
 * {@link IllegalArgumentException}, a closed handle or a released message
 * used again an {@link IllegalStateException}.
 */
public class MemtubeException extends IOException {
    private static final long serialVersionUID = 1L;
    private final Status status;
    /** Set by {@link Sender#sendRecv}: its message went out before this failure. */
    boolean sent;

    public MemtubeException(Status status, String message) {
        super(message);
        this.status = status;
    }

    /** The C ABI status behind this exception ({@link Status#UNKNOWN} for Java-side conditions). */
    public Status status() {
        return status;
    }

    /**
     * Whether a {@link Sender#sendRecv sendRecv} (or {@link Connection#sendRecv})
     * failed after its message went out: then the receive failed, and the way
     * on is {@link Receiver#recv}, never the same sendRecv again (the
     * message would go out twice). False when nothing was sent, and for
     * every other call.
     */
    public boolean messageSent() {
        return sent;
    }
}
