package dev.memtube;

import java.io.File;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

/** Helpers shared by the test suites. */
final class Util {
    private Util() {}

    private static final AtomicInteger SEQ = new AtomicInteger();

    /** A fresh abstract address. */
    static String addr() {
        return "@memtube-java-test-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet();
    }

    /** Both ends of one connection made in this process: {@code l} accepted, {@code c} connected. */
    static final class Pair implements AutoCloseable {
        final Connection l, c;

        Pair(Connection l, Connection c) {
            this.l = l;
            this.c = c;
        }

        @Override
        public void close() {
            l.close();
            c.close();
        }
    }

    static Pair pair(Options opts) throws Exception {
        return pair(opts, opts);
    }

    static Pair pair(Options listenOpts, Options connectOpts) throws Exception {
        String a = addr();
        try (Listener lis = Memtube.listen(a, listenOpts)) {
            CompletableFuture<Connection> f = CompletableFuture.supplyAsync(() -> {
                try {
                    return Memtube.connect(a, connectOpts);
                } catch (MemtubeException e) {
                    throw new RuntimeException(e);
                }
            });
            Connection l = lis.accept(Duration.ofSeconds(10));
            try {
                return new Pair(l, f.get());
            } catch (ExecutionException e) {
                l.close();
                throw (Exception) e.getCause().getCause();
            }
        }
    }

    static long ms(long t0) {
        return (System.nanoTime() - t0) / 1_000_000;
    }

    /** The open descriptors of this process. */
    static int fds() {
        String[] l = new File("/proc/self/fd").list();
        return l == null ? -1 : l.length;
    }

    /** Asserts that {@code r} throws an exception of class {@code k}; returns it. */
    static <T extends Throwable> T expect(Class<T> k, ThrowingRunnable r) {
        try {
            r.run();
        } catch (Throwable t) {
            if (k.isInstance(t)) return k.cast(t);
            throw new AssertionError("expected " + k.getSimpleName() + ", got " + t, t);
        }
        throw new AssertionError("expected " + k.getSimpleName() + ", nothing thrown");
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    /** The Rust interop peer (examples/interop.rs), or null. */
    static String interop() {
        String p = System.getProperty("memtube.interop");
        if (p == null || p.isEmpty()) p = System.getenv("MEMTUBE_INTEROP");
        if (p == null || p.isEmpty()) {
            String dir = System.getenv("MEMTUBE_LIB_DIR");
            // Beside the library (a prepared folder) or where cargo puts it.
            for (String rel : new String[] {"interop", "examples/interop"}) {
                if (p == null && dir != null && new File(dir, rel).canExecute()) p = new File(dir, rel).getPath();
            }
        }
        return p != null && new File(p).canExecute() ? p : null;
    }

    static String needInterop() {
        String p = interop();
        if (p != null) return p;
        if ("true".equals(System.getenv("CI"))) {
            throw new AssertionError("the Rust interop peer is missing (set MEMTUBE_INTEROP)");
        }
        throw new TestRunner.Skip("no Rust interop peer (set MEMTUBE_INTEROP or MEMTUBE_LIB_DIR)");
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    static IOException unwrap(Throwable t) {
        return t instanceof IOException ? (IOException) t : new IOException(t);
    }
}
