package dev.memtube;

import static dev.memtube.Util.check;
import static dev.memtube.Util.expect;
import static dev.memtube.Util.ms;

import dev.memtube.TestRunner.Test;
import dev.memtube.Util.Pair;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/** The binding's API, both ends in this process. */
public final class ApiTest {
    private static final Duration T = Duration.ofSeconds(5);

    private static byte[] bytes(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) (seed * 31 + i);
        return b;
    }

    @Test
    public void versionAndAbi() {
        check(Memtube.abiVersion() >>> 16 == 1, "ABI major 1");
        check(!Memtube.version().isEmpty(), "version");
    }

    @Test
    public void oneWayWithOptions() throws Exception {
        try (Pair p = Util.pair(new Options().capacity(4096))) {
            Sender tx = p.c.sender();
            check(tx == p.c.sender(), "the same sender object each time");
            check(tx.capacity() == 4096, "capacity " + tx.capacity());
            check(tx.maxPayload() == 4096 / 2 - 8, "max payload " + tx.maxPayload());
            check(p.l.receiver().maxPayload() == tx.maxPayload(), "receiver max payload");
            expect(NoSuchHandleException.class, () -> p.c.receiver());
            expect(NoSuchHandleException.class, () -> p.l.sender());
        }
        Options rev = new Options().direction(Direction.LISTENER_TO_CONNECTOR);
        try (Pair p = Util.pair(rev)) {
            p.l.sender().send(new byte[] {1, 2, 3}, 9);
            try (Message m = p.c.receiver().recv(T)) {
                check(Arrays.equals(m.toByteArray(), new byte[] {1, 2, 3}) && m.typeId() == 9, "reversed direction");
            }
            expect(NoSuchHandleException.class, () -> p.l.receiver());
        }
    }

    @Test
    public void handshakeMismatch() throws Exception {
        String a = Util.addr();
        try (Listener l = Memtube.listen(a, new Options().duplex(true))) {
            CompletableFuture<Throwable> acc = CompletableFuture.supplyAsync(() -> {
                try {
                    l.accept(T).close();
                    return null;
                } catch (Throwable t) {
                    return t;
                }
            });
            expect(HandshakeException.class, () -> Memtube.connect(a, new Options().duplex(false)));
            Throwable t = acc.get(10, TimeUnit.SECONDS);
            check(t instanceof MemtubeException, "the listener refused the peer too: " + t);
        }
    }

    @Test
    public void uidPolicy() throws Exception {
        int uid;
        try (Pair p = Util.pair(new Options())) {
            uid = p.l.peerCred().uid();
        }
        try (Pair p = Util.pair(new Options().allowUids(12345, uid), new Options())) {
            check(p.c.isPeerAlive(), "our uid is in the list");
        }
        try (Pair p = Util.pair(new Options().allowAnyUid(), new Options())) {
            check(p.c.isPeerAlive(), "any uid");
        }
        String a = Util.addr();
        try (Listener l = Memtube.listen(a, new Options().allowUids())) { // nobody
            CompletableFuture<Throwable> con = CompletableFuture.supplyAsync(() -> {
                try {
                    Memtube.connect(a).close();
                    return null;
                } catch (Throwable t) {
                    return t;
                }
            });
            expect(PermissionDeniedException.class, () -> l.accept(T));
            check(con.get(10, TimeUnit.SECONDS) instanceof MemtubeException, "the refused peer fails: " + con.get());
        }
    }

    @Test
    public void acceptTimeoutsAndAddressErrors() throws Exception {
        String a = Util.addr();
        try (Listener l = Memtube.listen(a)) {
            long t0 = System.nanoTime();
            expect(TimeoutException.class, () -> l.accept(Duration.ofMillis(120)));
            long el = ms(t0);
            check(el >= 110 && el < 3000, "accept waited " + el + " ms");
            expect(TimeoutException.class, () -> l.accept(Duration.ZERO));
            check(l.fd() >= 0, "listener fd");
            check(l.address().equals(a), "address");
            AddressInUseException e = expect(AddressInUseException.class, () -> Memtube.listen(a));
            check(e.status() == Status.ADDR_IN_USE && !e.getMessage().isEmpty(), "status and message");
        }
        expect(NoListenerException.class, () -> Memtube.connect(Util.addr()));
        Path f = Files.createTempFile("memtube-java", ".notasocket");
        try {
            expect(NotASocketException.class, () -> Memtube.listen(f.toString()));
        } finally {
            Files.delete(f);
        }
        Path sock = Files.createTempDirectory("memtube-java").resolve("s.sock");
        Listener pl = Memtube.listen(sock.toString());
        check(Files.exists(sock), "socket file created");
        pl.close();
        check(!Files.exists(sock), "socket file removed on close");
        Files.delete(sock.getParent());
        // bad arguments are IllegalArgumentException (unchecked)
        expect(IllegalArgumentException.class, () -> Memtube.listen(Util.addr(), new Options().capacity(100)));
        expect(IllegalArgumentException.class, () -> Memtube.listen(Util.addr(), new Options().capacity(-1)));
        expect(IllegalArgumentException.class, () -> Memtube.listen(null));
        expect(IllegalArgumentException.class, () -> Memtube.listen("@bad\0name"));
    }

    @Test
    public void sendVariantsAndTypeIds() throws Exception {
        try (Pair p = Util.pair(new Options())) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            byte[] a = bytes(100, 1);
            tx.send(a, 1);
            tx.send(a, 10, 20, 2, T);
            ByteBuffer d = ByteBuffer.allocateDirect(64);
            d.put(bytes(64, 3)).flip().position(4);
            tx.send(d, 3, T);
            check(d.position() == d.limit(), "a sent buffer is consumed");
            ByteBuffer h = ByteBuffer.wrap(bytes(80, 4), 8, 50).slice();
            tx.send(h, 4, T);
            ByteBuffer ro = ByteBuffer.wrap(bytes(30, 5)).asReadOnlyBuffer();
            tx.send(ro, 0xFFFFFFFE, T);
            check(tx.trySend(new byte[0], 6), "empty message");
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 1 && Arrays.equals(m.toByteArray(), a), "byte[]");
            }
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 2 && Arrays.equals(m.toByteArray(), Arrays.copyOfRange(a, 10, 30)), "range");
            }
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 3 && Arrays.equals(m.toByteArray(), Arrays.copyOfRange(bytes(64, 3), 4, 64)), "direct");
            }
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 4 && Arrays.equals(m.toByteArray(), Arrays.copyOfRange(bytes(80, 4), 8, 58)), "heap slice");
            }
            try (Message m = rx.recv(T)) {
                check(Integer.toUnsignedLong(m.typeId()) == 0xFFFFFFFEL && Arrays.equals(m.toByteArray(), bytes(30, 5)),
                        "read-only heap, unsigned type id");
            }
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 6 && m.size() == 0 && m.payload().remaining() == 0, "empty");
            }
            check(rx.tryRecv() == null, "nothing more");
            expect(IndexOutOfBoundsException.class, () -> tx.send(a, 90, 20, 0, T));
        }
    }

    @Test
    public void duplexBothWays() throws Exception {
        try (Pair p = Util.pair(new Options().duplex(true))) {
            p.c.sender().send("ping".getBytes(), 1);
            p.l.sender().send("pong".getBytes(), 2);
            try (Message m = p.l.receiver().recv(T)) {
                check(new String(m.toByteArray()).equals("ping") && m.typeId() == 1, "c -> l");
            }
            try (Message m = p.c.receiver().recv(T)) {
                check(new String(m.toByteArray()).equals("pong") && m.typeId() == 2, "l -> c");
            }
        }
    }

    @Test
    public void reserveCommitAbort() throws Exception {
        try (Pair p = Util.pair(new Options())) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            Grant g = tx.reserve(100, T);
            check(g.size() == 100 && g.address() % 8 == 0, "grant");
            ByteBuffer b = g.buffer();
            check(b.isDirect() && !b.isReadOnly() && b.capacity() == 100, "writable direct buffer");
            b.order(ByteOrder.LITTLE_ENDIAN).putLong(0, 0x1122334455667788L);
            // while the grant is outstanding, the sender's writing calls are Busy
            expect(BusyException.class, () -> tx.send(new byte[1], 0));
            expect(BusyException.class, () -> tx.reserve(8));
            expect(BusyException.class, () -> tx.sendStaged(new byte[1], 0));
            check(tx.maxPayload() > 0, "queries still work");
            expect(IllegalArgumentException.class, () -> g.commit(101, 0));
            check(!g.isDone(), "a refused commit leaves the grant outstanding");
            g.commit(8, 77);
            expect(IllegalStateException.class, () -> g.commit(8, 77));
            expect(IllegalStateException.class, g::buffer);
            try (Message m = rx.recv(T)) {
                check(m.size() == 8 && m.typeId() == 77, "committed 8 bytes");
                check(m.payload().order(ByteOrder.LITTLE_ENDIAN).getLong(0) == 0x1122334455667788L, "in-place bytes");
            }
            Grant g2 = tx.reserve(50);
            g2.buffer().put(0, (byte) 1);
            g2.abort();
            g2.abort(); // harmless
            try (Grant g3 = tx.tryReserve(10)) {
                check(g3 != null, "room now");
                g3.buffer().put(0, (byte) 2);
            } // closed without commit: aborted
            check(rx.tryRecv() == null, "aborted grants send nothing");
            tx.send(new byte[] {5}, 5); // the sender is usable again
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 5, "after aborts");
            }
            expect(TooLargeException.class, () -> tx.reserve(tx.maxPayload() + 1, T));
        }
    }

    @Test
    public void stagedAndPublish() throws Exception {
        try (Pair p = Util.pair(new Options().capacity(1024))) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            for (int i = 0; i < 3; i++) check(tx.sendStaged(bytes(20, i), i), "staged " + i);
            check(rx.tryRecv() == null, "staged messages are not visible before publish");
            tx.publish();
            for (int i = 0; i < 3; i++) {
                try (Message m = rx.recv(T)) {
                    check(m.typeId() == i && Arrays.equals(m.toByteArray(), bytes(20, i)), "batch order " + i);
                }
            }
            int n = 0;
            while (tx.sendStaged(ByteBuffer.allocateDirect(100), n)) n++;
            check(n > 0 && n < 20, "staging stops when the ring is full: " + n);
            tx.publish();
            for (int i = 0; i < n; i++) rx.recv(T).release();
            check(rx.tryRecv() == null, "all staged delivered once");
        }
    }

    @Test
    public void zeroCopyViews() throws Exception {
        int cap = 4096;
        try (Pair p = Util.pair(new Options().capacity(cap))) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            byte[] aa = new byte[100];
            Arrays.fill(aa, (byte) 0xAA);
            tx.send(aa, 1);
            Message m = rx.recv(T);
            ByteBuffer v1 = m.payload();
            ByteBuffer v2 = m.payload();
            check(v1.isDirect() && v1.isReadOnly() && v1.remaining() == 100, "read-only direct view");
            expect(java.nio.ReadOnlyBufferException.class, () -> v1.put(0, (byte) 0));
            check(m.address() % 8 == 0, "8-byte aligned");
            long first = m.address();
            m.release();
            check(!m.isValid(), "released");
            expect(IllegalStateException.class, m::payload);
            expect(IllegalStateException.class, m::toByteArray);
            m.release(); // harmless twice
            // The sender now reuses that ring space. If the views were copies they
            // would still read 0xAA; views over the ring see the new bytes.
            byte[] ff = new byte[100];
            Arrays.fill(ff, (byte) 0x55);
            long lo = first, hi = first;
            for (int i = 0; i < 3 * cap / 100; i++) {
                tx.send(ff, 2);
                try (Message k = rx.recv(T)) {
                    lo = Math.min(lo, k.address());
                    hi = Math.max(hi, k.address());
                }
            }
            check(hi - lo < cap, "every message lies in one ring of " + cap + " bytes: span " + (hi - lo));
            check(v1.get(0) == 0x55 && v1.get(99) == 0x55, "a stale view reads the ring (now the later message)");
            check(v2.get(50) == 0x55, "both views are the same memory");
            // a later receive ends the previous message
            tx.send(aa, 3);
            tx.send(aa, 4);
            Message m3 = rx.recv(T);
            Message m4 = rx.recv(T);
            check(!m3.isValid() && m4.isValid(), "the next receive released the previous message");
            expect(IllegalStateException.class, m3::payload);
            m3.release(); // harmless, and does not release m4
            check(m4.isValid() && m4.toByteArray()[0] == (byte) 0xAA, "m4 still held");
            m4.close();
        }
    }

    @Test
    public void recvIntoCopies() throws Exception {
        try (Pair p = Util.pair(new Options())) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            tx.send(bytes(40, 7), 7);
            ByteBuffer small = ByteBuffer.allocateDirect(16);
            expect(TooLargeException.class, () -> rx.recvInto(small, T));
            check(small.position() == 0, "nothing copied");
            ByteBuffer big = ByteBuffer.allocateDirect(64);
            big.position(4);
            check(rx.recvInto(big, T) == 7, "type id");
            check(big.position() == 44, "position moved past the payload");
            byte[] got = new byte[40];
            big.get(4, got);
            check(Arrays.equals(got, bytes(40, 7)), "copied bytes (the message was kept after TooLarge)");
            expect(IllegalArgumentException.class, () -> rx.recvInto(ByteBuffer.allocate(64), T));
            expect(TimeoutException.class, () -> rx.recvInto(big, Duration.ofMillis(20)));
        }
    }

    @Test
    public void callAndServe() throws Exception {
        try (Pair p = Util.pair(new Options().duplex(true).capacity(4096))) {
            AtomicReference<Throwable> served = new AtomicReference<>();
            AtomicReference<Throwable> inner = new AtomicReference<>();
            Thread server = new Thread(() -> {
                try {
                    p.l.serve((ty, req, reply) -> {
                        if (ty == 99) throw new IOException("handler failed on purpose");
                        if (ty == 98) {
                            reply.write(new byte[3000]); // larger than the ring takes
                            return 0;
                        }
                        if (ty == 97) {
                            // memtube calls on the connection being served are refused
                            try {
                                p.l.sender();
                            } catch (Throwable t) {
                                inner.set(t);
                            }
                            try {
                                p.l.close(); // nor may it close its own connection
                                inner.set(new AssertionError("closed from inside the handler"));
                            } catch (IllegalStateException e) {
                                // refused, the connection stays usable
                            }
                            return 97;
                        }
                        check(req.isReadOnly() && req.isDirect(), "request view");
                        int n = req.remaining();
                        if (ty % 2 == 0) {
                            ByteBuffer out = reply.extend(n);
                            for (int k = 0; k < n; k++) out.put(k, req.get(n - 1 - k));
                        } else {
                            byte[] r = new byte[n];
                            for (int k = 0; k < n; k++) r[k] = req.get(n - 1 - k);
                            reply.write(r, 0, n / 2).write(ByteBuffer.wrap(r, n / 2, n - n / 2));
                        }
                        return ty + 1;
                    });
                } catch (Throwable t) {
                    served.set(t);
                }
            });
            server.start();
            check(p.c.maxRequest() == 4096 / 2 - 16, "max request " + p.c.maxRequest());
            for (int i = 0; i < 50; i++) {
                byte[] req = bytes(1 + i * 13, i);
                try (Message r = p.c.call(i, req, T)) {
                    byte[] want = new byte[req.length];
                    for (int k = 0; k < req.length; k++) want[k] = req[req.length - 1 - k];
                    check(r.typeId() == i + 1 && Arrays.equals(r.toByteArray(), want), "reply " + i);
                }
            }
            ByteBuffer dreq = ByteBuffer.allocateDirect(10).put(bytes(10, 1)).flip();
            try (Message r = p.c.call(2, dreq, T)) {
                check(r.size() == 10 && r.typeId() == 3, "call from a direct buffer");
            }
            expect(ReplyTooLargeException.class, () -> p.c.call(98, new byte[1], T));
            try (Message r = p.c.call(97, new byte[1], T)) {
                check(r.typeId() == 97, "served after a refused inner call");
            }
            check(inner.get() instanceof BusyException, "a call from inside the handler is Busy: " + inner.get());
            expect(TooLargeException.class, () -> p.c.call(1, new byte[p.c.maxRequest() + 1], T));
            // the handler's exception: the caller gets Protocol, serve rethrows it
            expect(ProtocolException.class, () -> p.c.call(99, new byte[1], T));
            server.join(5000);
            check(!server.isAlive(), "serve ended");
            check(served.get() instanceof IOException && served.get().getMessage().contains("on purpose"),
                    "serve rethrew the handler's exception: " + served.get());
        }
        try (Pair p = Util.pair(new Options())) {
            expect(NoSuchHandleException.class, () -> p.c.call(1, new byte[1], T));
        }
        try (Pair p = Util.pair(new Options().duplex(true))) {
            expect(TimeoutException.class, () -> p.l.serveOne((t, r, o) -> 0, Duration.ZERO));
            long t0 = System.nanoTime();
            expect(TimeoutException.class, () -> p.l.serveOne((t, r, o) -> 0, Duration.ofMillis(100)));
            check(ms(t0) >= 90, "serveOne waited");
            expect(TimeoutException.class, () -> p.c.call(1, new byte[1], Duration.ofMillis(50)));
            p.c.close();
            p.l.serve((t, r, o) -> 0); // returns normally once the peer closed
        }
    }

    @Test
    public void timeoutsClosedFullTooLarge() throws Exception {
        try (Pair p = Util.pair(new Options().capacity(1024))) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            long t0 = System.nanoTime();
            TimeoutException te = expect(TimeoutException.class, () -> rx.recv(Duration.ofMillis(120)));
            check(ms(t0) >= 110 && te.status() == Status.TIMEOUT, "recv waited " + ms(t0) + " ms");
            expect(TimeoutException.class, () -> rx.recv(Duration.ZERO));
            check(rx.tryRecv() == null, "tryRecv on an empty ring");
            expect(TooLargeException.class, () -> tx.send(new byte[tx.maxPayload() + 1], 0));
            int n = 0;
            while (tx.trySend(new byte[100], n)) n++;
            check(n > 3, "filled with " + n);
            check(tx.tryReserve(100) == null, "tryReserve on a full ring");
            t0 = System.nanoTime();
            expect(TimeoutException.class, () -> tx.send(new byte[100], 0, Duration.ofMillis(100)));
            check(ms(t0) >= 90, "send waited for room");
            p.c.close(); // a clean close: every message is delivered, then Closed
            for (int i = 0; i < n; i++) {
                try (Message m = rx.recv(T)) {
                    check(m.typeId() == i, "message " + i + " delivered before Closed");
                }
            }
            ClosedException ce = expect(ClosedException.class, () -> rx.recv(T));
            check(ce instanceof DisconnectedException && ce.status() == Status.CLOSED, "closed");
            check(rx.probePeer() == PeerState.CLOSED, "peer state closed");
        }
        try (Pair p = Util.pair(new Options())) {
            p.l.close(); // the receiving side goes: the sender learns it
            expect(ClosedException.class, () -> p.c.sender().send(new byte[1], 0, T));
        }
    }

    @Test
    public void statsPeerCredLiveness() throws Exception {
        try (Pair p = Util.pair(new Options())) {
            Sender tx = p.c.sender();
            Receiver rx = p.l.receiver();
            for (int i = 0; i < 3; i++) tx.send(new byte[10], i);
            Stats s = tx.stats();
            check(s.messagesCommitted() == 3 && s.bytesCommitted() == 30, "sender stats " + s);
            for (int i = 0; i < 3; i++) rx.recv(T).release();
            check(rx.tryRecv() == null, "empty"); // publishes the batch of releases
            Stats r = rx.stats();
            check(r.messagesReleased() == 3 && r.bytesReleased() == 30, "receiver stats " + r);
            check(tx.isPeerAlive() && rx.isPeerAlive() && p.c.isPeerAlive(), "alive");
            check(p.l.probePeer() == PeerState.ALIVE && tx.probePeer() == PeerState.ALIVE, "probe alive");
            PeerCred c = p.l.peerCred();
            check(c.pid() == ProcessHandle.current().pid(), "peer pid " + c);
            tx.setLinePadding(true);
            tx.setNontemporalThreshold(-1);
        }
    }

    @Test
    public void concurrentUseIsBusy() throws Exception {
        try (Pair p = Util.pair(new Options())) {
            Receiver rx = p.l.receiver();
            CompletableFuture<Message> f = CompletableFuture.supplyAsync(() -> {
                try {
                    return rx.recv(T);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            Util.sleep(100);
            expect(BusyException.class, rx::tryRecv);
            expect(BusyException.class, () -> p.l.peerCred()); // the connection is one unit with its receiver
            p.c.sender().send(new byte[] {42}, 1);
            Message m = f.get(5, TimeUnit.SECONDS);
            check(m.typeId() == 1 && m.toByteArray()[0] == 42, "the blocked receive got it");
        }
    }

    @Test
    public void interruptEndsBlockingRecv() throws Exception {
        try (Pair p = Util.pair(new Options())) {
            Receiver rx = p.l.receiver();
            AtomicReference<Throwable> got = new AtomicReference<>();
            AtomicLong ended = new AtomicLong();
            Thread t = new Thread(() -> {
                try {
                    rx.recv();
                } catch (Throwable e) {
                    got.set(e);
                }
                ended.set(System.nanoTime());
            });
            t.start();
            Util.sleep(150);
            long t0 = System.nanoTime();
            t.interrupt();
            t.join(2000);
            long took = (ended.get() - t0) / 1_000_000;
            check(got.get() instanceof InterruptedIOException, "interrupted: " + got.get());
            check(took < 300, "interrupt noticed in " + took + " ms");
            // nothing lost: the receiver works, and gets what is sent next
            p.c.sender().send(new byte[] {1}, 11);
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 11, "received after the interrupt");
            }
            // an interrupted thread's receive still returns a message that is there
            p.c.sender().send(new byte[] {2}, 12);
            Thread.currentThread().interrupt();
            try (Message m = rx.recv(T)) {
                check(m.typeId() == 12, "a ready message is returned even when interrupted");
            } finally {
                Thread.interrupted();
            }
        }
    }

    @Test
    public void closeFromAnotherThreadAndUseAfterClose() throws Exception {
        Pair p = Util.pair(new Options());
        Receiver rx = p.l.receiver();
        p.c.sender().send(new byte[] {1}, 1);
        Message held = rx.recv(T);
        AtomicReference<Throwable> got = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try {
                rx.recv();
            } catch (Throwable e) {
                got.set(e);
            }
        });
        t.start();
        Util.sleep(100);
        long t0 = System.nanoTime();
        p.l.close();
        long took = ms(t0);
        t.join(2000);
        check(got.get() instanceof HandleClosedException, "the blocked receive ended: " + got.get());
        check(took < 300, "close waited " + took + " ms for the blocked call");
        p.l.close(); // idempotent
        check(p.l.isClosed() && rx.isClosed(), "closed");
        expect(IllegalStateException.class, rx::tryRecv);
        expect(IllegalStateException.class, () -> p.l.sender());
        expect(IllegalStateException.class, held::payload);
        held.release(); // harmless after the close
        expect(IllegalStateException.class, rx::close); // a borrowed receiver closes with its connection
        p.c.close();
        expect(IllegalStateException.class, () -> p.c.sender().send(new byte[1], 0));
    }

    @Test
    public void cancelToken() throws Exception {
        try (CancelToken tok = new CancelToken(); Pair other = Util.pair(new Options());
                Pair p = Util.pair(new Options().cancelToken(tok))) {
            CompletableFuture<Throwable> f = CompletableFuture.supplyAsync(() -> {
                try {
                    p.l.receiver().recv();
                    return null;
                } catch (Throwable e) {
                    return e;
                }
            });
            Util.sleep(200);
            long t0 = System.nanoTime();
            tok.cancel(); // from another thread than the blocked one
            Throwable e = f.get(5, TimeUnit.SECONDS);
            check(e instanceof CancelledException, "cancelled: " + e);
            check(ms(t0) < 1000, "cancel took " + ms(t0) + " ms");
            check(p.l.isPeerAlive(), "the cancelled connection's queries still work");
            other.c.sender().send(new byte[1], 1);
            check(other.l.receiver().recv(T).typeId() == 1, "other connections are not affected");
        }
        CancelToken t = new CancelToken();
        t.close();
        expect(IllegalStateException.class, t::cancel);
    }

    @Test
    public void blockedCallsDoNotStallTheJvm() throws Exception {
        List<Pair> pairs = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) {
                Pair p = Util.pair(new Options());
                pairs.add(p);
                Thread t = new Thread(() -> {
                    try {
                        p.l.receiver().recv();
                    } catch (IOException e) {
                        // ends with the close below
                    }
                });
                t.start();
                threads.add(t);
            }
            Util.sleep(100);
            long t0 = System.nanoTime();
            for (int i = 0; i < 3; i++) System.gc(); // needs every thread at a safepoint
            long gc = ms(t0);
            check(gc < 2000, "GC with 4 threads blocked in receive took " + gc + " ms");
            AtomicLong ticks = new AtomicLong();
            Thread ticker = new Thread(() -> {
                long end = System.nanoTime() + 200_000_000L;
                while (System.nanoTime() < end) {
                    ticks.incrementAndGet();
                    Util.sleep(1);
                }
            });
            ticker.start();
            ticker.join();
            check(ticks.get() > 50, "a ticker thread kept ticking: " + ticks.get());
        } finally {
            for (Pair p : pairs) p.close();
            for (Thread t : threads) t.join(2000);
        }
        for (Thread t : threads) check(!t.isAlive(), "blocked receives ended with the close");
    }

    @Test
    public void splitForTwoThreads() throws Exception {
        try (Pair p = Util.pair(new Options().duplex(true).capacity(4096))) {
            Grant g = p.c.sender().reserve(16);
            g.buffer().put(0, (byte) 7);
            Connection.Split s = p.c.split();
            check(p.c.isClosed(), "split consumes the connection");
            expect(IllegalStateException.class, () -> p.c.sender());
            g.commit(16, 5); // the outstanding grant moved to the new sender
            try (Message m = p.l.receiver().recv(T)) {
                check(m.typeId() == 5 && m.toByteArray()[0] == 7, "grant committed through the split sender");
            }
            int n = 20000;
            try (Sender tx = s.sender(); Receiver rx = s.receiver()) {
                Thread prod = new Thread(() -> {
                    try {
                        for (int i = 0; i < n; i++) tx.send(ByteBuffer.allocate(8).putInt(0, i), i, T);
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
                Thread echo = new Thread(() -> {
                    try {
                        for (int i = 0; i < n; i++) {
                            try (Message m = p.l.receiver().recv(T)) {
                                p.l.sender().send(m.payload(), m.typeId(), T);
                            }
                        }
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
                prod.start();
                echo.start();
                for (int i = 0; i < n; i++) {
                    try (Message m = rx.recv(T)) {
                        if (m.typeId() != i || m.payload().getInt(0) != i) throw new AssertionError("echo " + i);
                    }
                }
                prod.join();
                echo.join();
            }
            expect(ClosedException.class, () -> p.l.receiver().recv(T));
        }
    }
}
