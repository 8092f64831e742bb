/*
 * memtube_jni.c: the JNI shim between dev.memtube.Native and the C ABI
 * (bindings/c/include/memtube.h). Linked with the static libmemtube.a into
 * libmemtube_jni.so.
 *
 * Rules this file keeps:
 * - Handles travel to Java as jlong (intptr_t casts). The Java side (Handle)
 *   zeroes a handle under an atomic state before freeing it and never passes
 *   a freed one back; every function here still tolerates 0 (the C ABI turns
 *   NULL into MEMTUBE_INVALID_ARGUMENT).
 * - Every JNI call that can fail is checked. When one leaves a Java
 *   exception pending we release what we own and return at once, so the
 *   exception is thrown in Java when the native method returns; no further
 *   JNI call is made with an exception pending.
 * - No Java exception crosses the C ABI: a serve handler's exception is
 *   caught (ExceptionOccurred + ExceptionClear) inside the callback, stored,
 *   and rethrown after memtube_serve_one has returned.
 * - Blocking C calls never run inside Get*Critical regions (which would stall
 *   the GC): arrays are copied with Get/SetByteArrayRegion, and a send from a
 *   byte[] reserves ring space first and copies straight into it.
 */
#include <jni.h>
#define _GNU_SOURCE /* fopen mode "e" (O_CLOEXEC) is glibc's; harmless elsewhere */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memtube.h"

#define P(x) ((void *)(intptr_t)(x))
#define J(x) ((jlong)(intptr_t)(x))

/* Status the Java side reads as "a Java exception is pending" (never a
 * memtube status: those are 0..23 and only grow by appending). */
#define JNI_EXCEPTION_PENDING (-1000)

static jclass g_connection;  /* global ref: dev.memtube.Connection */
static jmethodID g_dispatch; /* Connection.dispatch(Handler, int, ByteBuffer, long) */

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
    JNIEnv *env;
    jclass c;
    (void)reserved;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) return JNI_ERR;
    c = (*env)->FindClass(env, "dev/memtube/Connection");
    if (c == NULL) return JNI_ERR; /* NoClassDefFoundError pending: System.load throws it */
    g_connection = (jclass)(*env)->NewGlobalRef(env, c);
    (*env)->DeleteLocalRef(env, c);
    if (g_connection == NULL) return JNI_ERR;
    g_dispatch = (*env)->GetStaticMethodID(env, g_connection, "dispatch",
                                           "(Ldev/memtube/Handler;ILjava/nio/ByteBuffer;J)I");
    if (g_dispatch == NULL) return JNI_ERR;
    return JNI_VERSION_1_8;
}

/* A direct ByteBuffer over `len` bytes at `p`. JNI requires a non-NULL
 * address; a zero-length payload may come with any pointer, so it gets a
 * static byte instead (nothing can be read through a 0-capacity buffer). */
static jobject view(JNIEnv *env, const void *p, size_t len) {
    static uint8_t empty;
    if (len == 0 || p == NULL) return (*env)->NewDirectByteBuffer(env, &empty, 0);
    return (*env)->NewDirectByteBuffer(env, (void *)p, (jlong)len);
}

/* The address of a direct buffer at `off`, or NULL (and an exception) when it
 * is not direct. Java checked `off + len <= capacity` before the call. */
static uint8_t *direct(JNIEnv *env, jobject buf, jint off) {
    uint8_t *p = (*env)->GetDirectBufferAddress(env, buf);
    if (p == NULL) {
        jclass iae = (*env)->FindClass(env, "java/lang/IllegalArgumentException");
        if (iae != NULL) (*env)->ThrowNew(env, iae, "not a direct ByteBuffer");
        return NULL;
    }
    return p + off;
}

static int set_longs(JNIEnv *env, jlongArray out, jsize n, const jlong *v) {
    (*env)->SetLongArrayRegion(env, out, 0, n, v);
    return (*env)->ExceptionCheck(env) ? -1 : 0;
}

static int set_ints(JNIEnv *env, jintArray out, jsize n, const jint *v) {
    (*env)->SetIntArrayRegion(env, out, 0, n, v);
    return (*env)->ExceptionCheck(env) ? -1 : 0;
}

