/* shim.c: see shim.h. Every helper forwards to memtube and, when the status
 * is not MEMTUBE_OK, records the thread-local error text and errno in the
 * caller's scratch block before returning to Go. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>
#include "shim.h"
#include "_cgo_export.h"

mt_scratch *mt_scratch_new(void) {
    /* calloc: a zeroed block; the Go side frees it with C.free */
    return (mt_scratch *)calloc(1, sizeof(mt_scratch));
}

static int32_t fail(int32_t st, mt_scratch *s) {
    if (st != MEMTUBE_OK && s != NULL) {
        const char *m = memtube_last_error_message();
        s->os_errno = memtube_last_os_error();
        strncpy(s->err, m ? m : "", MT_ERR_CAP - 1);
        s->err[MT_ERR_CAP - 1] = '\0';
    }
    return st;
}

int32_t mt_listen(const char *addr, const memtube_options *o, memtube_listener **out, mt_scratch *s) {
    return fail(memtube_listen(addr, o, out), s);
}

int32_t mt_accept(const memtube_listener *l, const memtube_options *o, int64_t timeout_ns,
                  memtube_connection **out, mt_scratch *s) {
    return fail(memtube_listener_accept(l, o, timeout_ns, out), s);
}

int32_t mt_connect(const char *addr, const memtube_options *o, memtube_connection **out, mt_scratch *s) {
    return fail(memtube_connect(addr, o, out), s);
}

int32_t mt_split(memtube_connection *c, memtube_sender **tx, memtube_receiver **rx, mt_scratch *s) {
    return fail(memtube_connection_split(c, tx, rx), s);
}

int32_t mt_conn_peer_cred(memtube_connection *c, mt_scratch *s) {
    return fail(memtube_connection_peer_cred(c, &s->cred), s);
}

int32_t mt_conn_peer_state(memtube_connection *c, _Bool probe, mt_scratch *s) {
    return fail(memtube_connection_peer_state(c, probe, &s->state), s);
}

int32_t mt_conn_handles(memtube_connection *c, memtube_sender **tx, memtube_receiver **rx) {
    /* NULL for a side this end does not have (the NO_SUCH_HANDLE it records
     * is not an error here: the Go side remembers which handles exist) */
    *tx = memtube_connection_sender(c);
    *rx = memtube_connection_receiver(c);
    return MEMTUBE_OK;
}

int32_t mt_options(memtube_options *o, uint32_t capacity, uint32_t max_capacity, _Bool duplex,
                   _Bool isolation, _Bool pure_spin, _Bool huge_pages, _Bool mlock,
                   int32_t direction, int64_t connect_timeout_ns, int64_t handshake_timeout_ns,
                   int32_t uid_kind, const uint32_t *uids, size_t n_uids,
                   const memtube_cancel_token *token, mt_scratch *s) {
    int32_t st;
    if (capacity != 0 && (st = memtube_options_set_capacity(o, capacity)) != MEMTUBE_OK) return fail(st, s);
    if (max_capacity != 0 && (st = memtube_options_set_max_capacity(o, max_capacity)) != MEMTUBE_OK)
        return fail(st, s);
    if ((st = memtube_options_set_duplex(o, duplex)) != MEMTUBE_OK) return fail(st, s);
    if ((st = memtube_options_set_isolation(o, isolation)) != MEMTUBE_OK) return fail(st, s);
    if ((st = memtube_options_set_pure_spin(o, pure_spin)) != MEMTUBE_OK) return fail(st, s);
    if ((st = memtube_options_set_huge_pages(o, huge_pages)) != MEMTUBE_OK) return fail(st, s);
    if ((st = memtube_options_set_mlock(o, mlock)) != MEMTUBE_OK) return fail(st, s);
    if ((st = memtube_options_set_direction(o, direction)) != MEMTUBE_OK) return fail(st, s);
    if (connect_timeout_ns != 0 &&
        (st = memtube_options_set_connect_timeout_ns(o, connect_timeout_ns)) != MEMTUBE_OK)
        return fail(st, s);
    if (handshake_timeout_ns != 0 &&
        (st = memtube_options_set_handshake_timeout_ns(o, handshake_timeout_ns)) != MEMTUBE_OK)
        return fail(st, s);
    if ((st = memtube_options_set_uid_policy(o, uid_kind, uids, n_uids)) != MEMTUBE_OK) return fail(st, s);
    if (token != NULL && (st = memtube_options_set_cancel_token(o, token)) != MEMTUBE_OK)
        return fail(st, s);
    return MEMTUBE_OK;
}

#define TX(x) ((memtube_sender *)(x))
#define RX(x) ((memtube_receiver *)(x))
#define SCR(x) ((mt_scratch *)(x))

int32_t mt_send(uintptr_t tx, const void *data, size_t len, uint32_t type_id,
                int64_t timeout_ns, uintptr_t s) {
    return fail(memtube_send(TX(tx), data, len, type_id, timeout_ns), SCR(s));
}

int32_t mt_send_small(uintptr_t tx, size_t len, uint32_t type_id, int64_t timeout_ns, uintptr_t s) {
    return fail(memtube_send(TX(tx), SCR(s)->small, len, type_id, timeout_ns), SCR(s));
}

int32_t mt_send_staged(memtube_sender *tx, const void *data, size_t len, uint32_t type_id,
                       mt_scratch *s) {
    return fail(memtube_send_staged(tx, data, len, type_id), s);
}

int32_t mt_publish(memtube_sender *tx, mt_scratch *s) { return fail(memtube_publish(tx), s); }

