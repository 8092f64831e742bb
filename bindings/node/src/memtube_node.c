/*
 * memtube_node.c: the Node-API addon of memtube, over the C ABI
 * (bindings/c/include/memtube.h). index.js shapes the public API; this file
 * is the low-level layer it calls: every function here runs on the JS thread
 * except the `execute` halves of the async works, which run on the libuv
 * thread pool and touch only the C handle of their core (never napi).
 *
 * One `core` per thread-confined C handle: a listener, a connection (with its
 * borrowed sender and receiver), or an owned sender / receiver from split().
 * A core is `busy` while an async work uses its handle on a pool thread; every
 * other call on the core then fails with BUSY instead of racing (the C ABI's
 * handles are Send, not Sync).
 *
 * Views: a received message (or call reply) and a grant are Buffers over ring
 * memory (napi_create_external_buffer, no copy). The core keeps a weak
 * reference to the ArrayBuffer of the one it holds and DETACHES it when the
 * message is released (release, next receive, close, free) or the grant is
 * committed / aborted, so a stale view has length 0 and can never read ring
 * memory again, in particular never after the ring is unmapped. When the
 * view is collected without a release, its finalizer releases the message
 * (or aborts the grant) if it is still the one held.
 *
 * Failures of memtube calls are returned as numbers (the status) and the JS
 * side asks lastError() for the text: no exception is thrown from inside a
 * memtube call, and no JS exception ever crosses the C ABI (a serve handler
 * that throws makes the C handler return the reserved type id, and the
 * exception is rethrown after memtube_serve_one returned).
 */
#define _POSIX_C_SOURCE 200809L
#define NAPI_VERSION 8
#include <node_api.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memtube.h"

/* A pending async wait re-checks the core's abort flag at least this often. */
#define SLICE_NS 50000000LL

enum { SIDE_TX = 0, SIDE_RX = 1 };
enum { LOCAL_NONE = 0 };

typedef struct core {
    memtube_listener *lis;
    memtube_options *lopts; /* the listener's options (accept reuses them) */
    memtube_connection *conn;
    memtube_cancel_token *token; /* cancels a pending call on close() */
    memtube_sender *tx;          /* borrowed from conn, or owned when conn is NULL */
    memtube_receiver *rx;
    bool is_listener;
    bool closed;
    bool busy;        /* an async work uses the handle on a pool thread */
    bool close_later; /* close() came while busy: free when the work ends */
    atomic_int abort; /* set by close(): pending sliced waits end */
    int refs;         /* the JS external + one per live view finalizer */
    napi_ref msg_ref; /* weak: ArrayBuffer of the held message or reply */
    uint32_t msg_gen; /* counts held messages; a Message names its own */
    bool msg_held;    /* message msg_gen is held (not released yet) */
    const uint8_t *msg_ptr; /* its bytes (to refuse them as a call's request) */
    size_t msg_len;
    bool release_later; /* released (or collected) while busy: release after the work */
    bool abort_later;   /* the grant was collected while busy: abort it after the work */
    napi_ref grant_ref; /* weak: ArrayBuffer of the outstanding grant */
    uint32_t grant_gen;
    /* The ring window (recvView): ONE external ArrayBuffer over the whole
     * mapping that holds this receiver's ring, made at the first windowed
     * receive; per-message views are windows of it made in JS. Strong
     * reference: detached (and dropped) when the handles are freed, before
     * the ring is unmapped. */
    napi_ref ring_ref;
    const uint8_t *ring_base;
    size_t ring_len;
    bool ring_tried; /* looked for the mapping (found or not) */
} core;

/* The error text of a failure decided here (BUSY, closed handle, ...), per
 * thread like memtube's own; empty when memtube's last error applies. */
static _Thread_local char local_err[512];
static _Thread_local int32_t local_os;

/* Keep memtube's message of the failure `st` before another memtube call
 * (a free) clears it. Returns `st`. */
static int32_t capture(int32_t st) {
    if (st != MEMTUBE_OK && !local_err[0]) {
        snprintf(local_err, sizeof local_err, "%s", memtube_last_error_message());
        local_os = memtube_last_os_error();
    }
    return st;
}
/* Scratch words the JS side reads after a call (type id, generation). */
static _Thread_local uint32_t *scratch;
static _Thread_local napi_ref scratch_ref;

#define NAPI_OK(call)                                                          \
    do {                                                                       \
        if ((call) != napi_ok) {                                               \
            throw_last(env, #call);                                            \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

static void throw_last(napi_env env, const char *what) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) return;
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char buf[512];
    snprintf(buf, sizeof buf, "memtube addon: %s failed: %s", what,
             info && info->error_message ? info->error_message : "napi error");
    napi_throw_error(env, "ERR_MEMTUBE_NAPI", buf);
}

static napi_value num(napi_env env, double v) {
    napi_value r;
    if (napi_create_double(env, v, &r) != napi_ok) return NULL;
    return r;
}

static napi_value status_value(napi_env env, int32_t st) { return num(env, st); }

/* A failure found here (not by memtube): its message. Returns `st`. */
static inline int32_t fail_st(int32_t st, const char *msg) {
    snprintf(local_err, sizeof local_err, "%s", msg);
    local_os = 0;
    return st;
}

static napi_value local_fail(napi_env env, int32_t st, const char *msg) {
    return status_value(env, fail_st(st, msg));
}

static napi_value undef(napi_env env) {
    napi_value u;
    napi_get_undefined(env, &u);
    return u;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- argument helpers (TypeError for a wrong JS type) ---- */

static bool arg_core(napi_env env, napi_value v, core **out) {
    void *p = NULL;
    if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a memtube handle");
        return false;
    }
    *out = p;
    return true;
}

static bool arg_i64(napi_env env, napi_value v, int64_t *out) {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a number");
        return false;
    }
    if (d != d) d = -1; /* NaN: treat as forever; JS validated already */
    if (d > 9.2e18) d = -1; /* beyond int64: forever */
    *out = (int64_t)d;
    return true;
}

static bool arg_u32(napi_env env, napi_value v, uint32_t *out) {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a number");
        return false;
    }
    if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "expected an integer from 0 to 2^32-1");
        return false;
    }
    *out = (uint32_t)d;
    return true;
}

/* Bytes of a TypedArray, DataView, ArrayBuffer or Buffer; only valid until
 * the next JS call (the caller copies or uses them synchronously). */
static bool arg_bytes(napi_env env, napi_value v, const void **data, size_t *len) {
    bool is;
    napi_typedarray_type ty;
    size_t n;
    void *p;
    /* Fails (napi_invalid_arg) for anything but a TypedArray: one call for
     * the common case instead of a check and a call. */
    if (napi_get_typedarray_info(env, v, &ty, &n, &p, NULL, NULL) == napi_ok) {
        size_t el = 1;
        switch (ty) {
        case napi_int16_array: case napi_uint16_array: el = 2; break;
        case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
        case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
        default: el = 1;
        }
        *data = p;
        *len = n * el;
        return true;
    }
    if (napi_is_dataview(env, v, &is) == napi_ok && is) {
        napi_get_dataview_info(env, v, &n, &p, NULL, NULL);
        *data = p;
        *len = n;
        return true;
    }
    if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
        napi_get_arraybuffer_info(env, v, &p, &n);
        *data = p;
        *len = n;
        return true;
    }
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "expected a Buffer, TypedArray, DataView or ArrayBuffer");
    return false;
}

/* At most n arguments into argv, at least min of them. */
#define ARGS_MIN(n, min)                                                       \
    size_t argc = (n);                                                         \
    napi_value argv[(n) > 0 ? (n) : 1];                                        \
    NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));             \
    if (argc < (min)) {                                                        \
        napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");   \
        return NULL;                                                           \
    }                                                                          \
    local_err[0] = 0
#define ARGS(n) ARGS_MIN(n, n)

/* The usual gate of a call on a core: open, not busy, and with that side
 * (SIDE_TX, SIDE_RX; any other value: no side check). A status (0: go on), its message in local_err. */
#define SIDE_ANY (-1)
#define CLOSED_MSG "this handle is closed (close() was called on it or its connection was split)"

static inline int32_t gate_st(core *c) {
    if (c->closed) return fail_st(MEMTUBE_CLOSED, CLOSED_MSG);
    if (c->busy) return fail_st(MEMTUBE_BUSY, "another call is pending on this handle (one at a time: await it first, or split() the connection to use both directions at once)");
    return 0;
}

static inline int32_t side_st(core *c, int side) {
    if ((side != SIDE_TX || c->tx) && (side != SIDE_RX || c->rx)) return 0;
    return fail_st(MEMTUBE_NO_SUCH_HANDLE, side == SIDE_TX ? "this side of the connection does not send" : "this side of the connection does not receive");
}

static inline int32_t ready_st(core *c, int side) {
    int32_t g = gate_st(c);
    return g ? g : side_st(c, side);
}

/* Both handles of a sendRecv (one core for a connection's own sender and
 * receiver): their one-user-at-a-time guards, then their sides. */
static inline int32_t pair_st(core *tc, core *rc) {
    int32_t g = gate_st(tc);
    if (!g && rc != tc) g = gate_st(rc);
    if (!g) g = side_st(tc, SIDE_TX);
    if (!g) g = side_st(rc, SIDE_RX);
    return g;
}

/* ready_st as the entry point's result: NULL to go on, else the status. */
static inline napi_value ready(napi_env env, core *c, int side) {
    int32_t g = ready_st(c, side);
    return g ? status_value(env, g) : NULL;
}

#define READY(c, s)                                                            \
    do {                                                                       \
        napi_value r_ = ready(env, (c), (s));                                  \
        if (r_) return r_;                                                     \
    } while (0)
#define GATE(c) READY(c, SIDE_ANY)

/* ---- cores and their lifetimes ---- */

static void core_unref(core *c) {
    if (--c->refs == 0) free(c);
}

/* Detach `ab` (an external ArrayBuffer over memory that stops being ours).
 * Memory safety rests on it: if it ever fails, a JS view could read memory
 * that is released or unmapped, so the process stops instead. */
static void detach_or_die(napi_env env, napi_value ab) {
    if (napi_detach_arraybuffer(env, ab) != napi_ok)
        napi_fatal_error("memtube", NAPI_AUTO_LENGTH,
                         "could not detach a view of ring memory (it would outlive the memory)",
                         NAPI_AUTO_LENGTH);
}

/* Detach the ArrayBuffer behind a weak reference (if it is still alive) and
 * drop the reference. After this no JS view can reach that ring memory. */
static void detach_ref(napi_env env, napi_ref *ref) {
    if (!*ref) return;
    napi_value ab = NULL;
    if (napi_get_reference_value(env, *ref, &ab) == napi_ok && ab) {
        /* A detachable external ArrayBuffer: length 0 from now on. */
        detach_or_die(env, ab);
    }
    napi_delete_reference(env, *ref);
    *ref = NULL;
}

/* Forget the held message on the JS side (detach its view). The C side
 * releases it itself (memtube_recv, memtube_call, free) or the caller does. */
static void drop_msg_view(napi_env env, core *c) {
    detach_ref(env, &c->msg_ref);
    c->msg_held = false;
    c->msg_ptr = NULL;
    c->msg_len = 0;
}

/* Whether `n` bytes at `d` overlap the held message (which a call or a
 * receive releases before it reads its arguments). */
static bool overlaps_held(const core *c, const void *d, size_t n) {
    const uint8_t *p = d;
    return c->msg_ptr && n && p < c->msg_ptr + c->msg_len && c->msg_ptr < p + n;
}

static void free_handles(napi_env env, core *c) {
    drop_msg_view(env, c);
    detach_ref(env, &c->grant_ref);
    /* Before the free unmaps the ring: every window of it becomes empty. */
    detach_ref(env, &c->ring_ref);
    c->ring_base = NULL;
    c->ring_len = 0;
    if (c->lis) memtube_listener_free(c->lis);
    if (c->lopts) memtube_options_free(c->lopts);
    if (c->conn) {
        memtube_connection_free(c->conn);
    } else {
        if (c->tx) memtube_sender_free(c->tx);
        if (c->rx) memtube_receiver_free(c->rx);
    }
    if (c->token) memtube_cancel_token_free(c->token);
    c->lis = NULL;
    c->lopts = NULL;
    c->conn = NULL;
    c->tx = NULL;
    c->rx = NULL;
    c->token = NULL;
    c->closed = true;
}

/* The JS external was collected: the user forgot close(). A pending work
 * holds a strong reference, so the core is never busy here. */
static void core_finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    core *c = data;
    if (!c->closed) free_handles(env, c);
    core_unref(c);
}