/* A query's answer as the Java side reads it (Errors.value): >= 0 the value
 * `v` (status OK), < 0 -(status + 1). */
static jint value_or_status(int32_t st, jint v) {
    return st == MEMTUBE_OK ? v : -st - 1;
}

/* A length as a Java int: memtube's u32 lengths, the top bit masked off. */
#define JLEN(n) ((jint)((n) & 0x7fffffff))

/* Copies `len` bytes of `arr` from `off` out of the Java heap (a blocking
 * call follows, so no critical region): into `small` (`small_len` bytes, on
 * the caller's stack) when they fit, else into a malloc'd buffer, which the
 * caller frees (when the result is not `small`). NULL: an exception is
 * pending (an OutOfMemoryError about `what`, or the copy's own). */
static jbyte *copy_in(JNIEnv *env, jbyteArray arr, jint off, jint len, jbyte *small,
                      size_t small_len, const char *what) {
    jbyte *buf = small;
    if ((size_t)len > small_len) {
        buf = malloc((size_t)len);
        if (buf == NULL) {
            jclass oom = (*env)->FindClass(env, "java/lang/OutOfMemoryError");
            if (oom != NULL) (*env)->ThrowNew(env, oom, what);
            return NULL;
        }
    }
    (*env)->GetByteArrayRegion(env, arr, off, len, buf);
    if ((*env)->ExceptionCheck(env)) {
        if (buf != small) free(buf);
        return NULL;
    }
    return buf;
}

#define FN(name) JNICALL Java_dev_memtube_Native_##name

/* ---- library ---------------------------------------------------------- */

JNIEXPORT jint FN(abiVersion)(JNIEnv *env, jclass k) {
    (void)env; (void)k;
    return (jint)memtube_abi_version();
}

JNIEXPORT jstring FN(version)(JNIEnv *env, jclass k) {
    (void)k;
    return (*env)->NewStringUTF(env, memtube_version()); /* NULL + OOM pending on failure */
}

JNIEXPORT jstring FN(lastError)(JNIEnv *env, jclass k) {
    (void)k;
    return (*env)->NewStringUTF(env, memtube_last_error_message());
}

JNIEXPORT jint FN(lastOsError)(JNIEnv *env, jclass k) {
    (void)env; (void)k;
    return memtube_last_os_error();
}

/* ---- options and cancel tokens ---------------------------------------- */

JNIEXPORT jlong FN(optionsNew)(JNIEnv *env, jclass k) {
    (void)env; (void)k;
    return J(memtube_options_new());
}

JNIEXPORT void FN(optionsFree)(JNIEnv *env, jclass k, jlong o) {
    (void)env; (void)k;
    memtube_options_free(P(o));
}

/* One entry point for the scalar setters (Native.OPT_* in Java). */
JNIEXPORT jint FN(optionsSet)(JNIEnv *env, jclass k, jlong o, jint what, jlong v) {
    struct memtube_options *opts = P(o);
    (void)env; (void)k;
    switch (what) {
    case 0: return memtube_options_set_capacity(opts, (uint32_t)v);
    case 1: return memtube_options_set_max_capacity(opts, (uint32_t)v);
    case 2: return memtube_options_set_duplex(opts, v != 0);
    case 3: return memtube_options_set_isolation(opts, v != 0);
    case 4: return memtube_options_set_pure_spin(opts, v != 0);
    case 5: return memtube_options_set_huge_pages(opts, v != 0);
    case 6: return memtube_options_set_mlock(opts, v != 0);
    case 7: return memtube_options_set_direction(opts, (int32_t)v);
    case 8: return memtube_options_set_connect_timeout_ns(opts, (int64_t)v);
    case 9: return memtube_options_set_handshake_timeout_ns(opts, (int64_t)v);
    case 10: return memtube_options_set_cancel_token(opts, P(v));
    default: return MEMTUBE_INVALID_ARGUMENT;
    }
}