int32_t mt_reserve(uintptr_t tx, size_t len, int64_t timeout_ns, uintptr_t s) {
    return fail(memtube_reserve(TX(tx), len, timeout_ns, &SCR(s)->grant), SCR(s));
}

int32_t mt_commit(uintptr_t tx, size_t used, uint32_t type_id, uintptr_t s) {
    return fail(memtube_commit(TX(tx), used, type_id), SCR(s));
}

int32_t mt_abort(memtube_sender *tx, mt_scratch *s) { return fail(memtube_abort(tx), s); }

int32_t mt_sender_query(memtube_sender *tx, int what, _Bool probe, mt_scratch *s) {
    switch (what) {
    case MT_Q_MAX_PAYLOAD: return fail(memtube_sender_max_payload(tx, &s->u32), s);
    case MT_Q_CAPACITY: return fail(memtube_sender_capacity(tx, &s->u32), s);
    case MT_Q_STATS: return fail(memtube_sender_stats(tx, &s->stats), s);
    default: return fail(memtube_sender_peer_state(tx, probe, &s->state), s);
    }
}

int32_t mt_sender_set(memtube_sender *tx, int what, uint32_t value, mt_scratch *s) {
    if (what == MT_S_NONTEMPORAL) return fail(memtube_sender_set_nontemporal_threshold(tx, value), s);
    return fail(memtube_sender_set_line_padding(tx, value != 0), s);
}

int32_t mt_recv(uintptr_t rx, int64_t timeout_ns, uintptr_t s) {
    return fail(memtube_recv(RX(rx), timeout_ns, &SCR(s)->msg), SCR(s));
}

int32_t mt_sendrecv(uintptr_t tx, const void *data, size_t len, uint32_t type_id, uintptr_t rx,
                    int64_t timeout_ns, uintptr_t s) {
    return fail(memtube_sendrecv(TX(tx), data, len, type_id, RX(rx), timeout_ns, &SCR(s)->msg,
                                 &SCR(s)->sent),
                SCR(s));
}

int32_t mt_sendrecv_small(uintptr_t tx, size_t len, uint32_t type_id, uintptr_t rx,
                          int64_t timeout_ns, uintptr_t s) {
    /* s->small is the sender's own copy: the held message it may have come
     * from can be released by the receive */
    return fail(memtube_sendrecv(TX(tx), SCR(s)->small, len, type_id, RX(rx), timeout_ns,
                                 &SCR(s)->msg, &SCR(s)->sent),
                SCR(s));
}

int32_t mt_recv_copy(memtube_receiver *rx, int64_t timeout_ns, uint8_t *buf, size_t cap,
                     mt_scratch *s) {
    size_t len = 0;
    uint32_t type_id = 0;
    int32_t st = memtube_recv_copy(rx, timeout_ns, buf, cap, &len, &type_id);
    s->msg.data = NULL;
    s->msg.len = len;
    s->msg.type_id = type_id;
    return fail(st, s);
}

int32_t mt_release(uintptr_t rx, uintptr_t s) { return fail(memtube_release(RX(rx)), SCR(s)); }

int32_t mt_receiver_query(memtube_receiver *rx, int what, _Bool probe, mt_scratch *s) {
    switch (what) {
    case MT_Q_MAX_PAYLOAD: return fail(memtube_receiver_max_payload(rx, &s->u32), s);
    case MT_Q_STATS: return fail(memtube_receiver_stats(rx, &s->stats), s);
    default: return fail(memtube_receiver_peer_state(rx, probe, &s->state), s);
    }
}

int32_t mt_call(memtube_connection *c, uint32_t type_id, const void *req, size_t len,
                int64_t timeout_ns, mt_scratch *s) {
    return fail(memtube_call(c, type_id, req, len, timeout_ns, &s->msg), s);
}

int32_t mt_max_request(memtube_connection *c, mt_scratch *s) {
    return fail(memtube_max_request(c, &s->u32), s);
}

/* The memtube_handler that hands each request to the Go handler registered
 * under the cgo.Handle in ctx. goMemtubeHandle never lets a Go panic unwind
 * into C: it recovers, remembers the panic for Serve to re-raise, and returns
 * UINT32_MAX (the client then gets PROTOCOL). */
static uint32_t trampoline(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                           memtube_reply *reply) {
    return goMemtubeHandle((uintptr_t)ctx, type_id, (uint8_t *)req, len, reply);
}

/* The key of the handle this thread serves (0: none). A Go handler runs on
 * the thread that called mt_serve_one, locked to it for the callback, so a
 * Conn.Close that finds its own key here is called from inside the handler
 * (and waiting for the lock would wait for itself). */
static __thread uintptr_t serving_key;

int32_t mt_serve_one(memtube_connection *c, int64_t timeout_ns, uintptr_t handle, uintptr_t key,
                     mt_scratch *s) {
    uintptr_t outer = serving_key;
    serving_key = key;
    int32_t st = memtube_serve_one(c, timeout_ns, trampoline, (void *)handle);
    serving_key = outer;
    return fail(st, s);
}

bool mt_serving_here(uintptr_t key) { return key != 0 && serving_key == key; }

/* For the scheduler measurement in the tests (README.md, "Threads"): a plain
 * blocking C call of the same length as a memtube wait, to compare with. */
void mt_plain_sleep(int64_t ns) {
    struct timespec t;
    t.tv_sec = (time_t)(ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    nanosleep(&t, NULL);
}

/* For the benchmarks (bench_test.go): empty calls, the cost of a cgo
 * transition alone and with a checked pointer argument. */
void mt_plain_noop(void) {}
void mt_plain_noop_ptr(const void *p) { (void)p; }
