package dev.memtube;

import static dev.memtube.Util.check;
import static dev.memtube.Util.expect;
import static dev.memtube.Util.ms;

import dev.memtube.TestRunner.Test;
import dev.memtube.Util.Pair;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/** Sender.sendRecv / Connection.sendRecv (the C ABI's memtube_sendrecv), both ends in this process. */
public final class SendRecvTest {
    private static final Duration T = Duration.ofSeconds(5);

    private static Options duplex() {
        return new Options().duplex(true).capacity(4096);
    }

    /** Message {@code i}: 1..600 bytes, every byte depending on i and its position. */
    private static byte[] message(int i) {
        byte[] b = new byte[1 + (i * 7919) % 600];
        for (int k = 0; k < b.length; k++) b[k] = (byte) (i * 31 + k * 7 + 3);
        return b;
    }

    /**
     * An echo on another thread over a split pair: receives the first message,
     * then forwards each held message straight from the ring and receives the
     * next in one call, until the peer closes. Completes with the count forwarded.
     */
    private static CompletableFuture<Long> echo(Connection conn) throws Exception {
        Connection.Split s = conn.split();
        return CompletableFuture.supplyAsync(() -> {
            long n = 0;
            try (Sender tx = s.sender(); Receiver rx = s.receiver()) {
                Message m;
                try {
                    m = rx.recv(T);
                } catch (ClosedException e) {
                    return 0L;
                }
                while (true) {
                    try {
                        m = tx.sendRecv(m, m.typeId(), rx, T);
                        n++;
                    } catch (ClosedException e) {
                        if (!e.messageSent()) throw e;
                        return n + 1;
                    }
                }
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
    }

    /**
     * Fills the ring until not even a 1-byte message fits; returns how many
     * went out: types {@code type} (500 bytes), then {@code type + 1} (1 byte).
     */
    private static int fill(Sender tx, int type) throws Exception {
        int n = 0;
        while (tx.trySend(new byte[500], type)) n++;
        while (tx.trySend(new byte[1], type + 1)) n++;
        return n;
    }

    @Test
    public void lockstepAgainstAnEcho() throws Exception {
        CompletableFuture<Long> echoed;
        int n = 500;
        try (Pair p = Util.pair(duplex())) {
            echoed = echo(p.l);
            ByteBuffer direct = ByteBuffer.allocateDirect(600);
            for (int i = 0; i < n; i++) {
                byte[] want = message(i);
                Message m;
                switch (i % 3) {
                    case 0: // byte[] on the connection's own handles
                        m = p.c.sendRecv(want, i, T);
                        break;
                    case 1: { // a direct buffer: its position moves to its limit
                        direct.clear();
                        direct.put(want).flip();
                        m = p.c.sender().sendRecv(direct, i, p.c.receiver(), T);
                        check(!direct.hasRemaining(), "position moved");
                        break;
                    }
                    default: { // a heap buffer with an offset
                        ByteBuffer heap = ByteBuffer.allocate(want.length + 5);
                        heap.position(5);
                        heap.put(want).position(5);
                        m = p.c.sendRecv(heap, i, T);
                        check(heap.position() == heap.limit(), "heap position moved");
                        break;
                    }
                }
                check(m.typeId() == i, "type id " + m.typeId() + " for " + i);
                check(m.size() == want.length, "size " + m.size() + " for " + want.length);
                ByteBuffer got = m.payload();
                for (int k = 0; k < want.length; k++) {
                    check(got.get(k) == want[k], "byte " + k + " of echo " + i);
                }
                // zero copy: the reply is in the ring, and held until the next exchange
                check(m.isValid(), "held");
            }
        }
        check(echoed.get(10, TimeUnit.SECONDS) == n, "the echo forwarded " + echoed.get());
    }

    @Test
    public void failedSendSendsNothingAndKeepsTheHeldMessage() throws Exception {
        try (Pair p = Util.pair(duplex())) {
            Sender ltx = p.l.sender();
            Receiver lrx = p.l.receiver();
            Receiver crx = p.c.receiver();
            ltx.send(new byte[] {4, 5, 6}, 9);
            Message held = crx.recv(T);
            // too large: nothing sent, the held message still valid
            TooLargeException big = expect(TooLargeException.class,
                    () -> p.c.sendRecv(new byte[4096], 1, T));
            check(!big.messageSent(), "too large: not sent");
            check(held.isValid() && Arrays.equals(held.toByteArray(), new byte[] {4, 5, 6}), "still held");
            check(lrx.tryRecv() == null, "nothing went out");
            // a full ring: no room within the timeout, nothing sent, the held message still valid
            int filled = fill(p.c.sender(), 100);
            check(filled > 0, "filled the ring");
            long t0 = System.nanoTime();
            TimeoutException slow = expect(TimeoutException.class,
                    () -> p.c.sendRecv(held, 7, Duration.ofMillis(120)));
            long el = ms(t0);
            check(!slow.messageSent(), "no room: not sent");
            check(el >= 110 && el < 3000, "waited " + el + " ms");
            TimeoutException now = expect(TimeoutException.class, () -> p.c.sendRecv(held, 7, Duration.ZERO));
            check(!now.messageSent(), "no room now: not sent");
            check(held.isValid() && Arrays.equals(held.toByteArray(), new byte[] {4, 5, 6}), "still held after no room");
            // exactly the messages of trySend went out, none of the failed exchanges
            for (int i = 0; i < filled; i++) {
                try (Message m = lrx.recv(T)) {
                    check(m.typeId() == 100 || m.typeId() == 101, "message " + i + " type " + m.typeId());
                }
            }
            check(lrx.tryRecv() == null, "no exchange's message went out");
            // room again: the same held message goes out once, and is released after
            ltx.send(new byte[] {1}, 50);
            Message reply = p.c.sendRecv(held, 7, T);
            check(!held.isValid(), "the forwarded message was released");
            check(reply.typeId() == 50, "reply");
            try (Message m = lrx.recv(T)) {
                check(m.typeId() == 7 && Arrays.equals(m.toByteArray(), new byte[] {4, 5, 6}), "forwarded once");
            }
            check(lrx.tryRecv() == null, "no duplicate");
        }
    }

    /** Timeouts shorter than one wait slice (the first slice reads no clock: it is the whole timeout). */
    @Test
    public void timeoutsShorterThanOneSlice() throws Exception {
        try (Pair p = Util.pair(duplex())) {
            Receiver lrx = p.l.receiver();
            // sent, then no reply within 30 ms
            long t0 = System.nanoTime();
            TimeoutException e = expect(TimeoutException.class,
                    () -> p.c.sendRecv(new byte[] {1}, 1, Duration.ofMillis(30)));
            long el = ms(t0);
            check(e.messageSent(), "the message went out");
            check(el >= 25 && el < 3000, "waited " + el + " ms for the reply");
            try (Message m = lrx.recv(T)) {
                check(m.typeId() == 1, "sent once");
            }
            // no room within 30 ms: nothing sent
            int filled = fill(p.c.sender(), 100);
            check(filled > 0, "filled the ring");
            t0 = System.nanoTime();
            TimeoutException full = expect(TimeoutException.class,
                    () -> p.c.sendRecv(new byte[] {2}, 2, Duration.ofMillis(30)));
            el = ms(t0);
            check(!full.messageSent(), "no room: not sent");
            check(el >= 25 && el < 3000, "waited " + el + " ms for room");
        }
    }

    @Test
    public void receiveFailedAfterSendIsNotSentAgain() throws Exception {
        try (Pair p = Util.pair(duplex())) {
            Receiver lrx = p.l.receiver();
            p.l.sender().send(new byte[] {1}, 1);
            Message held = p.c.receiver().recv(T);
            // sent, then no reply in time
            long t0 = System.nanoTime();
            TimeoutException e = expect(TimeoutException.class,
                    () -> p.c.sendRecv(new byte[] {2, 3}, 2, Duration.ofMillis(150)));
            long el = ms(t0);
            check(e.messageSent(), "the message went out");
            check(el >= 140 && el < 3000, "waited " + el + " ms for the reply");
            check(!held.isValid(), "the receive released the held message");
            // with Duration.ZERO neither step waits
            TimeoutException z = expect(TimeoutException.class, () -> p.c.sendRecv(new byte[] {4}, 3, Duration.ZERO));
            check(z.messageSent(), "sent, nothing to receive now");
            // the way on is a plain receive: the peer got each message exactly once
            try (Message m = lrx.recv(T)) {
                check(m.typeId() == 2 && Arrays.equals(m.toByteArray(), new byte[] {2, 3}), "first");
            }
            try (Message m = lrx.recv(T)) {
                check(m.typeId() == 3 && Arrays.equals(m.toByteArray(), new byte[] {4}), "second");
            }
            check(lrx.tryRecv() == null, "no message went out twice");
            p.l.sender().send(new byte[] {9}, 99);
            try (Message m = p.c.receiver().recv(T)) {
                check(m.typeId() == 99, "the reply, by recv");
            }
            // sent, then the peer's sending side closes: ClosedException with messageSent
            Connection.Split s = p.l.split();
            s.sender().close();
            try (Receiver r = s.receiver()) {
                ClosedException c = expect(ClosedException.class, () -> p.c.sendRecv(new byte[] {5}, 5, T));
                check(c.messageSent(), "sent before the close was seen");
                try (Message m = r.recv(T)) {
                    check(m.typeId() == 5, "delivered once");
                }
                check(r.tryRecv() == null, "once");
            }
        }
    }

    @Test
    public void interruptAndCloseWhileWaiting() throws Exception {
        try (Pair p = Util.pair(duplex())) {
            Connection.Split s = p.c.split();
            Sender tx = s.sender();
            Receiver rx = s.receiver();
            // waiting for the reply: interrupted, sent
            AtomicReference<Throwable> got = new AtomicReference<>();
            Thread t = new Thread(() -> {
                try {
                    tx.sendRecv(new byte[] {7, 7, 7}, 7, rx, null);
                } catch (Throwable e) {
                    got.set(e);
                }
            });
            t.start();
            try (Message m = p.l.receiver().recv(T)) {
                check(m.typeId() == 7, "the message went out");
            }
            t.interrupt();
            t.join(2000);
            check(!t.isAlive(), "ended");
            check(got.get() instanceof ExchangeInterruptedException, "interrupted: " + got.get());
            ExchangeInterruptedException ie = (ExchangeInterruptedException) got.get();
            check(ie.messageSent() && ie.bytesTransferred == 3, "sent, 3 bytes");
            // waiting for room: interrupted, nothing sent
            fill(tx, 1);
            got.set(null);
            t = new Thread(() -> {
                try {
                    tx.sendRecv(new byte[] {8}, 8, rx, null);
                } catch (Throwable e) {
                    got.set(e);
                }
            });
            t.start();
            Util.sleep(120);
            t.interrupt();
            t.join(2000);
            check(got.get() instanceof ExchangeInterruptedException, "interrupted: " + got.get());
            check(!((ExchangeInterruptedException) got.get()).messageSent(), "not sent");
            int ones = 0;
            Message m;
            while ((m = p.l.receiver().tryRecv()) != null) {
                check(m.typeId() == 1 || m.typeId() == 2, "only the filling messages, got type " + m.typeId());
                ones++;
            }
            check(ones > 0, "filled");
            // a close of the receiver from another thread: HandleClosedException, sent
            got.set(null);
            CountDownLatch in = new CountDownLatch(1);
            t = new Thread(() -> {
                try {
                    in.countDown();
                    tx.sendRecv(new byte[] {9}, 9, rx, null);
                } catch (Throwable e) {
                    got.set(e);
                }
            });
            t.start();
            in.await();
            try (Message r = p.l.receiver().recv(T)) {
                check(r.typeId() == 9, "sent");
            }
            rx.close();
            t.join(2000);
            check(got.get() instanceof HandleClosedException, "closed: " + got.get());
            check(((HandleClosedException) got.get()).messageSent(), "closed after the send");
            tx.close();
        }
    }

    @Test
    public void forwardAHeldMessage() throws Exception {
        try (Pair a = Util.pair(duplex()); Pair b = Util.pair(duplex())) {
            byte[] body = message(41);
            a.l.sender().send(body, 41);
            Message held = a.c.receiver().recv(T);
            long addr = held.address();
            // forward to the same connection's peer, as the payload's view (a direct buffer in the ring)
            a.l.sender().send(new byte[] {1}, 1);
            Message next = a.c.sendRecv(held.payload(), 42, T);
            check(!held.isValid(), "released after the send");
            check(next.typeId() == 1, "then the next message");
            try (Message m = a.l.receiver().recv(T)) {
                check(m.typeId() == 42 && Arrays.equals(m.toByteArray(), body), "forwarded bytes");
            }
            // forward a held Message (no buffer made) to another connection's sender;
            // the message must be rx's
            Message other = next;
            expect(IllegalArgumentException.class, () -> b.c.sender().sendRecv(other, 1, b.c.receiver(), T));
            check(b.l.receiver().tryRecv() == null, "nothing sent for a foreign message");
            check(other.isValid(), "and it stays held");
            // a proxy: rx's held message forwarded on another connection's sender,
            // then the next message received on rx
            a.l.sender().send(new byte[] {2}, 2);
            Message r = b.c.sender().sendRecv(next, 43, a.c.receiver(), T);
            check(!next.isValid(), "released after the send");
            check(r.typeId() == 2 && Arrays.equals(r.toByteArray(), new byte[] {2}), "the next on rx");
            try (Message m = b.l.receiver().recv(T)) {
                check(m.typeId() == 43 && Arrays.equals(m.toByteArray(), new byte[] {1}), "forwarded the held one");
            }
            // released messages are refused, nothing sent
            expect(IllegalStateException.class, () -> a.c.sendRecv(next, 44, T));
            check(a.l.receiver().tryRecv() == null, "nothing sent for a released message");
            check(r.isValid(), "the refused call left rx's message held");
            check(addr != 0, "address");
        }
    }

    @Test
    public void misuse() throws Exception {
        // a one-way connection has no exchange
        try (Pair p = Util.pair(new Options())) {
            expect(NoSuchHandleException.class, () -> p.c.sendRecv(new byte[] {1}, 1, T));
        }
        try (Pair p = Util.pair(duplex())) {
            Connection.Split s = p.c.split();
            Sender tx = s.sender();
            Receiver rx = s.receiver();
            // another thread in the receiver: Busy, nothing sent
            CountDownLatch in = new CountDownLatch(1);
            CompletableFuture<Throwable> blocked = CompletableFuture.supplyAsync(() -> {
                in.countDown();
                try {
                    rx.recv(T).release();
                    return null;
                } catch (Throwable e) {
                    return e;
                }
            });
            in.await();
            Util.sleep(100);
            BusyException busy = expect(BusyException.class, () -> tx.sendRecv(new byte[] {1}, 1, rx, T));
            check(!busy.messageSent(), "busy: not sent");
            check(p.l.receiver().tryRecv() == null, "nothing sent while the receiver was busy");
            p.l.sender().send(new byte[] {0}, 0); // ends the blocked recv
            check(blocked.get(10, TimeUnit.SECONDS) == null, "the other thread's recv");
            // another thread in the sender (waiting for room): Busy, and the receiver is left free
            fill(tx, 1);
            CountDownLatch in2 = new CountDownLatch(1);
            CompletableFuture<Throwable> sending = CompletableFuture.supplyAsync(() -> {
                in2.countDown();
                try {
                    tx.send(new byte[] {2}, 2, Duration.ofMillis(400));
                    return null;
                } catch (Throwable e) {
                    return e;
                }
            });
            in2.await();
            Util.sleep(100);
            expect(BusyException.class, () -> tx.sendRecv(new byte[] {3}, 3, rx, T));
            check(rx.tryRecv() == null, "the receiver is usable (its guard was left)");
            check(sending.get(10, TimeUnit.SECONDS) instanceof TimeoutException, "the other send timed out");
            // an outstanding grant: Busy, nothing sent
            while (p.l.receiver().tryRecv() != null) { /* drain */ }
            Grant g = tx.reserve(8, T);
            BusyException gb = expect(BusyException.class, () -> tx.sendRecv(new byte[] {4}, 4, rx, T));
            check(!gb.messageSent(), "grant: not sent");
            g.abort();
            check(p.l.receiver().tryRecv() == null, "nothing sent with a grant out");
            // closed handles
            rx.close();
            expect(IllegalStateException.class, () -> tx.sendRecv(new byte[] {5}, 5, rx, T));
            check(p.l.receiver().tryRecv() == null, "nothing sent to a closed receiver's exchange");
            tx.close();
            Receiver other = p.l.receiver();
            expect(IllegalStateException.class, () -> tx.sendRecv(new byte[] {6}, 6, other, T));
        }
        Pair p = Util.pair(duplex());
        p.close();
        expect(IllegalStateException.class, () -> p.c.sendRecv(new byte[] {7}, 7, T));
    }
}