JNIEXPORT jint FN(optionsSetUidPolicy)(JNIEnv *env, jclass k, jlong o, jint kind, jintArray uids) {
    jsize n = 0;
    jint *copy = NULL;
    int32_t st;
    (void)k;
    if (uids != NULL && (n = (*env)->GetArrayLength(env, uids)) > 0) {
        /* GetIntArrayElements may copy; it is released right after (no wait in between). */
        copy = (*env)->GetIntArrayElements(env, uids, NULL);
        if (copy == NULL) return JNI_EXCEPTION_PENDING;
    }
    st = memtube_options_set_uid_policy(P(o), kind, (const uint32_t *)copy, (size_t)n);
    if (copy != NULL) (*env)->ReleaseIntArrayElements(env, uids, copy, JNI_ABORT);
    return st;
}

JNIEXPORT jlong FN(tokenNew)(JNIEnv *env, jclass k) {
    (void)env; (void)k;
    return J(memtube_cancel_token_new());
}

JNIEXPORT jint FN(tokenCancel)(JNIEnv *env, jclass k, jlong t) {
    (void)env; (void)k;
    return memtube_cancel_token_cancel(P(t));
}

JNIEXPORT void FN(tokenFree)(JNIEnv *env, jclass k, jlong t) {
    (void)env; (void)k;
    memtube_cancel_token_free(P(t));
}

/* ---- listener and connection ------------------------------------------ */

/* listen and connect: copies a Java string into a NUL-terminated
 * modified-UTF-8 buffer for the duration of memtube_listen (`is_listener`)
 * or memtube_connect. memtube requires UTF-8: modified UTF-8 differs only for
 * NUL and supplementary characters, which addresses do not contain (and an
 * invalid one is refused by memtube as INVALID_ARGUMENT). */
static jint open_at(JNIEnv *env, jstring addr, jlong o, jlongArray out, bool is_listener) {
    struct memtube_listener *l = NULL;
    struct memtube_connection *c = NULL;
    const char *a;
    int32_t st;
    jlong v;
    a = (*env)->GetStringUTFChars(env, addr, NULL);
    if (a == NULL) return JNI_EXCEPTION_PENDING;
    st = is_listener ? memtube_listen(a, P(o), &l) : memtube_connect(a, P(o), &c);
    (*env)->ReleaseStringUTFChars(env, addr, a);
    v = is_listener ? J(l) : J(c);
    if (set_longs(env, out, 1, &v) != 0) {
        if (is_listener) memtube_listener_free(l);
        else memtube_connection_free(c);
        return JNI_EXCEPTION_PENDING;
    }
    return st;
}

JNIEXPORT jint FN(listen)(JNIEnv *env, jclass k, jstring addr, jlong o, jlongArray out) {
    (void)k;
    return open_at(env, addr, o, out, true);
}

JNIEXPORT jint FN(connect)(JNIEnv *env, jclass k, jstring addr, jlong o, jlongArray out) {
    (void)k;
    return open_at(env, addr, o, out, false);
}

JNIEXPORT jint FN(accept)(JNIEnv *env, jclass k, jlong l, jlong o, jlong timeout, jlongArray out) {
    struct memtube_connection *c = NULL;
    int32_t st;
    jlong v;
    (void)k;
    st = memtube_listener_accept(P(l), P(o), (int64_t)timeout, &c);
    v = J(c);
    if (set_longs(env, out, 1, &v) != 0) {
        memtube_connection_free(c);
        return JNI_EXCEPTION_PENDING;
    }
    return st;
}

JNIEXPORT jint FN(listenerFd)(JNIEnv *env, jclass k, jlong l) {
    (void)env; (void)k;
    return memtube_listener_fd(P(l));
}

JNIEXPORT void FN(listenerFree)(JNIEnv *env, jclass k, jlong l) {
    (void)env; (void)k;
    memtube_listener_free(P(l));
}

JNIEXPORT void FN(connectionFree)(JNIEnv *env, jclass k, jlong c) {
    (void)env; (void)k;
    memtube_connection_free(P(c));
}

JNIEXPORT jlong FN(connectionSender)(JNIEnv *env, jclass k, jlong c) {
    (void)env; (void)k;
    return J(memtube_connection_sender(P(c)));
}