static core *core_new(void) {
    core *c = calloc(1, sizeof *c);
    if (c) c->refs = 1;
    return c;
}

static napi_value wrap_core(napi_env env, core *c) {
    napi_value ext;
    if (napi_create_external(env, c, core_finalize, NULL, &ext) != napi_ok) {
        free_handles(env, c);
        free(c);
        throw_last(env, "napi_create_external");
        return NULL;
    }
    return ext;
}

static napi_value new_conn_core(napi_env env, memtube_connection *conn, memtube_cancel_token *token) {
    core *c = core_new();
    if (!c) {
        memtube_connection_free(conn);
        memtube_cancel_token_free(token);
        napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
        return NULL;
    }
    c->conn = conn;
    c->token = token;
    /* Borrowed handles (NULL for a side this end does not have); the
     * NO_SUCH_HANDLE error they record is not a failure of ours. */
    c->tx = memtube_connection_sender(conn);
    c->rx = memtube_connection_receiver(conn);
    return wrap_core(env, c);
}

/* ---- views over ring memory ---- */

/* The finalizer hint of a view: the core it was made on (kept allocated by
 * the reference the view holds, core->refs) and which message or grant. */
typedef struct {
    core *c;
    bool grant;
    uint32_t gen;
} view_hint;

/* The view's ArrayBuffer was collected (or detached and then collected).
 * Runs on the JS thread (Node defers buffer finalizers to it). */
static void view_finalize(napi_env env, void *data, void *hint) {
    (void)data;
    view_hint *h = hint;
    core *c = h->c;
    if (!c->closed && c->busy) {
        /* The handle is in use (a pool thread, or a serveOneSync handler):
         * the work's completion (after_busy) releases the message or aborts
         * the grant. A grant can be outstanding while the core is busy: a
         * connection's sender holds it while its receiver's recv() runs. */
        if (!h->grant && c->msg_ref && c->msg_gen == h->gen) {
            napi_value ab = NULL;
            napi_get_reference_value(env, c->msg_ref, &ab);
            if (!ab) c->release_later = true;
        } else if (h->grant && c->grant_ref && c->grant_gen == h->gen) {
            napi_value ab = NULL;
            napi_get_reference_value(env, c->grant_ref, &ab);
            if (!ab) c->abort_later = true;
        }
    } else if (!c->closed) {
        if (!h->grant && c->msg_ref && c->msg_gen == h->gen) {
            napi_value ab = NULL;
            napi_get_reference_value(env, c->msg_ref, &ab);
            if (!ab) { /* still held and unreachable: release it */
                napi_delete_reference(env, c->msg_ref);
                c->msg_ref = NULL;
                c->msg_held = false;
                memtube_release(c->rx);
            }
        } else if (h->grant && c->grant_ref && c->grant_gen == h->gen) {
            napi_value ab = NULL;
            napi_get_reference_value(env, c->grant_ref, &ab);
            if (!ab) { /* outstanding and unreachable: send nothing */
                napi_delete_reference(env, c->grant_ref);
                c->grant_ref = NULL;
                memtube_abort(c->tx);
            }
        }
    }
    free(h);
    core_unref(c);
}

/* A Buffer over `len` bytes of ring memory at `p`, tracked by `*ref`. */
static napi_value make_view(napi_env env, core *c, void *p, size_t len, bool grant) {
    uint32_t gen = grant ? ++c->grant_gen : ++c->msg_gen;
    if (!grant) {
        c->msg_held = true;
        c->msg_ptr = p;
        c->msg_len = len;
    }
    napi_value buf, ab;
    /* A zero-length view gets the same tracking as any other (a collected
     * empty grant must still be aborted, or the sender stays BUSY): an
     * external buffer over no bytes (memtube may give NULL for them). */
    static uint8_t no_bytes;
    if (len == 0) p = &no_bytes;
    view_hint *h = malloc(sizeof *h);
    if (!h) {
        napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
        return NULL;
    }
    h->c = c;
    h->grant = grant;
    h->gen = gen;
    c->refs++;
    /* SAFETY of the raw pointer: `p` is the message (or grant) memtube just
     * handed us, valid until we release (commit/abort) it or free the
     * handle; each of those detaches this ArrayBuffer first (detach_ref), so
     * no JS view reads the bytes after they stop being ours. */
    napi_status s = napi_create_external_buffer(env, len, p, view_finalize, h, &buf);
    if (s != napi_ok) {
        c->refs--;
        free(h);
        throw_last(env, "napi_create_external_buffer");
        return NULL;
    }
    NAPI_OK(napi_get_typedarray_info(env, buf, NULL, NULL, NULL, &ab, NULL));
    NAPI_OK(napi_create_reference(env, ab, 0, grant ? &c->grant_ref : &c->msg_ref));
    if (scratch) scratch[1] = gen;
    return buf;
}

/* ---- the ring window (recvView) ---- */

/* The mapping (one line of /proc/self/maps) that holds address `p`: every
 * byte of it is mapped for as long as the receiver whose message lies at
 * `p` lives (memtube maps each ring file once, at offset 0, and unmaps it
 * only when the last handle using it is freed). */
static bool find_mapping(const void *p, const uint8_t **base, size_t *len) {
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f) return false;
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    uintptr_t a = (uintptr_t)p;
    while (getline(&line, &cap, f) > 0) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= a && a < hi) {
            *base = (const uint8_t *)(uintptr_t)lo;
            *len = (size_t)(hi - lo);
            found = true;
            break;
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* Make the core's ring window around the message at `p` (once per core:
 * ring_tried). An external ArrayBuffer with no finalizer: the memory is the
 * ring's, freed by memtube, and free_handles detaches the ArrayBuffer
 * before that. */
static void ring_window(napi_env env, core *c, const void *p) {
    if (c->ring_tried) return;
    c->ring_tried = true;
    const uint8_t *base;
    size_t len;
    if (!find_mapping(p, &base, &len)) return;
    napi_value ab;
    /* SAFETY of the raw pointer: [base, base+len) is the mapping of this
     * receiver's ring (found above from a message memtube just gave us),
     * mapped until the receiver is freed; free_handles detaches this
     * ArrayBuffer first, so no window of it ever reads unmapped memory. */
    if (napi_create_external_arraybuffer(env, (void *)base, len, NULL, NULL, &ab) != napi_ok) {
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (pending) {
            napi_value e;
            napi_get_and_clear_last_exception(env, &e);
        }
        return; /* no window: the caller falls back to a detaching view */
    }
    if (napi_create_reference(env, ab, 1, &c->ring_ref) != napi_ok) {
        napi_detach_arraybuffer(env, ab);
        return;
    }
    c->ring_base = base;
    c->ring_len = len;
}

/* The message just received at `p` (`len` bytes) as a window of the ring:
 * its offset (a number >= 0), or a detaching view when there is no window
 * (the mapping was not found, or the message lies outside it). Records the
 * held message as make_view does. */
static napi_value window_of(napi_env env, core *c, const uint8_t *p, size_t len) {
    if (len == 0) {
        c->msg_gen++;
        c->msg_held = true;
        c->msg_ptr = NULL;
        c->msg_len = 0;
        if (scratch) scratch[1] = c->msg_gen;
        return num(env, 0);
    }
    ring_window(env, c, p);
    if (!c->ring_ref || p < c->ring_base || (size_t)(p - c->ring_base) > c->ring_len ||
        len > c->ring_len - (size_t)(p - c->ring_base))
        return make_view(env, c, (void *)p, len, false);
    c->msg_gen++;
    c->msg_held = true;
    c->msg_ptr = p;
    c->msg_len = len;
    if (scratch) scratch[1] = c->msg_gen;
    return num(env, (double)(size_t)(p - c->ring_base));
}

/* Whether `n` bytes at `d` touch the ring window (read-only ring memory a
 * copy must not be written into). */
static bool in_ring(const core *c, const void *d, size_t n) {
    const uint8_t *p = d;
    return c->ring_base && n && p < c->ring_base + c->ring_len && c->ring_base < p + n;
}

/* ringBuffer(core) -> the ring window's ArrayBuffer, or null */
static napi_value js_ring_buffer(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    napi_value r;
    if (c->ring_ref && napi_get_reference_value(env, c->ring_ref, &r) == napi_ok && r) return r;
    napi_get_null(env, &r);
    return r;
}

/* ---- module-level functions ---- */

