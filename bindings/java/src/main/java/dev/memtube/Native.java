package dev.memtube;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The JNI declarations (src/main/c/memtube_jni.c) and the loading of
 * libmemtube_jni.so. Package-private: the public classes check arguments
 * and states before every call, so a pointer passed here is always live.
 *
 * <p>Loading: the system property {@code memtube.jni.path} or the
 * environment variable {@code MEMTUBE_JNI_PATH} names the library file;
 * otherwise the copy packed in the jar (resource
 * {@code /dev/memtube/native/linux-x86_64/libmemtube_jni.so}) is extracted
 * to a temporary file, loaded and deleted at exit.
 */
final class Native {
    private Native() {}

    /** A JNI call returned with a Java exception pending (never a memtube status). */
    static final int EXCEPTION_PENDING = -1000;

    static final int OPT_CAPACITY = 0, OPT_MAX_CAPACITY = 1, OPT_DUPLEX = 2, OPT_ISOLATION = 3,
            OPT_PURE_SPIN = 4, OPT_HUGE_PAGES = 5, OPT_MLOCK = 6, OPT_DIRECTION = 7,
            OPT_CONNECT_TIMEOUT = 8, OPT_HANDSHAKE_TIMEOUT = 9, OPT_CANCEL_TOKEN = 10;

    static final String RESOURCE = "/dev/memtube/native/linux-x86_64/libmemtube_jni.so";

    static {
        load();
        int abi = abiVersion();
        if (abi >>> 16 != 1) {
            throw new UnsatisfiedLinkError("libmemtube ABI " + (abi >>> 16) + "." + (abi & 0xffff)
                    + " loaded; this binding needs 1.x");
        }
    }

    private static void load() {
        String path = System.getProperty("memtube.jni.path");
        if (path == null || path.isEmpty()) path = System.getenv("MEMTUBE_JNI_PATH");
        if (path != null && !path.isEmpty()) {
            System.load(Path.of(path).toAbsolutePath().toString());
            return;
        }
        try (InputStream in = Native.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new UnsatisfiedLinkError("libmemtube_jni.so: set -Dmemtube.jni.path=FILE or "
                        + "MEMTUBE_JNI_PATH, or use the jar that packs it (" + RESOURCE + ")");
            }
            Path tmp = Files.createTempFile("memtube_jni", ".so");
            tmp.toFile().deleteOnExit();
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            System.load(tmp.toString());
        } catch (IOException e) {
            UnsatisfiedLinkError u = new UnsatisfiedLinkError("extracting libmemtube_jni.so: " + e);
            u.initCause(e);
            throw u;
        }
    }

    static native int abiVersion();
    static native String version();
    static native String lastError();
    static native int lastOsError();

    static native long optionsNew();
    static native void optionsFree(long o);
    static native int optionsSet(long o, int what, long value);
    static native int optionsSetUidPolicy(long o, int kind, int[] uids);
    static native long tokenNew();
    static native int tokenCancel(long t);
    static native void tokenFree(long t);

    static native int listen(String addr, long opts, long[] out);
    static native int connect(String addr, long opts, long[] out);
    static native int accept(long l, long opts, long timeoutNs, long[] out);
    static native int listenerFd(long l);
    static native void listenerFree(long l);
    static native void connectionFree(long c);
    static native long connectionSender(long c);
    static native long connectionReceiver(long c);
    static native int split(long c, long[] out);
    static native int peerCred(long c, int[] out);
    static native int connectionPeerState(long c, boolean probe);

    static native int callArray(long c, int type, byte[] a, int off, int len, long timeoutNs, long[] out);
    static native int callDirect(long c, int type, ByteBuffer b, int off, int len, long timeoutNs, long[] out);
    static native int maxRequest(long c);
    static native int serveOne(long c, long timeoutNs, Handler handler) throws IOException;
    static native int replyWriteArray(long r, byte[] a, int off, int len);

    static native int recv(long rx, long timeoutNs, long[] out);
    static native int recvCopyDirect(long rx, long timeoutNs, ByteBuffer b, int off, int cap, long[] out);
    static native int release(long rx);
    static native ByteBuffer view(long addr, long len);
    static native ByteBuffer window(long addr, long[] start);
    static native int receiverMaxPayload(long rx);
    static native int receiverStats(long rx, long[] out);
    static native int receiverPeerState(long rx, boolean probe);
    static native void receiverFree(long rx);

    /**
     * memtube_sendrecv. Results in the 32-byte area at {@code outAddr} (a
     * Receiver's, native order): message address (8), length (8), type id
     * (4), sent flag (4), and for sendRecvDirect the buffer's address (8).
     */
    static native int sendRecvDirect(long tx, ByteBuffer b, int off, int len, int type, long rx, long timeoutNs,
            long outAddr);
    static native int sendRecvAddress(long tx, long addr, int len, int type, long rx, long timeoutNs, long outAddr);
    static native int sendRecvArray(long tx, byte[] a, int off, int len, int type, long rx, long timeoutNs,
            long outAddr);
    /** A direct buffer's address (0 if not direct). */
    static native long address(ByteBuffer b);

    static native int sendArray(long tx, byte[] a, int off, int len, int type, long timeoutNs);
    static native int sendDirect(long tx, ByteBuffer b, int off, int len, int type, long timeoutNs);
    static native int sendStagedArray(long tx, byte[] a, int off, int len, int type);
    static native int sendStagedDirect(long tx, ByteBuffer b, int off, int len, int type);
    static native int publish(long tx);
    static native int reserve(long tx, int len, long timeoutNs, long[] out);
    static native int commit(long tx, int used, int type);
    static native int abort(long tx);
    static native int senderMaxPayload(long tx);
    static native long senderCapacity(long tx);
    static native int senderStats(long tx, long[] out);
    static native int senderPeerState(long tx, boolean probe);
    static native int setNontemporalThreshold(long tx, int bytes);
    static native int setLinePadding(long tx, boolean on);
    static native void senderFree(long tx);
}