JNIEXPORT jlong FN(connectionReceiver)(JNIEnv *env, jclass k, jlong c) {
    (void)env; (void)k;
    return J(memtube_connection_receiver(P(c)));
}

JNIEXPORT jint FN(split)(JNIEnv *env, jclass k, jlong c, jlongArray out) {
    struct memtube_sender *tx = NULL;
    struct memtube_receiver *rx = NULL;
    int32_t st;
    jlong v[2];
    (void)k;
    st = memtube_connection_split(P(c), &tx, &rx);
    v[0] = J(tx);
    v[1] = J(rx);
    if (set_longs(env, out, 2, v) != 0) {
        memtube_sender_free(tx);
        memtube_receiver_free(rx);
        return JNI_EXCEPTION_PENDING;
    }
    return st;
}

JNIEXPORT jint FN(peerCred)(JNIEnv *env, jclass k, jlong c, jintArray out) {
    struct memtube_peer_cred cred = {0, 0, 0};
    int32_t st = memtube_connection_peer_cred(P(c), &cred);
    jint v[3];
    (void)k;
    v[0] = cred.pid;
    v[1] = (jint)cred.uid;
    v[2] = (jint)cred.gid;
    if (set_ints(env, out, 3, v) != 0) return JNI_EXCEPTION_PENDING;
    return st;
}

JNIEXPORT jint FN(connectionPeerState)(JNIEnv *env, jclass k, jlong c, jboolean probe) {
    int32_t state = -1, st;
    (void)env; (void)k;
    st = memtube_connection_peer_state(P(c), probe != JNI_FALSE, &state);
    return value_or_status(st, state);
}

/* ---- call / serve ----------------------------------------------------- */

static jint fill_message(JNIEnv *env, int32_t st, const struct memtube_message *m, jlongArray out) {
    jlong v[3];
    v[0] = J(m->data);
    v[1] = (jlong)m->len;
    v[2] = (jlong)m->type_id;
    if (set_longs(env, out, 3, v) != 0) return JNI_EXCEPTION_PENDING;
    return st;
}

JNIEXPORT jint FN(callArray)(JNIEnv *env, jclass k, jlong c, jint type, jbyteArray arr, jint off,
                             jint len, jlong timeout, jlongArray out) {
    struct memtube_message m = {NULL, 0, 0};
    jbyte small[512];
    jbyte *buf;
    int32_t st;
    (void)k;
    /* The request is copied out of the Java heap first (a call may block, so
     * no critical region). Small requests use the stack. */
    buf = copy_in(env, arr, off, len, small, sizeof small, "copying a call's request");
    if (buf == NULL) return JNI_EXCEPTION_PENDING;
    st = memtube_call(P(c), (uint32_t)type, buf, (size_t)len, (int64_t)timeout, &m);
    if (buf != small) free(buf);
    return fill_message(env, st, &m, out);
}

JNIEXPORT jint FN(callDirect)(JNIEnv *env, jclass k, jlong c, jint type, jobject b, jint off,
                              jint len, jlong timeout, jlongArray out) {
    struct memtube_message m = {NULL, 0, 0};
    uint8_t *p = direct(env, b, off);
    int32_t st;
    (void)k;
    if (p == NULL) return JNI_EXCEPTION_PENDING;
    st = memtube_call(P(c), (uint32_t)type, p, (size_t)len, (int64_t)timeout, &m);
    return fill_message(env, st, &m, out);
}

JNIEXPORT jint FN(maxRequest)(JNIEnv *env, jclass k, jlong c) {
    uint32_t n = 0;
    int32_t st = memtube_max_request(P(c), &n);
    (void)env; (void)k;
    return value_or_status(st, JLEN(n));
}

struct serve_ctx {
    JNIEnv *env;
    jobject handler;
    jthrowable thrown; /* local ref of the serveOne frame */
};

/* The memtube_handler: runs on the thread inside serveOne, so `env` is this
 * thread's. Calls Connection.dispatch; a Java exception is caught here and
 * never unwinds through Rust. UINT32_MAX makes the caller get PROTOCOL. */