static napi_value js_init(napi_env env, napi_callback_info info) {
    ARGS(1);
    void *p;
    size_t n;
    napi_typedarray_type ty;
    NAPI_OK(napi_get_typedarray_info(env, argv[0], &ty, &n, &p, NULL, NULL));
    if (ty != napi_uint32_array || n < 4) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "init: a Uint32Array(4)");
        return NULL;
    }
    if (scratch_ref) napi_delete_reference(env, scratch_ref);
    /* Kept alive by the strong reference: the backing store never moves. */
    NAPI_OK(napi_create_reference(env, argv[0], 1, &scratch_ref));
    scratch = p;
    return undef(env);
}

static napi_value js_last_error(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value r;
    const char *m = local_err[0] ? local_err : memtube_last_error_message();
    NAPI_OK(napi_create_string_utf8(env, m, NAPI_AUTO_LENGTH, &r));
    return r;
}

static napi_value js_last_os_error(napi_env env, napi_callback_info info) {
    (void)info;
    return num(env, local_err[0] ? local_os : memtube_last_os_error());
}

static napi_value js_status_name(napi_env env, napi_callback_info info) {
    ARGS(1);
    int64_t st;
    if (!arg_i64(env, argv[0], &st)) return NULL;
    napi_value r;
    NAPI_OK(napi_create_string_utf8(env, memtube_status_name((int32_t)st), NAPI_AUTO_LENGTH, &r));
    return r;
}

static napi_value js_versions(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value arr, v;
    NAPI_OK(napi_create_array_with_length(env, 3, &arr));
    NAPI_OK(napi_create_string_utf8(env, memtube_version(), NAPI_AUTO_LENGTH, &v));
    NAPI_OK(napi_set_element(env, arr, 0, v));
    NAPI_OK(napi_set_element(env, arr, 1, num(env, memtube_abi_version())));
    NAPI_OK(napi_set_element(env, arr, 2, num(env, MEMTUBE_ABI_VERSION)));
    return arr;
}

/* ---- options (index.js normalizes them into numbers) ---- */

static bool get_num(napi_env env, napi_value o, const char *k, double *out) {
    napi_value v;
    napi_valuetype t;
    if (napi_get_named_property(env, o, k, &v) != napi_ok) return false;
    napi_typeof(env, v, &t);
    if (t != napi_number) return false;
    napi_get_value_double(env, v, out);
    return true;
}

/* Build memtube options from a normalized JS object. Returns a status; on
 * failure *out is NULL and the error is memtube's (or local_err). */
static int32_t build_opts(napi_env env, napi_value o, memtube_options **out) {
    *out = NULL;
    memtube_options *op = memtube_options_new();
    if (!op) {
        snprintf(local_err, sizeof local_err, "out of memory");
        return MEMTUBE_OS;
    }
    double d;
    int32_t st = MEMTUBE_OK;
#define SET(key, call)                                                         \
    if (st == MEMTUBE_OK && get_num(env, o, key, &d)) st = (call)
    SET("capacity", memtube_options_set_capacity(op, (uint32_t)d));
    SET("maxCapacity", memtube_options_set_max_capacity(op, (uint32_t)d));
    SET("duplex", memtube_options_set_duplex(op, d != 0));
    SET("isolation", memtube_options_set_isolation(op, d != 0));
    SET("pureSpin", memtube_options_set_pure_spin(op, d != 0));
    SET("hugePages", memtube_options_set_huge_pages(op, d != 0));
    SET("mlock", memtube_options_set_mlock(op, d != 0));
    SET("direction", memtube_options_set_direction(op, (int32_t)d));
    SET("connectTimeoutNs", memtube_options_set_connect_timeout_ns(op, (int64_t)d));
    SET("handshakeTimeoutNs", memtube_options_set_handshake_timeout_ns(op, (int64_t)d));
#undef SET
    if (st == MEMTUBE_OK && get_num(env, o, "uidPolicy", &d)) {
        uint32_t uids[64];
        uint32_t n = 0;
        napi_value arr;
        bool is = false;
        if (napi_get_named_property(env, o, "uids", &arr) == napi_ok &&
            napi_is_array(env, arr, &is) == napi_ok && is) {
            napi_get_array_length(env, arr, &n);
            if (n > 64) {
                snprintf(local_err, sizeof local_err, "uidPolicy: at most 64 uids");
                st = MEMTUBE_INVALID_ARGUMENT;
            }
            for (uint32_t i = 0; st == MEMTUBE_OK && i < n; i++) {
                napi_value e;
                double u;
                napi_get_element(env, arr, i, &e);
                napi_get_value_double(env, e, &u);
                uids[i] = (uint32_t)u;
            }
        }
        if (st == MEMTUBE_OK) st = memtube_options_set_uid_policy(op, (int32_t)d, uids, n);
    }
    if (st != MEMTUBE_OK) {
        capture(st);
        memtube_options_free(op);
        return st;
    }
    *out = op;
    return MEMTUBE_OK;
}

/* ---- async works ---- */

enum op {
    OP_ACCEPT, OP_CONNECT, OP_RECV, OP_SEND, OP_RESERVE, OP_CALL, OP_SERVE, OP_SENDRECV
};

typedef struct work {
    napi_async_work w;
    napi_ref cb;
    napi_ref keep; /* the core's external, alive while the work runs */
    core *c;
    core *c2;       /* OP_SENDRECV on split halves: the receiver's core */
    napi_ref keep2; /* and its external */
    bool sent;      /* OP_SENDRECV: the message went out */
    enum op op;
    int64_t timeout;
    uint32_t type_id;
    void *data; /* a copy of the bytes to send / the address to connect */
    size_t len;
    memtube_options *opts;
    /* results */
    int32_t st;
    int32_t os_err;
    char err[512];
    memtube_message m;
    memtube_grant g;
    memtube_connection *conn;
    memtube_cancel_token *token;
    /* OP_SERVE: the JS handler runs on the JS thread through this */
    napi_threadsafe_function tsfn;
    napi_ref exc;     /* the handler's exception, rethrown by the promise */
    char bad[200];    /* the handler returned something that is no reply */
    bool stop;        /* pool thread only: stop serving after this request */
} work;

static uint32_t pool_serve_handler(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                                   memtube_reply *reply);

static void capture_err(work *w) {
    snprintf(w->err, sizeof w->err, "%s", memtube_last_error_message());
    w->os_err = memtube_last_os_error();
}

/* The deadline of a wait of `timeout` ns from now: -1 for no limit (a
 * negative timeout, or one so large that the sum would overflow). */
static int64_t deadline_of(int64_t timeout) {
    if (timeout < 0) return -1;
    int64_t now = now_ns();
    return timeout > INT64_MAX - now ? -1 : now + timeout;
}

/* A positive timeout whose deadline passed before the last slice: that
 * slice was 0 (try, do not wait), whose EMPTY / FULL means TIMEOUT here. */
