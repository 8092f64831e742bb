/* Teardown races through the C ABI, in one process (threads play both
 * sides), each round after a random wait so the act lands before the
 * blocked call, while it spins or while it sleeps:
 * - a split sender freed while another thread blocks in memtube_recv on
 *   the receiver of the same connection (allowed: each owned handle is used
 *   by one thread): the receiver stays blocked and working, the peer's
 *   receiver gets CLOSED;
 * - a split receiver freed while another thread blocks in memtube_send on
 *   a full ring: the sender stays blocked and goes on when the peer reads;
 * - memtube_cancel_token_cancel from another thread while a thread blocks
 *   in memtube_recv: CANCELLED; the receiver still takes a message that
 *   needs no wait, and the free is a clean close (the peer gets CLOSED).
 * Usage: teardown [rounds] (default 20).
 * Prints "teardown: N passed, M failed"; exits 0 only when M is 0. */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <unistd.h>

static char addr_buf[128];
static const char *fresh_addr(const char *tag) {
    static int n;
    snprintf(addr_buf, sizeof addr_buf, "@memtube-cteardown-%d-%d-%s", (int)getpid(), n++, tag);
    return addr_buf;
}

static uint64_t seed = 88172645463325252ULL;
static uint64_t rnd(void) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static void sleep_ns(int64_t ns) {
    struct timespec d;
    d.tv_sec = (time_t)(ns / SECOND);
    d.tv_nsec = (long)(ns % SECOND);
    nanosleep(&d, NULL);
}

/* None, a few microseconds, or up to 2.5 liveness slices. */
static void jitter(void) {
    switch (rnd() % 3) {
    case 0: break;
    case 1: sleep_ns((int64_t)(rnd() % 200000)); break;
    default: sleep_ns((int64_t)(rnd() % 125000000)); break;
    }
}

struct acceptor {
    memtube_listener *l;
    memtube_connection *conn;
    int32_t st;
};

static void *accept_main(void *arg) {
    struct acceptor *a = arg;
    a->st = memtube_listener_accept(a->l, NULL, 10 * SECOND, &a->conn);
    return NULL;
}

/* A connected pair, split: the listener's (`stx`, `srx`, made with `lo`)
 * and the connector's (`ctx_`, `crx`). */
static void split_pair(const memtube_options *lo, memtube_sender **stx, memtube_receiver **srx,
                       memtube_sender **ctx_, memtube_receiver **crx) {
    const char *addr = fresh_addr("pair");
    memtube_options *co = memtube_options_new();
    memtube_listener *l = NULL;
    memtube_connection *client = NULL;
    struct acceptor a;
    pthread_t t;
    if (!co) exit(2);
    MUST(memtube_options_set_capacity(co, 4096));
    MUST(memtube_options_set_duplex(co, true));
    MUST(memtube_listen(addr, lo, &l));
    a.l = l;
    a.conn = NULL;
    a.st = -1;
    pthread_create(&t, NULL, accept_main, &a);
    MUST(memtube_connect(addr, co, &client));
    pthread_join(t, NULL);
    MUST(a.st);
    memtube_listener_free(l);
    memtube_options_free(co);
    MUST(memtube_connection_split(a.conn, stx, srx));
    MUST(memtube_connection_split(client, ctx_, crx));
}

struct blocked {
    memtube_sender *tx;
    memtube_receiver *rx;
    volatile int state; /* 0 not started, 1 about to block, 2 returned */
    int32_t st;
    double at;
    char got[8];
};

static void *recv_main(void *arg) {
    struct blocked *b = arg;
    memtube_message m;
    b->state = 1;
    b->st = memtube_recv(b->rx, MEMTUBE_FOREVER, &m);
    b->at = now_s();
    if (b->st == MEMTUBE_OK && m.len <= sizeof b->got) memcpy(b->got, m.data, m.len);
    b->state = 2;
    return NULL;
}

static void *send_main(void *arg) {
    struct blocked *b = arg;
    uint8_t x[64] = {0};
    b->state = 1;
    b->st = memtube_send(b->tx, x, sizeof x, 9, MEMTUBE_FOREVER);
    b->at = now_s();
    b->state = 2;
    return NULL;
}

static void wait_started(struct blocked *b) {
    while (b->state == 0) sched_yield();
}

static memtube_options *duplex_opts(memtube_cancel_token *tok) {
    memtube_options *o = memtube_options_new();
    if (!o) exit(2);
    MUST(memtube_options_set_capacity(o, 4096));
    MUST(memtube_options_set_duplex(o, true));
    if (tok) MUST(memtube_options_set_cancel_token(o, tok));
    return o;
}