static uint32_t serve_cb(void *ctx_, uint32_t type_id, const uint8_t *req, size_t len,
                         struct memtube_reply *reply) {
    struct serve_ctx *ctx = ctx_;
    JNIEnv *env = ctx->env;
    jobject buf;
    jint r;
    if (ctx->thrown != NULL) return UINT32_MAX;
    buf = view(env, req, len);
    if (buf == NULL) goto caught;
    r = (*env)->CallStaticIntMethod(env, g_connection, g_dispatch, ctx->handler, (jint)type_id,
                                    buf, J(reply));
    (*env)->DeleteLocalRef(env, buf);
    if ((*env)->ExceptionCheck(env)) goto caught;
    return (uint32_t)r;
caught:
    ctx->thrown = (*env)->ExceptionOccurred(env);
    (*env)->ExceptionClear(env);
    return UINT32_MAX;
}

JNIEXPORT jint FN(serveOne)(JNIEnv *env, jclass k, jlong c, jlong timeout, jobject handler) {
    struct serve_ctx ctx;
    int32_t st;
    (void)k;
    ctx.env = env;
    ctx.handler = handler;
    ctx.thrown = NULL;
    st = memtube_serve_one(P(c), (int64_t)timeout, serve_cb, &ctx);
    if (ctx.thrown != NULL) {
        (*env)->Throw(env, ctx.thrown);
        return JNI_EXCEPTION_PENDING;
    }
    return st;
}

JNIEXPORT jint FN(replyWriteArray)(JNIEnv *env, jclass k, jlong r, jbyteArray arr, jint off,
                                   jint len) {
    uint8_t *p;
    (void)k;
    if (r == 0) return MEMTUBE_INVALID_ARGUMENT;
    p = memtube_reply_extend(P(r), (size_t)len);
    if (p == NULL) return MEMTUBE_OS;
    (*env)->GetByteArrayRegion(env, arr, off, len, (jbyte *)p);
    return (*env)->ExceptionCheck(env) ? JNI_EXCEPTION_PENDING : MEMTUBE_OK;
}

/* ---- receiver --------------------------------------------------------- */

JNIEXPORT jint FN(recv)(JNIEnv *env, jclass k, jlong rx, jlong timeout, jlongArray out) {
    struct memtube_message m = {NULL, 0, 0};
    int32_t st = memtube_recv(P(rx), (int64_t)timeout, &m);
    (void)k;
    return fill_message(env, st, &m, out);
}

JNIEXPORT jint FN(recvCopyDirect)(JNIEnv *env, jclass k, jlong rx, jlong timeout, jobject b,
                                  jint off, jint cap, jlongArray out) {
    size_t len = 0;
    uint32_t type = 0;
    int32_t st;
    uint8_t *p = direct(env, b, off);
    jlong v[2];
    (void)k;
    if (p == NULL) return JNI_EXCEPTION_PENDING;
    st = memtube_recv_copy(P(rx), (int64_t)timeout, p, (size_t)cap, &len, &type);
    v[0] = (jlong)len;
    v[1] = (jlong)type;
    if (set_longs(env, out, 2, v) != 0) return JNI_EXCEPTION_PENDING;
    return st;
}

JNIEXPORT jint FN(release)(JNIEnv *env, jclass k, jlong rx) {
    (void)env; (void)k;
    return memtube_release(P(rx));
}

/* A direct ByteBuffer over ring memory: a received message (when no window
 * could be made) or a grant. Sound for as long as the message is held or the
 * grant outstanding, which is what the Java side documents and checks before
 * handing the buffer out (Message.payload, Grant.buffer); the memory stays
 * mapped until the receiver, sender or connection is freed. */
JNIEXPORT jobject FN(view)(JNIEnv *env, jclass k, jlong addr, jlong len) {
    (void)k;
    return view(env, P(addr), (size_t)len);
}

/* A read-only-intended direct ByteBuffer over the whole mapping that holds
 * `addr` (a message memtube_recv just returned), found in /proc/self/maps;
 * `out[0]` = the mapping's start. NULL (no exception) when no readable
 * mapping holds it or it is larger than a ByteBuffer can be (2 GiB).
 *
 * Why this is sound: the kernel lists the mapping as readable now, and it is
 * the ring's mapping (memtube maps each ring with one mmap of its own memfd,
 * which never merges with a neighbour), so it stays mapped exactly as long as
 * the message pointers memtube gives for this receiver: until the receiver
 * (or its connection) is freed. The Java side slices messages out of it with
 * bounds checks and never uses it after the close (Receiver.view). */