#define EXPIRED(w, slice)                                                      \
    do {                                                                       \
        if ((slice) == 0 && (w)->timeout > 0 &&                                \
            ((w)->st == MEMTUBE_EMPTY || (w)->st == MEMTUBE_FULL)) {           \
            (w)->st = MEMTUBE_TIMEOUT;                                         \
            snprintf((w)->err, sizeof (w)->err, "timed out after %lld ns", (long long)(w)->timeout); \
            (w)->os_err = 0;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)

/* Wait in slices so that close() (the core's abort flag) ends the wait
 * within SLICE_NS; a slice that times out has no effect on the ring. */
#define SLICED(call_with_slice)                                                \
    do {                                                                       \
        int64_t deadline_ = deadline_of(w->timeout);                           \
        for (;;) {                                                             \
            if (atomic_load(&c->abort)) {                                      \
                w->st = MEMTUBE_CANCELLED;                                     \
                snprintf(w->err, sizeof w->err, "the handle was closed while this call waited"); \
                return;                                                        \
            }                                                                  \
            int64_t slice = SLICE_NS;                                          \
            if (deadline_ >= 0) {                                              \
                int64_t rem_ = deadline_ - now_ns();                           \
                if (rem_ < slice) slice = rem_ > 0 ? rem_ : 0;                 \
            }                                                                  \
            w->st = (call_with_slice);                                         \
            EXPIRED(w, slice);                                                 \
            if (w->st != MEMTUBE_TIMEOUT) break;                               \
            if (deadline_ >= 0 && now_ns() >= deadline_) break;                \
        }                                                                      \
    } while (0)

/* Runs on a libuv pool thread: only the core's C handle, never napi. The
 * core stays allocated (its external is referenced by w->keep, so neither
 * its finalizer nor a free runs) and its handles stay live: every call on
 * a busy core returns BUSY, and close() only sets flags (the free happens
 * in work_complete, after this returns). */
static void work_execute(napi_env env, void *data) {
    (void)env;
    work *w = data;
    core *c = w->c;
    switch (w->op) {
    case OP_ACCEPT:
        /* The listener's own options, with a fresh cancel token so that the
         * connection's close() can stop a pending call. Set on the options
         * right before the accept (accept copies what it needs). */
        memtube_options_set_cancel_token(c->lopts, w->token);
        SLICED(memtube_listener_accept(c->lis, c->lopts, slice, &w->conn));
        break;
    case OP_CONNECT:
        w->st = memtube_connect((const char *)w->data, w->opts, &w->conn);
        break;
    case OP_RECV:
        SLICED(memtube_recv(c->rx, slice, &w->m));
        break;
    case OP_SEND:
        SLICED(memtube_send(c->tx, w->data, w->len, w->type_id, slice));
        break;
    case OP_RESERVE:
        SLICED(memtube_reserve(c->tx, w->len, slice, &w->g));
        break;
    case OP_CALL:
        /* Not sliced: a timed-out call cannot be resumed. close() cancels
         * the connection's token instead (CANCELLED within ~50 ms). */
        w->st = memtube_call(c->conn, w->type_id, w->data, w->len, w->timeout, &w->m);
        break;
    case OP_SENDRECV: {
        /* In slices (close() of either handle ends the wait): memtube_sendrecv
         * until the message went out, then a plain memtube_recv (never send
         * twice). The timeout applies to each of the two waits. */
        core *r = w->c2 ? w->c2 : c;
        int64_t deadline = deadline_of(w->timeout);
        for (;;) {
            if (atomic_load(&c->abort) || atomic_load(&r->abort)) {
                w->st = MEMTUBE_CANCELLED;
                snprintf(w->err, sizeof w->err, "the handle was closed while this call waited");
                return;
            }
            int64_t slice = SLICE_NS;
            if (deadline >= 0) {
                int64_t rem = deadline - now_ns();
                if (rem < slice) slice = rem > 0 ? rem : 0;
            }
            if (!w->sent) {
                w->st = memtube_sendrecv(c->tx, w->data, w->len, w->type_id, r->rx, slice, &w->m, &w->sent);
                /* Sent in this slice: the receive's wait starts now. */
                if (w->sent && w->st == MEMTUBE_TIMEOUT && w->timeout >= 0) deadline = deadline_of(w->timeout);
            } else {
                w->st = memtube_recv(r->rx, slice, &w->m);
            }
            EXPIRED(w, slice);
            if (w->st != MEMTUBE_TIMEOUT) break;
            if (deadline >= 0 && now_ns() >= deadline) break;
        }
        break;
    }
    case OP_SERVE:
        /* Serve until the peer closes (OK), an error, close() (the abort
         * flag, checked between slices) or a handler failure. */
        for (;;) {
            if (atomic_load(&c->abort)) {
                w->st = MEMTUBE_CANCELLED;
                snprintf(w->err, sizeof w->err, "the connection was closed while serving");
                return;
            }
            w->st = memtube_serve_one(c->conn, SLICE_NS, pool_serve_handler, w);
            if (w->stop) {
                w->st = MEMTUBE_OK; /* the handler's failure is reported instead */
                return;
            }
            if (w->st == MEMTUBE_OK || w->st == MEMTUBE_TIMEOUT || w->st == MEMTUBE_REPLY_TOO_LARGE) continue;
            if (w->st == MEMTUBE_CLOSED) w->st = MEMTUBE_OK;
            break;
        }
        break;
    }
    if (w->st != MEMTUBE_OK) capture_err(w);
}

/* The grant's view was collected while the core was busy (view_finalize):
 * abort it now, on the JS thread, if it is still outstanding. */
static void abort_collected_grant(napi_env env, core *c) {
    if (!c->abort_later) return;
    c->abort_later = false;
    if (c->closed || !c->tx || !c->grant_ref) return;
    napi_value ab = NULL;
    napi_get_reference_value(env, c->grant_ref, &ab);
    if (ab) return; /* a newer grant, alive */
    napi_delete_reference(env, c->grant_ref);
    c->grant_ref = NULL;
    memtube_abort(c->tx);
}

static void work_complete(napi_env env, napi_status status, void *data) {
    work *w = data;
    core *c = w->c;
    napi_value cb, argv[4], result = NULL, global;
    if (c) {
        c->busy = false;
        abort_collected_grant(env, c);
    }
    if (w->c2) {
        core *r = w->c2;
        r->busy = false;
        /* The receiver of a sendRecv on split halves. Its held message was
         * released when the work started (release_later has nothing left). */
        r->release_later = false;
        if (r->close_later) {
            if (w->st == MEMTUBE_OK) {
                w->st = MEMTUBE_CANCELLED;
                snprintf(w->err, sizeof w->err, "the handle was closed while this call waited");
            }
            free_handles(env, r);
        }
    }
    if (c && c->release_later) {
        /* msg.release() (or its collection) came while the work ran. A
         * receive, call or serve released that message when it started. */
        c->release_later = false;
        if (!c->closed && c->rx && w->op != OP_RECV && w->op != OP_CALL && w->op != OP_SERVE &&
            w->op != OP_SENDRECV) {
            drop_msg_view(env, c);
            memtube_release(c->rx);
        }
    }
    if (status == napi_cancelled) {
        w->st = MEMTUBE_CANCELLED;
        snprintf(w->err, sizeof w->err, "the call was cancelled before it started");
    }
    if (c && c->close_later) {
        /* close() came while the work ran: what it produced dies with the
         * handle (a received message is released by the free). */
        if (w->st == MEMTUBE_OK) {
            w->st = MEMTUBE_CANCELLED;
            snprintf(w->err, sizeof w->err, "the handle was closed while this call waited");
        }
        if (w->conn) memtube_connection_free(w->conn);
        w->conn = NULL;
        free_handles(env, c);
    }
    if (w->st == MEMTUBE_OK) {
        switch (w->op) {
        case OP_ACCEPT:
        case OP_CONNECT:
            result = new_conn_core(env, w->conn, w->token);
            w->token = NULL;
            break;
        case OP_RECV:
        case OP_CALL:
            result = make_view(env, c, (void *)w->m.data, w->m.len, false);
            if (result && scratch) scratch[0] = w->m.type_id;
            break;
        case OP_RESERVE:
            result = make_view(env, c, w->g.data, w->g.len, true);
            break;
        case OP_SENDRECV: {
            core *r = w->c2 ? w->c2 : c;
            result = make_view(env, r, (void *)w->m.data, w->m.len, false);
            if (result && scratch) scratch[0] = w->m.type_id;
            break;
        }
        case OP_SEND:
        case OP_SERVE:
            result = undef(env);
            break;
        }
    }
    if (w->tsfn) napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
    napi_value handler_exc = NULL;
    if (w->exc) {
        napi_get_reference_value(env, w->exc, &handler_exc);
        napi_delete_reference(env, w->exc);
    } else if (w->bad[0]) {
        napi_value msg, code;
        napi_create_string_utf8(env, w->bad, NAPI_AUTO_LENGTH, &msg);
        napi_create_string_utf8(env, "ERR_INVALID_RETURN_VALUE", NAPI_AUTO_LENGTH, &code);
        napi_create_type_error(env, code, msg, &handler_exc);
    }
    if (w->token) memtube_cancel_token_free(w->token);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
        napi_value e;
        napi_get_and_clear_last_exception(env, &e);
        argv[0] = num(env, MEMTUBE_PANIC);
        napi_create_string_utf8(env, "the addon could not build the result", NAPI_AUTO_LENGTH, &argv[1]);
        argv[2] = e;
    } else if (handler_exc) {
        argv[0] = num(env, -1); /* reject with argv[1] as it is */
        argv[1] = handler_exc;
        argv[2] = undef(env);
    } else if (w->st == MEMTUBE_OK) {
        argv[0] = num(env, 0);
        argv[1] = result ? result : undef(env);
        argv[2] = num(env, scratch ? scratch[0] : 0);
    } else {
        argv[0] = num(env, w->st);
        napi_create_string_utf8(env, w->err, NAPI_AUTO_LENGTH, &argv[1]);
        argv[2] = num(env, w->os_err);
    }
    napi_get_boolean(env, w->sent, &argv[3]);
    napi_get_reference_value(env, w->cb, &cb);
    napi_get_global(env, &global);
    napi_delete_reference(env, w->cb);
    if (w->keep) napi_delete_reference(env, w->keep);
    if (w->keep2) napi_delete_reference(env, w->keep2);
    napi_delete_async_work(env, w->w);
    if (w->opts) memtube_options_free(w->opts);
    free(w->data);
    free(w);
    /* An exception thrown by the callback surfaces as uncaught (as in any
     * Node callback); index.js's callbacks only settle promises. */
    napi_call_function(env, global, cb, 4, argv, NULL);
}

/* Queue `w` (cb = the JS callback (status, result, extra)). Returns NULL
 * after throwing on failure. */
static napi_value start_work(napi_env env, work *w, napi_value core_val, napi_value cb) {
    napi_value name;
    NAPI_OK(napi_create_string_utf8(env, "memtube", NAPI_AUTO_LENGTH, &name));
    NAPI_OK(napi_create_reference(env, cb, 1, &w->cb));
    if (core_val) NAPI_OK(napi_create_reference(env, core_val, 1, &w->keep));
    NAPI_OK(napi_create_async_work(env, NULL, name, work_execute, work_complete, w, &w->w));
    NAPI_OK(napi_queue_async_work(env, w->w));
    if (w->c) w->c->busy = true;
    if (w->c2) w->c2->busy = true;
    return undef(env);
}

static work *work_new(napi_env env, core *c, enum op op) {
    work *w = calloc(1, sizeof *w);
    if (!w) napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
    else {
        w->c = c;
        w->op = op;
    }
    return w;
}

/* A work that sends a copy of `n` bytes at `d` (the JS buffer may change or
 * be detached while the work runs), of type `ty`, waiting up to `t`. */
static work *work_copy(napi_env env, core *c, enum op op, const void *d, size_t n, uint32_t ty, int64_t t) {
    work *w = work_new(env, c, op);
    if (!w) return NULL;
    w->data = malloc(n ? n : 1);
    if (!w->data) {
        free(w);
        napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
        return NULL;
    }
    if (n) memcpy(w->data, d, n);
    w->len = n;
    w->type_id = ty;
    w->timeout = t;
    return w;
}

/* ---- the arguments of the entry points ----
 *
 * The sync and async forms of a call take the same leading arguments and
 * check them the same way: a prologue does both. It returns true to go on,
 * else false with *ret what the entry point returns (a status, or NULL
 * after throwing). */

typedef struct {
    core *c;
    const void *d; /* data */
    size_t n;
    uint32_t ty;   /* type id */
    int64_t len;   /* reserve: the length */
    int64_t t;     /* timeout */
} args;

/* (core, timeoutNs) on a core open, not busy, with `side` */
static inline bool core_t_args(napi_env env, napi_value *argv, int side, args *a, napi_value *ret) {
    *ret = NULL;
    if (!arg_core(env, argv[0], &a->c) || !arg_i64(env, argv[1], &a->t)) return false;
    return !(*ret = ready(env, a->c, side));
}

/* send(core, data, typeId, timeoutNs) */
static inline bool send_args(napi_env env, napi_value *argv, args *a, napi_value *ret) {
    *ret = NULL;
    if (!arg_core(env, argv[0], &a->c) || !arg_bytes(env, argv[1], &a->d, &a->n) ||
        !arg_u32(env, argv[2], &a->ty) || !arg_i64(env, argv[3], &a->t))
        return false;
    return !(*ret = ready(env, a->c, SIDE_TX));
}

/* reserve(core, n, timeoutNs) */
static inline bool reserve_args(napi_env env, napi_value *argv, args *a, napi_value *ret) {
    *ret = NULL;
    if (!arg_core(env, argv[0], &a->c) || !arg_i64(env, argv[1], &a->len) || !arg_i64(env, argv[2], &a->t))
        return false;
    if ((*ret = ready(env, a->c, SIDE_TX))) return false;
    if (a->len < 0) *ret = local_fail(env, MEMTUBE_INVALID_ARGUMENT, "reserve: a negative length");
    return !*ret;
}

/* recv(core, timeoutNs): the held message's view is detached (the receive
 * releases it). */