static void free_sender_while_receiver_blocks(void) {
    memtube_options *o = duplex_opts(NULL);
    memtube_sender *stx, *ctx_;
    memtube_receiver *srx, *crx;
    memtube_message m;
    struct blocked b;
    pthread_t t;
    double t0;
    split_pair(o, &stx, &srx, &ctx_, &crx);
    memset(&b, 0, sizeof b);
    b.rx = srx;
    pthread_create(&t, NULL, recv_main, &b);
    wait_started(&b);
    jitter();
    memtube_sender_free(stx);
    t0 = now_s();
    EXPECT(memtube_recv(crx, 10 * SECOND, &m), MEMTUBE_CLOSED);
    CHECK(now_s() - t0 < 2.0);
    sleep_ns(5000000);
    CHECK(b.state == 1); /* still blocked, on its own ring */
    EXPECT(memtube_send(ctx_, "after", 5, 1, SECOND), MEMTUBE_OK);
    pthread_join(t, NULL);
    EXPECT(b.st, MEMTUBE_OK);
    CHECK(memcmp(b.got, "after", 5) == 0);
    /* Blocked again; the peer frees both halves: CLOSED. */
    b.state = 0;
    pthread_create(&t, NULL, recv_main, &b);
    wait_started(&b);
    jitter();
    memtube_sender_free(ctx_);
    memtube_receiver_free(crx);
    t0 = now_s();
    pthread_join(t, NULL);
    EXPECT(b.st, MEMTUBE_CLOSED);
    CHECK(b.at - t0 < 2.0);
    memtube_receiver_free(srx);
    memtube_options_free(o);
}

static void free_receiver_while_sender_blocks(void) {
    memtube_options *o = duplex_opts(NULL);
    memtube_sender *stx, *ctx_;
    memtube_receiver *srx, *crx;
    memtube_message m;
    uint8_t x[64] = {0};
    struct blocked b;
    pthread_t t;
    int n = 0, i;
    split_pair(o, &stx, &srx, &ctx_, &crx);
    while (memtube_send(stx, x, sizeof x, 9, 0) == MEMTUBE_OK) n++;
    memset(&b, 0, sizeof b);
    b.tx = stx;
    pthread_create(&t, NULL, send_main, &b);
    wait_started(&b);
    jitter();
    memtube_receiver_free(srx);
    EXPECT(memtube_send(ctx_, "x", 1, 1, 0), MEMTUBE_CLOSED);
    sleep_ns(5000000);
    CHECK(b.state == 1);
    for (i = 0; i <= n; i++) EXPECT(memtube_recv(crx, 10 * SECOND, &m), MEMTUBE_OK);
    pthread_join(t, NULL);
    EXPECT(b.st, MEMTUBE_OK);
    memtube_sender_free(stx);
    EXPECT(memtube_recv(crx, 10 * SECOND, &m), MEMTUBE_CLOSED);
    memtube_sender_free(ctx_);
    memtube_receiver_free(crx);
    memtube_options_free(o);
}

static double worst_cancel;

static void cancel_while_receiver_blocks(void) {
    memtube_cancel_token *tok = memtube_cancel_token_new();
    memtube_options *o = duplex_opts(tok);
    memtube_sender *stx, *ctx_;
    memtube_receiver *srx, *crx;
    memtube_message m;
    struct blocked b;
    pthread_t t;
    double t0;
    split_pair(o, &stx, &srx, &ctx_, &crx);
    memset(&b, 0, sizeof b);
    b.rx = srx;
    pthread_create(&t, NULL, recv_main, &b);
    wait_started(&b);
    jitter();
    memtube_cancel_token_cancel(tok);
    t0 = now_s();
    pthread_join(t, NULL);
    EXPECT(b.st, MEMTUBE_CANCELLED);
    CHECK(b.at - t0 < 2.0);
    if (b.at - t0 > worst_cancel) worst_cancel = b.at - t0;
    /* Still consistent: what needs no wait works, a wait is cancelled. */
    EXPECT(memtube_send(ctx_, "after", 5, 1, SECOND), MEMTUBE_OK);
    EXPECT(memtube_recv(srx, 0, &m), MEMTUBE_OK);
    CHECK(m.len == 5 && memcmp(m.data, "after", 5) == 0);
    EXPECT(memtube_recv(srx, MEMTUBE_FOREVER, &m), MEMTUBE_CANCELLED);
    EXPECT(memtube_send(stx, "bye", 3, 2, SECOND), MEMTUBE_OK);
    /* The free is a clean close. */
    memtube_sender_free(stx);
    memtube_receiver_free(srx);
    EXPECT(memtube_recv(crx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 3 && memcmp(m.data, "bye", 3) == 0);
    EXPECT(memtube_recv(crx, 10 * SECOND, &m), MEMTUBE_CLOSED);
    memtube_sender_free(ctx_);
    memtube_receiver_free(crx);
    memtube_options_free(o);
    memtube_cancel_token_free(tok);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20, r;
    seed ^= (uint64_t)getpid() << 20 ^ (uint64_t)time(NULL);
    for (r = 0; r < rounds; r++) {
        free_sender_while_receiver_blocks();
        free_receiver_while_sender_blocks();
        cancel_while_receiver_blocks();
    }
    printf("teardown: worst cancel %.1f ms over %d rounds\n", worst_cancel * 1e3, rounds);
    return finish("teardown");
}