JNIEXPORT jobject FN(window)(JNIEnv *env, jclass k, jlong addr, jlongArray out) {
    FILE *f;
    char line[512];
    int at_start = 1;
    unsigned long lo = 0, hi = 0, a = (unsigned long)(uintptr_t)addr;
    char perms[8];
    jobject buf = NULL;
    jlong v;
    (void)k;
    f = fopen("/proc/self/maps", "re");
    if (f == NULL) return NULL;
    while (fgets(line, sizeof line, f) != NULL) {
        int whole = strchr(line, '\n') != NULL;
        /* only the start of a line holds the range (a long path spills over) */
        if (at_start && sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= a && a < hi) {
            if (perms[0] == 'r' && hi - lo <= 0x7fffffffUL) buf = (*env)->NewDirectByteBuffer(env, (void *)lo, (jlong)(hi - lo));
            break;
        }
        at_start = whole;
    }
    fclose(f);
    if (buf == NULL) return NULL; /* also when NewDirectByteBuffer failed: its exception is pending */
    v = (jlong)lo;
    if (set_longs(env, out, 1, &v) != 0) return NULL;
    return buf;
}

JNIEXPORT jint FN(receiverMaxPayload)(JNIEnv *env, jclass k, jlong rx) {
    uint32_t n = 0;
    int32_t st = memtube_receiver_max_payload(P(rx), &n);
    (void)env; (void)k;
    return value_or_status(st, JLEN(n));
}

static jint fill_stats(JNIEnv *env, int32_t st, const struct memtube_stats *s, jlongArray out) {
    jlong v[7];
    v[0] = (jlong)s->messages_committed;
    v[1] = (jlong)s->bytes_committed;
    v[2] = (jlong)s->full_events;
    v[3] = (jlong)s->producer_wakes;
    v[4] = (jlong)s->messages_released;
    v[5] = (jlong)s->bytes_released;
    v[6] = (jlong)s->consumer_wakes;
    if (set_longs(env, out, 7, v) != 0) return JNI_EXCEPTION_PENDING;
    return st;
}

JNIEXPORT jint FN(receiverStats)(JNIEnv *env, jclass k, jlong rx, jlongArray out) {
    struct memtube_stats s;
    int32_t st;
    (void)k;
    memset(&s, 0, sizeof s);
    st = memtube_receiver_stats(P(rx), &s);
    return fill_stats(env, st, &s, out);
}

JNIEXPORT jint FN(receiverPeerState)(JNIEnv *env, jclass k, jlong rx, jboolean probe) {
    int32_t state = -1, st;
    (void)env; (void)k;
    st = memtube_receiver_peer_state(P(rx), probe != JNI_FALSE, &state);
    return value_or_status(st, state);
}

JNIEXPORT void FN(receiverFree)(JNIEnv *env, jclass k, jlong rx) {
    (void)env; (void)k;
    memtube_receiver_free(P(rx));
}

/* ---- send, then receive (memtube_sendrecv) ---------------------------- */

/* The results of an exchange, written into a 32-byte area of the Java side
 * (a direct ByteBuffer each Receiver allocates once, read there in native
 * byte order): no JNI call back into the JVM to return them. */
struct exchange_out {
    int64_t data;   /* the received message: address, */
    int64_t len;    /* length, */
    uint32_t type;  /* type id, */
    uint32_t sent;  /* 1 when the message went out (memtube_sendrecv's `sent`) */
    int64_t base;   /* sendRecvDirect: the buffer's address, which Java caches */
};