static inline bool recv_args(napi_env env, napi_value *argv, args *a, napi_value *ret) {
    if (!core_t_args(env, argv, SIDE_RX, a, ret)) return false;
    drop_msg_view(env, a->c);
    return true;
}

/* call(core, typeId, data, timeoutNs) on a duplex connection */
static inline bool call_args(napi_env env, napi_value *argv, args *a, napi_value *ret) {
    *ret = NULL;
    if (!arg_core(env, argv[0], &a->c) || !arg_u32(env, argv[1], &a->ty) ||
        !arg_bytes(env, argv[2], &a->d, &a->n) || !arg_i64(env, argv[3], &a->t))
        return false;
    if ((*ret = ready(env, a->c, SIDE_ANY))) return false;
    if (!a->c->conn) *ret = local_fail(env, MEMTUBE_NO_SUCH_HANDLE, "call needs a (duplex) connection, not a split half");
    return !*ret;
}

/* sendRecv(txCore, data, typeId, rxCore, timeoutNs): the handles' gates as
 * a status (*g), for results that are numbers. */
static inline bool sr_args(napi_env env, napi_value *argv, args *tx, core **rc, int32_t *g) {
    if (!arg_core(env, argv[0], &tx->c) || !arg_bytes(env, argv[1], &tx->d, &tx->n) ||
        !arg_u32(env, argv[2], &tx->ty) || !arg_core(env, argv[3], rc) || !arg_i64(env, argv[4], &tx->t))
        return false;
    *g = pair_st(tx->c, *rc);
    return true;
}

/* ---- listen / connect / accept ---- */

static bool arg_str(napi_env env, napi_value v, char **out) {
    size_t n;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a string");
        return false;
    }
    *out = malloc(n + 1);
    if (!*out) {
        napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
        return false;
    }
    napi_get_value_string_utf8(env, v, *out, n + 1, &n);
    return true;
}

/* (addr, opts): a copy of the address (free it) and the options; false
 * with *ret the entry point's result (a status, or NULL after throwing). */
static bool addr_args(napi_env env, napi_value *argv, char **addr, memtube_options **op, napi_value *ret) {
    *ret = NULL;
    if (!arg_str(env, argv[0], addr)) return false;
    int32_t st = build_opts(env, argv[1], op);
    if (st != MEMTUBE_OK) {
        free(*addr);
        *ret = status_value(env, st);
        return false;
    }
    return true;
}

/* The result of an accept or connect (`st`): the connection, with the
 * cancel token its close() uses, or the status (the token freed). */
static napi_value conn_result(napi_env env, int32_t st, memtube_connection *conn, memtube_cancel_token *tok) {
    if (st != MEMTUBE_OK) {
        memtube_cancel_token_free(tok);
        return status_value(env, st);
    }
    return new_conn_core(env, conn, tok);
}

/* listen(addr, opts) -> listener | status */
static napi_value js_listen(napi_env env, napi_callback_info info) {
    ARGS(2);
    char *addr;
    memtube_options *op;
    napi_value ret;
    if (!addr_args(env, argv, &addr, &op, &ret)) return ret;
    memtube_listener *l = NULL;
    int32_t st = capture(memtube_listen(addr, op, &l));
    free(addr);
    if (st != MEMTUBE_OK) {
        memtube_options_free(op);
        return status_value(env, st);
    }
    core *c = core_new();
    if (!c) {
        memtube_listener_free(l);
        memtube_options_free(op);
        napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
        return NULL;
    }
    c->is_listener = true;
    c->lis = l;
    c->lopts = op;
    return wrap_core(env, c);
}

/* acceptSync(listener, timeoutNs) -> connection | status */
static napi_value js_accept_sync(napi_env env, napi_callback_info info) {
    ARGS(2);
    args a;
    napi_value ret;
    if (!core_t_args(env, argv, SIDE_ANY, &a, &ret)) return ret;
    core *c = a.c;
    memtube_cancel_token *tok = memtube_cancel_token_new();
    memtube_options_set_cancel_token(c->lopts, tok);
    memtube_connection *conn = NULL;
    int32_t st = capture(memtube_listener_accept(c->lis, c->lopts, a.t, &conn));
    return conn_result(env, st, conn, tok);
}

/* acceptAsync(listener, timeoutNs, cb) */
static napi_value js_accept_async(napi_env env, napi_callback_info info) {
    ARGS(3);
    args a;
    napi_value ret;
    if (!core_t_args(env, argv, SIDE_ANY, &a, &ret)) return ret;
    work *w = work_new(env, a.c, OP_ACCEPT);
    if (!w) return NULL;
    w->timeout = a.t;
    w->token = memtube_cancel_token_new();
    return start_work(env, w, argv[0], argv[2]);
}

/* connectSync(addr, opts) -> connection | status */
static napi_value js_connect_sync(napi_env env, napi_callback_info info) {
    ARGS(2);
    char *addr;
    memtube_options *op;
    napi_value ret;
    if (!addr_args(env, argv, &addr, &op, &ret)) return ret;
    memtube_cancel_token *tok = memtube_cancel_token_new();
    memtube_options_set_cancel_token(op, tok);
    memtube_connection *conn = NULL;
    int32_t st = capture(memtube_connect(addr, op, &conn));
    free(addr);
    memtube_options_free(op);
    return conn_result(env, st, conn, tok);
}

/* connectAsync(addr, opts, cb) -> undefined | status (bad options) */
static napi_value js_connect_async(napi_env env, napi_callback_info info) {
    ARGS(3);
    char *addr;
    memtube_options *op;
    napi_value ret;
    if (!addr_args(env, argv, &addr, &op, &ret)) return ret;
    work *w = work_new(env, NULL, OP_CONNECT);
    if (!w) {
        free(addr);
        memtube_options_free(op);
        return NULL;
    }
    w->data = addr;
    w->opts = op;
    w->token = memtube_cancel_token_new();
    memtube_options_set_cancel_token(op, w->token);
    return start_work(env, w, NULL, argv[2]);
}

static napi_value js_listener_fd(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    int32_t g = gate_st(c);
    if (g) return num(env, -g);
    return num(env, memtube_listener_fd(c->lis));
}

/* close(core): frees now, or when the pending work ends (which close()
 * makes end soon: the abort flag for sliced waits, the token for a call). */
static napi_value js_close(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    if (c->closed) return undef(env);
    if (c->busy) {
        c->close_later = true;
        atomic_store(&c->abort, 1);
        /* Thread-safe and async-signal-safe by the C ABI's contract. */
        if (c->token) memtube_cancel_token_cancel(c->token);
        return undef(env);
    }
    free_handles(env, c);
    return undef(env);
}

static napi_value js_is_closed(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    napi_value r;
    NAPI_OK(napi_get_boolean(env, c->closed || c->close_later, &r));
    return r;
}

/* split(conn) -> [txCore|null, rxCore|null] | status */
static napi_value js_split(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    GATE(c);
    if (!c->conn) return local_fail(env, MEMTUBE_INVALID_ARGUMENT, "not a connection");
    core *a = core_new(), *b = core_new();
    if (!a || !b) {
        free(a);
        free(b);
        napi_throw_error(env, "ERR_MEMTUBE_OOM", "out of memory");
        return NULL;
    }
    /* The held message and the grant carry over to the owned handles: keep
     * their views valid, now tracked by the new cores. */
    memtube_sender *tx = NULL;
    memtube_receiver *rx = NULL;
    int32_t st = capture(memtube_connection_split(c->conn, &tx, &rx));
    c->conn = NULL;
    c->tx = NULL;
    c->rx = NULL;
    if (st != MEMTUBE_OK) {
        /* The connection is consumed even on failure. */
        free_handles(env, c);
        free(a);
        free(b);
        return status_value(env, st);
    }
    /* Views made on `c` stay valid but their finalizers name `c`: detach
     * them rather than let them outlive their tracking (simple and safe). */
    drop_msg_view(env, c);
    if (rx) memtube_release(rx);
    detach_ref(env, &c->grant_ref);
    if (tx) memtube_abort(tx);
    a->tx = tx;
    b->rx = rx;
    /* The token stays with the split-off halves' shared watch; free ours. */
    free_handles(env, c);
    napi_value arr, va = NULL, vb = NULL, nul;
    napi_get_null(env, &nul);
    if (tx) va = wrap_core(env, a); else free(a);
    if (rx) vb = wrap_core(env, b); else free(b);
    NAPI_OK(napi_create_array_with_length(env, 2, &arr));
    NAPI_OK(napi_set_element(env, arr, 0, va ? va : nul));
    NAPI_OK(napi_set_element(env, arr, 1, vb ? vb : nul));
    return arr;
}

/* A received message as a detaching view; scratch[0] = its type id. */
static napi_value msg_view(napi_env env, core *c, const memtube_message *m) {
    napi_value v = make_view(env, c, (void *)m->data, m->len, false);
    if (v && scratch) scratch[0] = m->type_id;
    return v;
}

/* ---- sending ---- */

/* send(core, data, typeId, timeoutNs) -> status */
static napi_value js_send(napi_env env, napi_callback_info info) {
    ARGS(4);
    args a;
    napi_value ret;
    if (!send_args(env, argv, &a, &ret)) return ret;
    /* `d` stays valid: no JS runs during the call. */
    return status_value(env, memtube_send(a.c->tx, a.d, a.n, a.ty, a.t));
}

/* sendAsync(core, data, typeId, timeoutNs, cb): copies the bytes. */
static napi_value js_send_async(napi_env env, napi_callback_info info) {
    ARGS(5);
    args a;
    napi_value ret;
    if (!send_args(env, argv, &a, &ret)) return ret;
    work *w = work_copy(env, a.c, OP_SEND, a.d, a.n, a.ty, a.t);
    if (!w) return NULL;
    return start_work(env, w, argv[0], argv[4]);
}

static napi_value js_send_staged(napi_env env, napi_callback_info info) {
    ARGS(3);
    core *c;
    const void *d;
    size_t n;
    uint32_t ty;
    if (!arg_core(env, argv[0], &c) || !arg_bytes(env, argv[1], &d, &n) ||
        !arg_u32(env, argv[2], &ty))
        return NULL;
    READY(c, SIDE_TX);
    /* `d` is the JS buffer's memory, read during the call only (no JS runs). */
    return status_value(env, memtube_send_staged(c->tx, d, n, ty));
}

static napi_value js_publish(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    READY(c, SIDE_TX);
    return status_value(env, memtube_publish(c->tx));
}

