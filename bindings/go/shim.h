/* shim.h: small C helpers between the Go package and memtube.h.
 *
 * Why they exist: memtube_last_error_message() is thread-local, and a
 * goroutine may move to another OS thread between two cgo calls. Each
 * helper makes the memtube call and, on failure, copies the message and
 * errno into a per-handle scratch block in the SAME cgo call (so on the
 * same thread). The scratch blocks are C memory (malloc), so the Go side
 * passes no Go pointer to C on the hot path and allocates nothing per call.
 */
#ifndef MEMTUBE_GO_SHIM_H
#define MEMTUBE_GO_SHIM_H

#include <stdint.h>
#include <stdlib.h>
#include "memtube.h"

#define MT_ERR_CAP 512
/* payloads up to this size are staged in the scratch block (see mt_sendrecv_small) */
#define MT_SMALL_CAP 256

/* One per Go handle (listener, connection, sender, receiver): used by one
 * goroutine at a time, under the handle's mutex. */
typedef struct mt_scratch {
    memtube_message msg;   /* filled by recv and call */
    memtube_grant grant;   /* filled by reserve */
    memtube_stats stats;
    memtube_peer_cred cred;
    uint32_t u32;          /* max_payload, capacity, max_request */
    int32_t state;         /* peer state */
    _Bool sent;            /* mt_sendrecv: the message went out (the receive is what failed) */
    int32_t os_errno;      /* memtube_last_os_error() of the last failure */
    char err[MT_ERR_CAP];  /* memtube_last_error_message() of the last failure */
    uint8_t small[MT_SMALL_CAP]; /* a small payload, copied here by Go (mt_*_small) */
} mt_scratch;

mt_scratch *mt_scratch_new(void);

int32_t mt_listen(const char *addr, const memtube_options *o, memtube_listener **out, mt_scratch *s);
int32_t mt_accept(const memtube_listener *l, const memtube_options *o, int64_t timeout_ns,
                  memtube_connection **out, mt_scratch *s);
int32_t mt_connect(const char *addr, const memtube_options *o, memtube_connection **out, mt_scratch *s);
int32_t mt_split(memtube_connection *c, memtube_sender **tx, memtube_receiver **rx, mt_scratch *s);
int32_t mt_conn_peer_cred(memtube_connection *c, mt_scratch *s);
int32_t mt_conn_peer_state(memtube_connection *c, _Bool probe, mt_scratch *s);
int32_t mt_conn_handles(memtube_connection *c, memtube_sender **tx, memtube_receiver **rx);

int32_t mt_options(memtube_options *o, uint32_t capacity, uint32_t max_capacity, _Bool duplex,
                   _Bool isolation, _Bool pure_spin, _Bool huge_pages, _Bool mlock,
                   int32_t direction, int64_t connect_timeout_ns, int64_t handshake_timeout_ns,
                   int32_t uid_kind, const uint32_t *uids, size_t n_uids,
                   const memtube_cancel_token *token, mt_scratch *s);

/* The hot-path helpers take the handle and the scratch block as uintptr_t:
 * both are C memory, and cgo checks every pointer-typed argument for Go
 * pointers on each call (about a tenth of a Go round trip), which C memory
 * never needs. */
int32_t mt_send(uintptr_t tx, const void *data, size_t len, uint32_t type_id,
                int64_t timeout_ns, uintptr_t s);
/* mt_send of the len <= MT_SMALL_CAP bytes Go copied to s->small (no
 * pointer argument: no cgo pointer check) */
int32_t mt_send_small(uintptr_t tx, size_t len, uint32_t type_id, int64_t timeout_ns, uintptr_t s);
int32_t mt_send_staged(memtube_sender *tx, const void *data, size_t len, uint32_t type_id,
                       mt_scratch *s);
int32_t mt_publish(memtube_sender *tx, mt_scratch *s);
int32_t mt_reserve(uintptr_t tx, size_t len, int64_t timeout_ns, uintptr_t s);
int32_t mt_commit(uintptr_t tx, size_t used, uint32_t type_id, uintptr_t s);
int32_t mt_abort(memtube_sender *tx, mt_scratch *s);
int32_t mt_sender_query(memtube_sender *tx, int what, _Bool probe, mt_scratch *s);
int32_t mt_sender_set(memtube_sender *tx, int what, uint32_t value, mt_scratch *s);

int32_t mt_recv(uintptr_t rx, int64_t timeout_ns, uintptr_t s);
/* memtube_sendrecv: the message into s->msg, which step failed into s->sent */
int32_t mt_sendrecv(uintptr_t tx, const void *data, size_t len, uint32_t type_id, uintptr_t rx,
                    int64_t timeout_ns, uintptr_t s);
/* mt_sendrecv of the len <= MT_SMALL_CAP bytes Go copied to s->small: no
 * pointer argument, so no cgo pointer check (about 15 ns a call here) */
int32_t mt_sendrecv_small(uintptr_t tx, size_t len, uint32_t type_id, uintptr_t rx,
                          int64_t timeout_ns, uintptr_t s);
int32_t mt_recv_copy(memtube_receiver *rx, int64_t timeout_ns, uint8_t *buf, size_t cap,
                     mt_scratch *s);
int32_t mt_release(uintptr_t rx, uintptr_t s);
int32_t mt_receiver_query(memtube_receiver *rx, int what, _Bool probe, mt_scratch *s);

int32_t mt_call(memtube_connection *c, uint32_t type_id, const void *req, size_t len,
                int64_t timeout_ns, mt_scratch *s);
int32_t mt_max_request(memtube_connection *c, mt_scratch *s);
/* serve one request with the Go handler registered under `handle` (a cgo.Handle) */
int32_t mt_serve_one(memtube_connection *c, int64_t timeout_ns, uintptr_t handle, uintptr_t key, mt_scratch *s);
/* Whether this thread is inside mt_serve_one for the handle key (so in its
 * handler, when Go asks: the callback's goroutine is locked to the thread). */
bool mt_serving_here(uintptr_t key);

/* what mt_*_query reads */
#define MT_Q_MAX_PAYLOAD 0
#define MT_Q_CAPACITY 1
#define MT_Q_STATS 2
#define MT_Q_PEER_STATE 3
/* what mt_sender_set sets */
#define MT_S_NONTEMPORAL 0
#define MT_S_LINE_PADDING 1

/* a plain blocking C call, for comparisons (tests) */
void mt_plain_sleep(int64_t ns);
/* empty calls, for the benchmarks */
void mt_plain_noop(void);
void mt_plain_noop_ptr(const void *p);

#endif