static jint exchange(jlong tx, const void *data, jint len, jint type, jlong rx, jlong timeout,
                     jlong out_addr) {
    struct memtube_message m = {NULL, 0, 0};
    bool sent = false;
    struct exchange_out *o = P(out_addr);
    int32_t st = memtube_sendrecv(P(tx), len == 0 ? NULL : data, (size_t)len, (uint32_t)type, P(rx),
                                  (int64_t)timeout, &m, &sent);
    o->data = J(m.data);
    o->len = (int64_t)m.len;
    o->type = m.type_id;
    o->sent = sent ? 1 : 0;
    return st;
}

/* The address of a direct buffer, 0 when it is not one (no exception). */
JNIEXPORT jlong FN(address)(JNIEnv *env, jclass k, jobject b) {
    (void)k;
    return J((*env)->GetDirectBufferAddress(env, b));
}

/* From a direct buffer: no copy of our own (memtube copies into the ring).
 * Also returns the buffer's address (out->base) for the Java side's cache. */
JNIEXPORT jint FN(sendRecvDirect)(JNIEnv *env, jclass k, jlong tx, jobject b, jint off, jint len,
                                  jint type, jlong rx, jlong timeout, jlong out_addr) {
    uint8_t *p = direct(env, b, 0);
    (void)k;
    if (p == NULL) return JNI_EXCEPTION_PENDING;
    ((struct exchange_out *)P(out_addr))->base = J(p);
    return exchange(tx, p + off, len, type, rx, timeout, out_addr);
}

/* From an address, all arguments primitive (the cheapest JNI call): either
 * a direct buffer's memory (address cached by Sender, the buffer held by the
 * argument, so alive) or the payload of the message `rx` holds (the Java side
 * checked that the Message is valid and is rx's, under rx's guard): mapped
 * and unchanged until memtube_sendrecv has sent it, and released only after
 * the send. `out_addr` is the Receiver's 32-byte result area. */
JNIEXPORT jint FN(sendRecvAddress)(JNIEnv *env, jclass k, jlong tx, jlong addr, jint len,
                                   jint type, jlong rx, jlong timeout, jlong out_addr) {
    (void)env; (void)k;
    return exchange(tx, P(addr), len, type, rx, timeout, out_addr);
}

/* From a byte[]: copied out of the Java heap first (the call may block, so
 * no critical region), onto the stack when small. */
JNIEXPORT jint FN(sendRecvArray)(JNIEnv *env, jclass k, jlong tx, jbyteArray arr, jint off,
                                 jint len, jint type, jlong rx, jlong timeout, jlong out_addr) {
    jbyte small[512];
    jbyte *buf;
    int32_t st;
    (void)k;
    buf = copy_in(env, arr, off, len, small, sizeof small, "copying a sendRecv's message");
    if (buf == NULL) return JNI_EXCEPTION_PENDING;
    st = exchange(tx, buf, len, type, rx, timeout, out_addr);
    if (buf != small) free(buf);
    return st;
}

/* ---- sender ----------------------------------------------------------- */

/* send from a byte[]: reserve (waiting up to `timeout`), copy the array
 * straight into the grant, commit. One copy, and no critical region held
 * while waiting for room. */
JNIEXPORT jint FN(sendArray)(JNIEnv *env, jclass k, jlong tx, jbyteArray arr, jint off, jint len,
                             jint type, jlong timeout) {
    struct memtube_grant g = {NULL, 0};
    int32_t st;
    (void)k;
    st = memtube_reserve(P(tx), (size_t)len, (int64_t)timeout, &g);
    if (st != MEMTUBE_OK) return st;
    (*env)->GetByteArrayRegion(env, arr, off, len, (jbyte *)g.data);
    if ((*env)->ExceptionCheck(env)) {
        memtube_abort(P(tx)); /* nothing sent */
        return JNI_EXCEPTION_PENDING;
    }
    return memtube_commit(P(tx), (size_t)len, (uint32_t)type);
}

JNIEXPORT jint FN(sendDirect)(JNIEnv *env, jclass k, jlong tx, jobject b, jint off, jint len,
                              jint type, jlong timeout) {
    uint8_t *p = direct(env, b, off);
    (void)k;
    if (p == NULL) return JNI_EXCEPTION_PENDING;
    return memtube_send(P(tx), p, (size_t)len, (uint32_t)type, (int64_t)timeout);
}