/* reserve(core, n, timeoutNs) -> Buffer | status */
static napi_value js_reserve(napi_env env, napi_callback_info info) {
    ARGS(3);
    args a;
    napi_value ret;
    if (!reserve_args(env, argv, &a, &ret)) return ret;
    memtube_grant g;
    int32_t st = memtube_reserve(a.c->tx, (size_t)a.len, a.t, &g);
    if (st != MEMTUBE_OK) return status_value(env, st);
    return make_view(env, a.c, g.data, g.len, true);
}

static napi_value js_reserve_async(napi_env env, napi_callback_info info) {
    ARGS(4);
    args a;
    napi_value ret;
    if (!reserve_args(env, argv, &a, &ret)) return ret;
    work *w = work_new(env, a.c, OP_RESERVE);
    if (!w) return NULL;
    w->len = (size_t)a.len;
    w->timeout = a.t;
    return start_work(env, w, argv[0], argv[3]);
}

/* commit(core, used, typeId) -> status; the grant's view is detached on
 * success (on INVALID_ARGUMENT the grant stays outstanding, and its view). */
static napi_value js_commit(napi_env env, napi_callback_info info) {
    ARGS(3);
    core *c;
    int64_t used;
    uint32_t ty;
    if (!arg_core(env, argv[0], &c) || !arg_i64(env, argv[1], &used) || !arg_u32(env, argv[2], &ty))
        return NULL;
    READY(c, SIDE_TX);
    if (used < 0) return local_fail(env, MEMTUBE_INVALID_ARGUMENT, "commit: a negative length");
    int32_t st = memtube_commit(c->tx, (size_t)used, ty);
    if (st == MEMTUBE_OK) detach_ref(env, &c->grant_ref);
    return status_value(env, st);
}

static napi_value js_abort(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    READY(c, SIDE_TX);
    detach_ref(env, &c->grant_ref);
    return status_value(env, memtube_abort(c->tx));
}

/* ---- receiving ---- */

/* recv(core, timeoutNs) -> Buffer | status; scratch = [typeId, gen] */
static napi_value js_recv(napi_env env, napi_callback_info info) {
    ARGS(2);
    args a;
    napi_value ret;
    /* memtube_recv releases the held message first: its view is detached. */
    if (!recv_args(env, argv, &a, &ret)) return ret;
    memtube_message m;
    int32_t st = memtube_recv(a.c->rx, a.t, &m);
    if (st != MEMTUBE_OK) return status_value(env, st);
    return msg_view(env, a.c, &m);
}

static napi_value js_recv_async(napi_env env, napi_callback_info info) {
    ARGS(3);
    args a;
    napi_value ret;
    if (!recv_args(env, argv, &a, &ret)) return ret;
    /* Release on this thread: no view finalizer can race the pool thread. */
    memtube_release(a.c->rx);
    work *w = work_new(env, a.c, OP_RECV);
    if (!w) return NULL;
    w->timeout = a.t;
    return start_work(env, w, argv[0], argv[2]);
}

/* recvCopy(core, buf, timeoutNs) -> length >= 0 | -status; scratch[0] = type */
static napi_value js_recv_copy(napi_env env, napi_callback_info info) {
    ARGS(3);
    core *c;
    const void *d;
    size_t cap, len = 0;
    int64_t t;
    uint32_t ty = 0;
    if (!arg_core(env, argv[0], &c) || !arg_i64(env, argv[2], &t)) return NULL;
    /* Failures are negative here (a length is not): -status. */
    int32_t g = ready_st(c, SIDE_RX);
    if (g) return num(env, -g);
    /* Detach the held message's view first: were `buf` that view (read-only
     * ring memory the call releases), it is now empty (TOO_LARGE). */
    drop_msg_view(env, c);
    if (!arg_bytes(env, argv[1], &d, &cap)) return NULL;
    /* A window of the ring (recvView) is read-only ring memory. */
    if (in_ring(c, d, cap)) {
        local_fail(env, MEMTUBE_INVALID_ARGUMENT, "the buffer is ring memory (a received message's view): copy into a Buffer of your own");
        return num(env, -MEMTUBE_INVALID_ARGUMENT);
    }
    /* `d` is the JS buffer's memory: no JS runs during the call. */
    int32_t st = memtube_recv_copy(c->rx, t, (uint8_t *)d, cap, &len, &ty);
    if (scratch) {
        scratch[0] = ty;
        scratch[2] = (uint32_t)len;
    }
    if (st != MEMTUBE_OK) return num(env, -st);
    return num(env, (double)len);
}

/* release(core, gen): releases the held message if it is message `gen`. */
static napi_value js_release(napi_env env, napi_callback_info info) {
    ARGS(2);
    core *c;
    uint32_t gen;
    if (!arg_core(env, argv[0], &c) || !arg_u32(env, argv[1], &gen)) return NULL;
    if (c->closed || !c->rx || gen != c->msg_gen || !c->msg_held) return num(env, 0);
    if (c->busy) {
        /* In use on a pool thread: detach the view now, release after. */
        drop_msg_view(env, c);
        c->release_later = true;
        return num(env, 0);
    }
    drop_msg_view(env, c);
    return status_value(env, memtube_release(c->rx));
}

/* held(core, gen) -> whether message `gen` is still held */
static napi_value js_held(napi_env env, napi_callback_info info) {
    ARGS(2);
    core *c;
    uint32_t gen;
    if (!arg_core(env, argv[0], &c) || !arg_u32(env, argv[1], &gen)) return NULL;
    napi_value r;
    bool held = !c->closed && c->rx && gen == c->msg_gen && c->msg_held;
    NAPI_OK(napi_get_boolean(env, held, &r));
    return r;
}

/* recvWindow(core, timeoutNs) -> offset >= 0 in the ring window | Buffer
 * (a detaching view: no window) | -status; scratch = [typeId, gen, length] */
static napi_value js_recv_window(napi_env env, napi_callback_info info) {
    ARGS(2);
    core *c;
    int64_t t;
    if (!arg_core(env, argv[0], &c) || !arg_i64(env, argv[1], &t)) return NULL;
    int32_t g = ready_st(c, SIDE_RX);
    if (g) return num(env, -g);
    drop_msg_view(env, c);
    memtube_message m;
    int32_t st = memtube_recv(c->rx, t, &m);
    if (st != MEMTUBE_OK) return num(env, -st);
    if (scratch) {
        scratch[0] = m.type_id;
        scratch[2] = (uint32_t)m.len;
    }
    return window_of(env, c, m.data, m.len);
}

/* ---- send, then receive (memtube_sendrecv) ---- */

enum { SR_VIEW = 0, SR_WINDOW = 1, SR_COPY = 2 };

/* sendRecv(txCore, data, typeId, rxCore, timeoutNs, mode[, buf]): send,
 * then receive, on this thread, in ONE Node-API call. Result by mode:
 * SR_VIEW a detaching Buffer view; SR_WINDOW as recvWindow; SR_COPY the
 * length copied into `buf` (index.js checked that it is a TypedArray,
 * DataView or ArrayBuffer). Failure: -status. scratch = [typeId, gen,
 * length, sent]: sent = 1 when the message went out (the failure was the
 * receive's: continue with a plain receive, never send again).
 *
 * Only what the send needs is converted before it (the handles, the bytes,
 * the type id, the timeout, the guards of both handles): the rest (mode,
 * `buf`) after it, while the message is on its way, so that it is not on
 * the round trip's critical path. */
static napi_value js_send_recv(napi_env env, napi_callback_info info) {
    ARGS_MIN(7, 6);
    if (scratch) scratch[3] = 0;
    args a;
    core *rc;
    uint32_t mode;
    int32_t g;
    if (!sr_args(env, argv, &a, &rc, &g)) return NULL;
    if (g) return num(env, -g);
    core *tc = a.c;
    const void *d = a.d;
    size_t n = a.n;
    uint32_t ty = a.ty;
    int64_t t = a.t;
    if (argc >= 7) {
        /* SR_COPY: memtube_send, then memtube_recv_copy (the C ABI has no
         * copying sendrecv; this is its composition, with the same
         * contract: `data` may be the held message, released by the
         * receive after the send). */
        /* `d` is JS memory or the held message of `rc` (released only by
         * the receive below), valid during the call: no JS runs. */
        int32_t st = memtube_send(tc->tx, d, n, ty, t);
        if (st != MEMTUBE_OK) return num(env, -st);
        if (scratch) scratch[3] = 1;
        const void *b = NULL;
        size_t cap = 0, len = 0;
        uint32_t rty = 0;
        /* Cannot fail: index.js passes only a TypedArray, DataView or
         * ArrayBuffer (a detached one has no bytes: cap 0). */
        if (!arg_bytes(env, argv[6], &b, &cap)) return NULL;
        /* The held message's view (which the receive releases) or a ring
         * window is read-only ring memory: a copy into it would fault. */
        if (overlaps_held(rc, b, cap) || in_ring(rc, b, cap)) {
            local_fail(env, MEMTUBE_INVALID_ARGUMENT, "the buffer is ring memory (a received message's view): copy into a Buffer of your own (the message went out: receive with recvInto)");
            return num(env, -MEMTUBE_INVALID_ARGUMENT);
        }
        drop_msg_view(env, rc);
        st = memtube_recv_copy(rc->rx, t, (uint8_t *)b, cap, &len, &rty);
        if (scratch) {
            scratch[0] = rty;
            scratch[2] = (uint32_t)len;
        }
        if (st != MEMTUBE_OK) return num(env, -st);
        return num(env, (double)len);
    }
    if (!arg_u32(env, argv[5], &mode)) return NULL;
    memtube_message m;
    bool sent = false;
    /* `d` is JS memory or the held message of `rc` (the C ABI releases
     * that only after the send), valid during the call: no JS runs. */
    int32_t st = memtube_sendrecv(tc->tx, d, n, ty, rc->rx, t, &m, &sent);
    if (scratch) scratch[3] = sent ? 1 : 0;
    /* Sent: the held message was released (at the start of the receive):
     * detach its view now. Not sent: it is still held, its view valid. */
    if (sent) drop_msg_view(env, rc);
    if (st != MEMTUBE_OK) return num(env, -st);
    if (scratch) {
        scratch[0] = m.type_id;
        scratch[2] = (uint32_t)m.len;
    }
    if (mode == SR_WINDOW) return window_of(env, rc, m.data, m.len);
    return make_view(env, rc, (void *)m.data, m.len, false);
}

/* sendRecvAsync(txCore, data, typeId, rxCore, timeoutNs, cb, sent): the
 * send (of a copy of `data`) and the receive on the pool, in slices; the
 * held message of `rxCore` is released first, here (as recvAsync does).
 * With `sent` true the message already went out (a sendRecv on this thread
 * found no reply yet): only the receive runs. Both handles are busy until
 * the callback. */
