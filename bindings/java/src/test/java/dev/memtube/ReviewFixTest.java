package dev.memtube;

import static dev.memtube.Util.check;
import static dev.memtube.Util.expect;

import dev.memtube.TestRunner.Test;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;

/** Regression tests for the findings of the Java binding's review (review-java.md). */
public final class ReviewFixTest {
    private static final Duration T = Duration.ofSeconds(5);

    private static Options duplex() {
        return new Options().duplex(true).capacity(1 << 20);
    }

    /**
     * Finding 1: a buffer from Reply.extend stays over memory Java owns, so
     * reading it after a later write (which grows the reply) reads the bytes
     * written through it, never freed native memory.
     */
    @Test
    public void replyExtendBufferNeverPointsIntoNativeMemory() throws Exception {
        try (Util.Pair p = Util.pair(duplex())) {
            AtomicReference<Throwable> served = new AtomicReference<>();
            Thread server = new Thread(() -> {
                try {
                    p.l.serveOne((ty, req, reply) -> {
                        ByteBuffer head = reply.extend(64);
                        for (int i = 0; i < 64; i++) head.put(i, (byte) 0x5A);
                        reply.write(new byte[256 * 1024]); // grows the reply: head is now stale
                        reply.write(head.duplicate()); // reads the stale buffer
                        return 7;
                    }, T);
                } catch (Throwable t) {
                    served.set(t);
                }
            });
            server.start();
            try (Message m = p.c.call(1, new byte[1], T)) {
                byte[] got = m.toByteArray();
                check(got.length == 64 + 256 * 1024 + 64, "reply length " + got.length);
                byte[] tail = Arrays.copyOfRange(got, got.length - 64, got.length);
                byte[] want = new byte[64];
                Arrays.fill(want, (byte) 0x5A);
                check(Arrays.equals(Arrays.copyOf(got, 64), want), "head written through extend");
                check(Arrays.equals(tail, want), "stale extend buffer read its own bytes: " + Arrays.toString(tail));
            }
            server.join(5000);
            check(served.get() == null, "serve: " + served.get());
        }
    }

    /** Finding 2: a grant's buffer is not handed out once its connection (or split sender) is closed. */
    @Test
    public void grantBufferRefusedAfterClose() throws Exception {
        try (Util.Pair p = Util.pair(duplex())) {
            Grant g = p.c.sender().reserve(64, T);
            g.buffer().putLong(0, 1); // fine while open
            p.c.close();
            expect(IllegalStateException.class, g::buffer);
            g.abort(); // harmless
        }
        try (Util.Pair p = Util.pair(duplex())) {
            Grant g = p.c.sender().reserve(64, T);
            Connection.Split s = p.c.split();
            g.buffer().putLong(0, 2); // moved to the owned sender, still open
            s.sender().close();
            expect(IllegalStateException.class, g::buffer);
            s.receiver().close();
        }
    }

    /**
     * Finding 3: close() from another thread ends a call waiting without a
     * time limit promptly (the connection's cancel token), on both the
     * connecting and the accepting side.
     */
    @Test
    public void closeEndsACallWithoutTimeout() throws Exception {
        for (int side = 0; side < 2; side++) {
            try (Util.Pair p = Util.pair(duplex())) {
                Connection caller = side == 0 ? p.c : p.l;
                Connection other = side == 0 ? p.l : p.c;
                AtomicReference<Throwable> got = new AtomicReference<>();
                Thread t = new Thread(() -> {
                    try {
                        caller.call(1, new byte[8], null); // nobody serves
                        got.set(new AssertionError("call returned"));
                    } catch (Throwable e) {
                        got.set(e);
                    }
                });
                t.start();
                Util.sleep(200);
                Thread closer = new Thread(caller::close);
                long t0 = System.nanoTime();
                closer.start();
                closer.join(3000);
                boolean prompt = !closer.isAlive();
                if (!prompt) other.close(); // unblock the old code's hang
                closer.join(5000);
                t.join(5000);
                check(prompt, "side " + side + ": close() returned within 3 s");
                check(Util.ms(t0) < 3000, "close took " + Util.ms(t0) + " ms");
                check(got.get() instanceof HandleClosedException, "side " + side + ": call ended with " + got.get());
            }
        }
    }

    /** Finding 3 with a user's token: cancelling it still ends a call (it is linked to the connection's). */
    @Test
    public void userCancelTokenStillStopsCall() throws Exception {
        try (CancelToken tok = new CancelToken(); Util.Pair p = Util.pair(duplex(), duplex().cancelToken(tok))) {
            AtomicReference<Throwable> got = new AtomicReference<>();
            Thread t = new Thread(() -> {
                try {
                    p.c.call(1, new byte[8], null);
                } catch (Throwable e) {
                    got.set(e);
                }
            });
            t.start();
            Util.sleep(100);
            tok.cancel();
            t.join(3000);
            check(got.get() instanceof CancelledException, "call ended with " + got.get());
        }
    }

    /** Finding 5: the window over the ring is found under the guard, at the receive (not by payload()). */
    @Test
    public void windowFoundAtReceive() throws Exception {
        try (Util.Pair p = Util.pair(new Options())) {
            p.c.sender().send(new byte[100], 1);
            Receiver rx = p.l.receiver();
            try (Message m = rx.recv(T)) {
                check(rx.hasWindow(), "window found by the receive, under the guard");
                check(m.payload().remaining() == 100, "payload");
            }
        }
    }

    /**
     * Finding 6: a call whose request lies in the message the connection
     * holds sends the request's bytes (copied before memtube_call releases
     * that message). The peer overwrites the released space before reading
     * the request (a serve handler that first fills the ring) would show the
     * corruption; here the test checks the bytes arrive intact.
     */
    @Test
    public void callWithRequestInHeldMessage() throws Exception {
        try (Util.Pair p = Util.pair(duplex())) {
            Thread server = new Thread(() -> {
                try {
                    for (int i = 0; i < 2; i++) p.l.serveOne((ty, req, reply) -> {
                        reply.write(req);
                        return ty;
                    }, T);
                } catch (Throwable e) {
                    throw new RuntimeException(e);
                }
            });
            server.start();
            byte[] want = new byte[300];
            for (int i = 0; i < want.length; i++) want[i] = (byte) (i * 7 + 1);
            Message first = p.c.call(1, want, T);
            try (Message second = p.c.call(2, first.payload(), T)) {
                check(Arrays.equals(second.toByteArray(), want), "the request from the held reply arrived intact");
            }
            server.join(5000);
        }
    }
}