JNIEXPORT jint FN(sendStagedArray)(JNIEnv *env, jclass k, jlong tx, jbyteArray arr, jint off,
                                   jint len, jint type) {
    jbyte *a;
    int32_t st;
    (void)k;
    /* memtube_send_staged never waits, so a short critical region is fine. */
    a = (*env)->GetPrimitiveArrayCritical(env, arr, NULL);
    if (a == NULL) return JNI_EXCEPTION_PENDING;
    st = memtube_send_staged(P(tx), a + off, (size_t)len, (uint32_t)type);
    (*env)->ReleasePrimitiveArrayCritical(env, arr, a, JNI_ABORT);
    return st;
}

JNIEXPORT jint FN(sendStagedDirect)(JNIEnv *env, jclass k, jlong tx, jobject b, jint off,
                                    jint len, jint type) {
    uint8_t *p = direct(env, b, off);
    (void)k;
    if (p == NULL) return JNI_EXCEPTION_PENDING;
    return memtube_send_staged(P(tx), p, (size_t)len, (uint32_t)type);
}

JNIEXPORT jint FN(publish)(JNIEnv *env, jclass k, jlong tx) {
    (void)env; (void)k;
    return memtube_publish(P(tx));
}

JNIEXPORT jint FN(reserve)(JNIEnv *env, jclass k, jlong tx, jint len, jlong timeout,
                           jlongArray out) {
    struct memtube_grant g = {NULL, 0};
    int32_t st = memtube_reserve(P(tx), (size_t)len, (int64_t)timeout, &g);
    jlong v = J(g.data);
    (void)k;
    if (set_longs(env, out, 1, &v) != 0) {
        if (st == MEMTUBE_OK) memtube_abort(P(tx));
        return JNI_EXCEPTION_PENDING;
    }
    return st;
}

JNIEXPORT jint FN(commit)(JNIEnv *env, jclass k, jlong tx, jint used, jint type) {
    (void)env; (void)k;
    return memtube_commit(P(tx), (size_t)used, (uint32_t)type);
}

JNIEXPORT jint FN(abort)(JNIEnv *env, jclass k, jlong tx) {
    (void)env; (void)k;
    return memtube_abort(P(tx));
}

JNIEXPORT jint FN(senderMaxPayload)(JNIEnv *env, jclass k, jlong tx) {
    uint32_t n = 0;
    int32_t st = memtube_sender_max_payload(P(tx), &n);
    (void)env; (void)k;
    return value_or_status(st, JLEN(n));
}

JNIEXPORT jlong FN(senderCapacity)(JNIEnv *env, jclass k, jlong tx) {
    uint32_t n = 0;
    int32_t st = memtube_sender_capacity(P(tx), &n);
    (void)env; (void)k;
    return st == MEMTUBE_OK ? (jlong)n : (jlong)(-st - 1);
}

JNIEXPORT jint FN(senderStats)(JNIEnv *env, jclass k, jlong tx, jlongArray out) {
    struct memtube_stats s;
    int32_t st;
    (void)k;
    memset(&s, 0, sizeof s);
    st = memtube_sender_stats(P(tx), &s);
    return fill_stats(env, st, &s, out);
}

JNIEXPORT jint FN(senderPeerState)(JNIEnv *env, jclass k, jlong tx, jboolean probe) {
    int32_t state = -1, st;
    (void)env; (void)k;
    st = memtube_sender_peer_state(P(tx), probe != JNI_FALSE, &state);
    return value_or_status(st, state);
}

JNIEXPORT jint FN(setNontemporalThreshold)(JNIEnv *env, jclass k, jlong tx, jint bytes) {
    (void)env; (void)k;
    return memtube_sender_set_nontemporal_threshold(P(tx), (uint32_t)bytes);
}

JNIEXPORT jint FN(setLinePadding)(JNIEnv *env, jclass k, jlong tx, jboolean on) {
    (void)env; (void)k;
    return memtube_sender_set_line_padding(P(tx), on != JNI_FALSE);
}

JNIEXPORT void FN(senderFree)(JNIEnv *env, jclass k, jlong tx) {
    (void)env; (void)k;
    memtube_sender_free(P(tx));
}