static napi_value js_send_recv_async(napi_env env, napi_callback_info info) {
    ARGS(7);
    bool already = false;
    napi_get_value_bool(env, argv[6], &already);
    args a;
    core *rc;
    int32_t g;
    if (!sr_args(env, argv, &a, &rc, &g)) return NULL;
    if (g) return num(env, g);
    /* Copied before the held message is released: `data` may be it (with
     * `sent`, nothing is left to send). */
    work *w = work_copy(env, a.c, OP_SENDRECV, a.d, already ? 0 : a.n, a.ty, a.t);
    if (!w) return NULL;
    w->sent = already;
    drop_msg_view(env, rc);
    memtube_release(rc->rx);
    if (rc != a.c) {
        w->c2 = rc;
        NAPI_OK(napi_create_reference(env, argv[3], 1, &w->keep2));
    }
    return start_work(env, w, argv[0], argv[5]);
}

/* ---- call / serve ---- */

/* call(core, typeId, data, timeoutNs) -> Buffer | status */
static napi_value js_call(napi_env env, napi_callback_info info) {
    ARGS(4);
    args a;
    napi_value ret;
    if (!call_args(env, argv, &a, &ret)) return ret;
    if (overlaps_held(a.c, a.d, a.n))
        return local_fail(env, MEMTUBE_INVALID_ARGUMENT, "the request is (part of) the message this connection holds, which call() releases first: pass a copy (msg.toBuffer())");
    drop_msg_view(env, a.c);
    memtube_message m;
    /* `d` is JS memory (no JS runs during the call) and not the message the
     * call releases first (refused above). */
    int32_t st = memtube_call(a.c->conn, a.ty, a.d, a.n, a.t, &m);
    if (st != MEMTUBE_OK) return status_value(env, st);
    return msg_view(env, a.c, &m);
}

static napi_value js_call_async(napi_env env, napi_callback_info info) {
    ARGS(5);
    args a;
    napi_value ret;
    if (!call_args(env, argv, &a, &ret)) return ret;
    /* Copied before the held message is released: the request may be it. */
    work *w = work_copy(env, a.c, OP_CALL, a.d, a.n, a.ty, a.t);
    if (!w) return NULL;
    drop_msg_view(env, a.c);
    if (a.c->rx) memtube_release(a.c->rx);
    return start_work(env, w, argv[0], argv[4]);
}

/* What a serve handler returned, as a reply: undefined/null (empty, the
 * request's type id), bytes or a string (the request's type id), or
 * [typeId, bytes-or-string]. On success `*d`, `*n` are the bytes (JS memory, or
 * *owned when a string was encoded: free it) and *rty the type id; false
 * with `bad` set when the value is none of these. */
static bool parse_reply(napi_env env, napi_value out, uint32_t req_type, uint32_t *rty,
                        const void **d, size_t *n, char **owned, char *bad, size_t badlen) {
    static const char *shape = "a serve handler returns undefined, bytes, a string or [typeId, bytes] (typeId < 2^32-1)";
    napi_valuetype t;
    bool is = false;
    napi_value body = out;
    *rty = req_type;
    *d = NULL;
    *n = 0;
    *owned = NULL;
    napi_typeof(env, out, &t);
    if (t == napi_object) napi_is_array(env, out, &is);
    if (is) {
        uint32_t len = 0;
        napi_value tv;
        double v = -1;
        napi_get_array_length(env, out, &len);
        if (len != 2 || napi_get_element(env, out, 0, &tv) != napi_ok ||
            napi_get_value_double(env, tv, &v) != napi_ok || !(v >= 0 && v < 4294967295.0) ||
            v != (double)(uint32_t)v) {
            snprintf(bad, badlen, "%s", shape);
            return false;
        }
        *rty = (uint32_t)v;
        napi_get_element(env, out, 1, &body);
        napi_typeof(env, body, &t);
    }
    if (t == napi_undefined || t == napi_null) return true;
    if (t == napi_string) {
        size_t len;
        napi_get_value_string_utf8(env, body, NULL, 0, &len);
        *owned = malloc(len + 1);
        if (!*owned) {
            snprintf(bad, badlen, "out of memory");
            return false;
        }
        napi_get_value_string_utf8(env, body, *owned, len + 1, &len);
        *d = *owned;
        *n = len;
        return true;
    }
    bool view = false;
    napi_is_typedarray(env, body, &view);
    if (!view) napi_is_arraybuffer(env, body, &view);
    if (!view) napi_is_dataview(env, body, &view);
    if (view && arg_bytes(env, body, d, n)) return true;
    snprintf(bad, badlen, "%s", shape);
    return false;
}

/* Call the JS handler with a view of the request. Returns the handler's
 * result, or NULL with its exception pending; *req_ab is the view's
 * ArrayBuffer (NULL for an empty request), which the caller detaches with
 * detach_or_die once it has read (or copied) the reply, as the reply may be
 * the request or a part of it: the request is valid during the handler
 * only. */
static napi_value call_handler(napi_env env, napi_value fn, uint32_t type_id, const uint8_t *req, size_t len,
                               napi_value *req_ab) {
    napi_value buf = NULL, ab = NULL, argv[2], out = NULL, global;
    *req_ab = NULL;
    /* SAFETY of the raw pointer: the request is valid during this call
     * and the view is detached below, before the call returns. */
    if (len == 0) {
        if (napi_create_buffer(env, 0, NULL, &buf) != napi_ok) buf = NULL;
    } else if (napi_create_external_buffer(env, len, (void *)req, NULL, NULL, &buf) != napi_ok ||
               napi_get_typedarray_info(env, buf, NULL, NULL, NULL, &ab, NULL) != napi_ok) {
        buf = NULL;
    }
    if (!buf) {
        throw_last(env, "napi_create_external_buffer");
        return NULL;
    }
    napi_get_global(env, &global);
    argv[0] = num(env, type_id);
    argv[1] = buf;
    *req_ab = ab;
    if (napi_call_function(env, global, fn, 2, argv, &out) != napi_ok) out = NULL;
    return out;
}

typedef struct {
    napi_env env;
    napi_value fn;
    bool threw;
    char bad[200];
} serve_ctx;

/* The C handler of serveOne (the JS thread serves): a JS exception never
 * unwinds through memtube: it stays pending, the reply gets the reserved
 * type id (the caller sees PROTOCOL), and serveOne rethrows it once
 * memtube_serve_one has returned. */
static uint32_t serve_handler(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                              memtube_reply *reply) {
    serve_ctx *s = ctx;
    napi_env env = s->env;
    if (s->threw || s->bad[0]) return UINT32_MAX;
    napi_value req_ab;
    napi_value out = call_handler(env, s->fn, type_id, req, len, &req_ab);
    uint32_t rty = UINT32_MAX;
    if (!out) {
        s->threw = true;
    } else {
        const void *d;
        size_t n;
        char *owned;
        if (parse_reply(env, out, type_id, &rty, &d, &n, &owned, s->bad, sizeof s->bad)) {
            /* `d` is JS memory, ours, or the request itself (still valid:
             * the handler has not returned, its view is detached below):
             * no JS runs until the write (a copy into the reply) is done. */
            if (n && memtube_reply_write(reply, d, n) != MEMTUBE_OK) rty = UINT32_MAX;
            free(owned);
        } else {
            rty = UINT32_MAX;
        }
    }
    if (req_ab) detach_or_die(env, req_ab);
    return rty;
}

/* One request of an async serve, handed from the serving pool thread to the
 * JS thread and back. */
typedef struct {
    uint32_t type_id;
    const uint8_t *req;
    size_t len;
    uint8_t *reply; /* malloc'd copy of the reply bytes */
    size_t reply_len;
    uint32_t reply_type;
    bool failed;
    bool done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} serve_item;

static void item_done(serve_item *it) {
    pthread_mutex_lock(&it->mu);
    it->done = true;
    pthread_cond_signal(&it->cv);
    pthread_mutex_unlock(&it->mu);
}

/* On the JS thread: run the handler for one request of an async serve. */
static void serve_call_js(napi_env env, napi_value fn, void *context, void *data) {
    work *w = context;
    serve_item *it = data;
    if (env == NULL || fn == NULL) { /* shutting down */
        it->failed = true;
        item_done(it);
        return;
    }
    napi_value req_ab;
    napi_value out = call_handler(env, fn, it->type_id, it->req, it->len, &req_ab);
    if (!out) {
        napi_value e;
        it->failed = true;
        if (req_ab) detach_or_die(env, req_ab);
        if (napi_get_and_clear_last_exception(env, &e) == napi_ok && !w->exc)
            napi_create_reference(env, e, 1, &w->exc);
        item_done(it);
        return;
    }
    const void *d;
    size_t n;
    char *owned;
    if (!parse_reply(env, out, it->type_id, &it->reply_type, &d, &n, &owned, w->bad, sizeof w->bad)) {
        it->failed = true;
    } else {
        /* A copy: the serving thread writes it into the reply after we return. */
        it->reply = malloc(n ? n : 1);
        if (!it->reply) it->failed = true;
        else if (n) memcpy(it->reply, d, n);
        it->reply_len = n;
    }
    free(owned);
    /* After the copy: the reply may be (part of) the request. */
    if (req_ab) detach_or_die(env, req_ab);
    item_done(it);
}

/* The C handler of an async serve, on the serving pool thread: hands the
 * request to the JS thread and waits for the reply (the request stays valid
 * meanwhile: this call has not returned). The reply is written here, on the
 * serving thread, as the C ABI requires. */
static uint32_t pool_serve_handler(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                                   memtube_reply *reply) {
    work *w = ctx;
    if (w->stop) return UINT32_MAX;
    serve_item it = {.type_id = type_id, .req = req, .len = len};
    pthread_mutex_init(&it.mu, NULL);
    pthread_cond_init(&it.cv, NULL);
    uint32_t rty = UINT32_MAX;
    if (napi_call_threadsafe_function(w->tsfn, &it, napi_tsfn_blocking) != napi_ok) {
        w->stop = true;
    } else {
        pthread_mutex_lock(&it.mu);
        while (!it.done) pthread_cond_wait(&it.cv, &it.mu);
        pthread_mutex_unlock(&it.mu);
        if (it.failed) {
            w->stop = true;
        } else {
            rty = it.reply_type;
            if (it.reply_len && memtube_reply_write(reply, it.reply, it.reply_len) != MEMTUBE_OK)
                rty = UINT32_MAX;
        }
    }
    free(it.reply);
    pthread_mutex_destroy(&it.mu);
    pthread_cond_destroy(&it.cv);
    return rty;
}

/* serveAsync(core, handler, cb): serve on the pool until the peer closes. */
static napi_value js_serve_async(napi_env env, napi_callback_info info) {
    ARGS(3);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    GATE(c);
    if (!c->conn) return local_fail(env, MEMTUBE_NO_SUCH_HANDLE, "serve needs a (duplex) connection, not a split half");
    drop_msg_view(env, c);
    if (c->rx) memtube_release(c->rx);
    work *w = work_new(env, c, OP_SERVE);
    if (!w) return NULL;
    napi_value name;
    NAPI_OK(napi_create_string_utf8(env, "memtube serve", NAPI_AUTO_LENGTH, &name));
    if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, w,
                                        serve_call_js, &w->tsfn) != napi_ok) {
        free(w);
        throw_last(env, "napi_create_threadsafe_function");
        return NULL;
    }
    return start_work(env, w, argv[0], argv[2]);
}

/* serveOne(core, timeoutNs, handler) -> status (or throws the handler's
 * exception) */
static napi_value js_serve_one(napi_env env, napi_callback_info info) {
    ARGS(3);
    core *c;
    int64_t t;
    if (!arg_core(env, argv[0], &c) || !arg_i64(env, argv[1], &t)) return NULL;
    GATE(c);
    if (!c->conn) return local_fail(env, MEMTUBE_NO_SUCH_HANDLE, "serve needs a (duplex) connection, not a split half");
    drop_msg_view(env, c);
    serve_ctx s = {env, argv[2], false, {0}};
    /* The handler may call into JS, which may try to use this core:
     * mark it busy so such calls get BUSY instead of re-entering memtube. */
    c->busy = true;
    int32_t st = memtube_serve_one(c->conn, t, serve_handler, &s);
    c->busy = false;
    /* What the handler (or a GC during it) asked for while busy: the
     * message it released was released by the serve itself. */
    c->release_later = false;
    abort_collected_grant(env, c);
    if (c->close_later) {
        /* close() inside the handler: the reply went out; free now. */
        free_handles(env, c);
    }
    if (s.threw) return NULL; /* the handler's exception is pending */
    if (s.bad[0]) {
        napi_throw_type_error(env, "ERR_INVALID_RETURN_VALUE", s.bad);
        return NULL;
    }
    return status_value(env, st);
}

/* ---- queries ---- */

static napi_value stats_obj(napi_env env, const memtube_stats *s) {
    napi_value o;
    NAPI_OK(napi_create_object(env, &o));
#define F(name, field) NAPI_OK(napi_set_named_property(env, o, name, num(env, (double)s->field)))
    F("messagesCommitted", messages_committed);
    F("bytesCommitted", bytes_committed);
    F("fullEvents", full_events);
    F("producerWakes", producer_wakes);
    F("messagesReleased", messages_released);
    F("bytesReleased", bytes_released);
    F("consumerWakes", consumer_wakes);
#undef F
    return o;
}

/* stats(core, side) -> object | status */
static napi_value js_stats(napi_env env, napi_callback_info info) {
    ARGS(2);
    core *c;
    uint32_t side;
    if (!arg_core(env, argv[0], &c) || !arg_u32(env, argv[1], &side)) return NULL;
    READY(c, (int)side);
    memtube_stats s;
    int32_t st = side == SIDE_TX ? memtube_sender_stats(c->tx, &s) : memtube_receiver_stats(c->rx, &s);
    if (st != MEMTUBE_OK) return status_value(env, st);
    return stats_obj(env, &s);
}

/* peerState(core, side, probe) -> state (0..2) | -status; side 2: the connection */
static napi_value js_peer_state(napi_env env, napi_callback_info info) {
    ARGS(3);
    core *c;
    uint32_t side;
    bool probe = false;
    if (!arg_core(env, argv[0], &c) || !arg_u32(env, argv[1], &side)) return NULL;
    napi_get_value_bool(env, argv[2], &probe);
    int32_t g = gate_st(c);
    if (g) return num(env, -g);
    int32_t state = 0, st;
    if (side == 2 && c->conn) st = memtube_connection_peer_state(c->conn, probe, &state);
    else if (side == SIDE_TX && c->tx) st = memtube_sender_peer_state(c->tx, probe, &state);
    else if (side == SIDE_RX && c->rx) st = memtube_receiver_peer_state(c->rx, probe, &state);
    else if (c->tx) st = memtube_sender_peer_state(c->tx, probe, &state);
    else if (c->rx) st = memtube_receiver_peer_state(c->rx, probe, &state);
    else st = MEMTUBE_NO_SUCH_HANDLE;
    if (st != MEMTUBE_OK) return num(env, -st);
    return num(env, state);
}

/* sizes(core) -> {maxPayloadTx, capacityTx, maxPayloadRx, maxRequest} */
static napi_value js_sizes(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    GATE(c);
    napi_value o;
    NAPI_OK(napi_create_object(env, &o));
    uint32_t v;
    if (c->tx && memtube_sender_max_payload(c->tx, &v) == MEMTUBE_OK)
        NAPI_OK(napi_set_named_property(env, o, "txMaxPayload", num(env, v)));
    if (c->tx && memtube_sender_capacity(c->tx, &v) == MEMTUBE_OK)
        NAPI_OK(napi_set_named_property(env, o, "txCapacity", num(env, v)));
    if (c->rx && memtube_receiver_max_payload(c->rx, &v) == MEMTUBE_OK)
        NAPI_OK(napi_set_named_property(env, o, "rxMaxPayload", num(env, v)));
    if (c->conn && c->tx && c->rx && memtube_max_request(c->conn, &v) == MEMTUBE_OK)
        NAPI_OK(napi_set_named_property(env, o, "maxRequest", num(env, v)));
    local_err[0] = 0;
    return o;
}

/* sides(core) -> 1 (sends) | 2 (receives), or -CLOSED: our own fields only,
 * no memtube call, so it needs no gate against a pending work. */
static napi_value js_sides(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    if (c->closed) {
        return num(env, -fail_st(MEMTUBE_CLOSED, CLOSED_MSG));
    }
    return num(env, (c->tx ? 1 : 0) | (c->rx ? 2 : 0));
}

static napi_value js_peer_cred(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    GATE(c);
    if (!c->conn) return local_fail(env, MEMTUBE_NO_SUCH_HANDLE, "peer credentials belong to a connection");
    memtube_peer_cred pc;
    int32_t st = memtube_connection_peer_cred(c->conn, &pc);
    if (st != MEMTUBE_OK) return status_value(env, st);
    napi_value o;
    NAPI_OK(napi_create_object(env, &o));
    NAPI_OK(napi_set_named_property(env, o, "pid", num(env, pc.pid)));
    NAPI_OK(napi_set_named_property(env, o, "uid", num(env, pc.uid)));
    NAPI_OK(napi_set_named_property(env, o, "gid", num(env, pc.gid)));
    return o;
}

static napi_value js_set_nt(napi_env env, napi_callback_info info) {
    ARGS(2);
    core *c;
    uint32_t v;
    if (!arg_core(env, argv[0], &c) || !arg_u32(env, argv[1], &v)) return NULL;
    READY(c, SIDE_TX);
    return status_value(env, memtube_sender_set_nontemporal_threshold(c->tx, v));
}

static napi_value js_set_padding(napi_env env, napi_callback_info info) {
    ARGS(2);
    core *c;
    bool on = false;
    if (!arg_core(env, argv[0], &c)) return NULL;
    napi_get_value_bool(env, argv[1], &on);
    READY(c, SIDE_TX);
    return status_value(env, memtube_sender_set_line_padding(c->tx, on));
}

static napi_value js_busy(napi_env env, napi_callback_info info) {
    ARGS(1);
    core *c;
    if (!arg_core(env, argv[0], &c)) return NULL;
    napi_value r;
    NAPI_OK(napi_get_boolean(env, c->busy, &r));
    return r;
}

/* addressOf(typedArray) -> BigInt: where its bytes are in this process (to
 * show that a message view is ring memory, not a copy). */
static napi_value js_address_of(napi_env env, napi_callback_info info) {
    ARGS(1);
    const void *d;
    size_t n;
    if (!arg_bytes(env, argv[0], &d, &n)) return NULL;
    napi_value r;
    NAPI_OK(napi_create_bigint_uint64(env, n ? (uint64_t)(uintptr_t)d : 0, &r));
    return r;
}

NAPI_MODULE_INIT() {
    napi_property_descriptor props[] = {
#define FN(name, f) {name, NULL, f, NULL, NULL, NULL, napi_enumerable, NULL}
        FN("init", js_init),
        FN("lastError", js_last_error),
        FN("lastOsError", js_last_os_error),
        FN("statusName", js_status_name),
        FN("versions", js_versions),
        FN("listen", js_listen),
        FN("acceptSync", js_accept_sync),
        FN("acceptAsync", js_accept_async),
        FN("connectSync", js_connect_sync),
        FN("connectAsync", js_connect_async),
        FN("listenerFd", js_listener_fd),
        FN("close", js_close),
        FN("isClosed", js_is_closed),
        FN("isBusy", js_busy),
        FN("addressOf", js_address_of),
        FN("split", js_split),
        FN("send", js_send),
        FN("sendAsync", js_send_async),
        FN("sendStaged", js_send_staged),
        FN("publish", js_publish),
        FN("reserve", js_reserve),
        FN("reserveAsync", js_reserve_async),
        FN("commit", js_commit),
        FN("abort", js_abort),
        FN("recv", js_recv),
        FN("recvAsync", js_recv_async),
        FN("recvCopy", js_recv_copy),
        FN("recvWindow", js_recv_window),
        FN("ringBuffer", js_ring_buffer),
        FN("sendRecv", js_send_recv),
        FN("sendRecvAsync", js_send_recv_async),
        FN("release", js_release),
        FN("held", js_held),
        FN("call", js_call),
        FN("callAsync", js_call_async),
        FN("serveOne", js_serve_one),
        FN("serveAsync", js_serve_async),
        FN("stats", js_stats),
        FN("peerState", js_peer_state),
        FN("sizes", js_sizes),
        FN("peerCred", js_peer_cred),
        FN("sides", js_sides),
        FN("setNontemporalThreshold", js_set_nt),
        FN("setLinePadding", js_set_padding),
#undef FN
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
        return NULL;
    return exports;
}
