/* The C twin of examples/interop.rs: a peer for cross-language tests that
 * sends, receives, serves or calls the same deterministic sequence of
 * messages, checking every byte (see interop.rs for the sequence and the
 * output line). Build:
 *
 *   cargo build -p memtube-ffi && cc -std=c99 -O2 -Ibindings/c/include \
 *       examples/c/interop.c target/debug/libmemtube.a -lpthread -ldl -lm -o interop-c
 *
 *   interop-c (--listen ADDR | --connect ADDR)
 *             (--send N | --recv | --serve | --call N | --echo | --ping N | --dump)
 *             [--size S] [--capacity C] [--timeout SECS] [--unchecked] [--spin]
 *
 * --dump receives until the stream ends and prints every message, checking
 * nothing: "msg TYPE HEX" ("-" for an empty payload), then "end closed", or
 * "end KIND" and exit status 1 on any other error (KIND: the status name in
 * lower case without MEMTUBE_, e.g. "peer_gone"); see interop.rs.
 */
#define _POSIX_C_SOURCE 200809L
#include "memtube.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum role { NONE, SEND, RECV, SERVE, CALL, ECHO, PING, DUMP };

struct args {
    const char *listen, *connect;
    enum role role;
    uint64_t n;
    size_t size;
    uint32_t capacity;
    int64_t timeout_ns;
    bool unchecked, spin;
};

struct stream {
    uint64_t count, bytes, fnv;
    size_t size;
    double start;
    bool bad;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Message `i`: `i` as u64 little-endian, then byte j = (i * 31 + j) % 256. */
static size_t message(uint64_t i, size_t size, uint8_t *buf) {
    size_t len = 8 + (size_t)((i * 7919) % (uint64_t)(size - 7)), j;
    for (j = 0; j < 8; j++) buf[j] = (uint8_t)(i >> (8 * j));
    for (j = 8; j < len; j++) buf[j] = (uint8_t)(i * 31 + j);
    return len;
}

static void account(struct stream *s, const uint8_t *p, size_t len) {
    size_t k;
    if (s->count == 0) s->start = now_s();
    for (k = 0; k < len; k++) {
        s->fnv ^= p[k];
        s->fnv *= 0x00000100000001b3ULL;
    }
    s->bytes += len;
    s->count++;
}

/* --dump: errors end with "end KIND" instead of "error: ...". */
static bool dumping;

/* "end KIND": the status name in lower case without "MEMTUBE_". */
static void print_end(int32_t st) {
    const char *name = memtube_status_name(st);
    if (!strncmp(name, "MEMTUBE_", 8)) name += 8;
    printf("end ");
    for (; *name; name++) putchar(tolower((unsigned char)*name));
    putchar('\n');
}

static void fail(const char *what, int32_t st) {
    if (dumping) {
        print_end(st);
        exit(1);
    }
    printf("error: %s: %s: %s\n", what, memtube_status_name(st), memtube_last_error_message());
    exit(1);
}

/* --dump: print every message until the stream ends; exit status 0 when it
 * ended with the peer's clean close. */
static int dump(memtube_connection *c, const struct args *a) {
    memtube_receiver *rx = memtube_connection_receiver(c);
    memtube_message m;
    int32_t st;
    size_t k;
    while ((st = memtube_recv(rx, a->timeout_ns, &m)) == MEMTUBE_OK) {
        printf("msg %" PRIu32 " ", m.type_id);
        for (k = 0; k < m.len; k++) printf("%02x", m.data[k]);
        fputs(m.len ? "\n" : "-\n", stdout);
    }
    print_end(st);
    memtube_connection_free(c);
    return st == MEMTUBE_CLOSED ? 0 : 1;
}

static memtube_connection *open_conn(const struct args *a) {
    bool duplex = a->role == SERVE || a->role == CALL || a->role == ECHO || a->role == PING;
    bool sends = a->role == SEND, listening = a->listen != NULL;
    memtube_options *o = memtube_options_new();
    memtube_connection *c = NULL;
    int32_t st;
    if (!o) fail("options", MEMTUBE_PANIC);
    if ((st = memtube_options_set_capacity(o, a->capacity)) != MEMTUBE_OK) fail("capacity", st);
    memtube_options_set_duplex(o, duplex);
    memtube_options_set_pure_spin(o, a->spin);
    memtube_options_set_direction(o, sends == listening ? MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR
                                                        : MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER);
    if (listening) {
        memtube_listener *l = NULL;
        if ((st = memtube_listen(a->listen, o, &l)) != MEMTUBE_OK) fail("listen", st);
        printf("listening\n");
        fflush(stdout);
        st = memtube_listener_accept(l, NULL, a->timeout_ns, &c);
        memtube_listener_free(l);
        if (st != MEMTUBE_OK) fail("accept", st);
    } else {
        double until = now_s() + (double)a->timeout_ns * 1e-9;
        struct timespec ms = {0, 10 * 1000 * 1000};
        while ((st = memtube_connect(a->connect, o, &c)) == MEMTUBE_NO_LISTENER && now_s() < until)
            nanosleep(&ms, NULL);
        if (st != MEMTUBE_OK) fail("connect", st);
    }
    memtube_options_free(o);
    return c;
}

/* The handler of --serve: check request `count`, reply with it reversed. */
static uint32_t serve_one(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                          memtube_reply *reply) {
    struct stream *s = ctx;
    uint8_t *want = malloc(s->size), *out;
    size_t n = message(s->count, s->size, want), k;
    if (type_id != (uint32_t)s->count || n != len || memcmp(req, want, len) != 0) s->bad = true;
    free(want);
    account(s, req, len);
    out = memtube_reply_extend(reply, len);
    if (out)
        for (k = 0; k < len; k++) out[k] = req[len - 1 - k];
    return type_id + 1;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* --ping: N/10 untimed round trips, then N timed (see interop.rs). */
static void ping(memtube_connection *c, const struct args *a, struct stream *s) {
    memtube_sender *tx = memtube_connection_sender(c);
    memtube_receiver *rx = memtube_connection_receiver(c);
    uint64_t warm = a->n / 10, i, prev, *samples = malloc((a->n ? a->n : 1) * sizeof *samples);
    uint8_t *msg = calloc(1, a->size);
    memtube_message m;
    int32_t st;
    size_t j;
    if (!samples || !msg) fail("ping", MEMTUBE_PANIC);
    prev = now_ns();
    for (i = 0; i < warm + a->n; i++) {
        uint64_t t;
        for (j = 0; j < 8; j++) msg[j] = (uint8_t)(i >> (8 * j));
        if ((st = memtube_send(tx, msg, a->size, (uint32_t)i, a->timeout_ns)) != MEMTUBE_OK)
            fail("send", st);
        if ((st = memtube_recv(rx, a->timeout_ns, &m)) != MEMTUBE_OK) fail("recv", st);
        if (m.len != a->size || m.type_id != (uint32_t)i || memcmp(m.data, msg, 8) != 0) {
            printf("error: echo %" PRIu64 " differs\n", i);
            exit(1);
        }
        memtube_release(rx);
        t = now_ns();
        if (i >= warm) {
            if (s->count == 0) s->start = now_s() - (double)(t - prev) * 1e-9;
            samples[i - warm] = t - prev;
            s->bytes += a->size;
            s->count++;
        }
        prev = t;
    }
    qsort(samples, a->n, sizeof *samples, cmp_u64);
#define Q(p) samples[(uint64_t)((double)a->n * (p)) < a->n ? (uint64_t)((double)a->n * (p)) : a->n - 1]
    if (a->n)
        printf("ok count=%" PRIu64 " bytes=%" PRIu64 " fnv=%016" PRIx64 " secs=%.6f p50_ns=%" PRIu64
               " p99_ns=%" PRIu64 " p999_ns=%" PRIu64 "\n", s->count, s->bytes, (uint64_t)0,
               now_s() - s->start, Q(0.5), Q(0.99), Q(0.999));
    else
        printf("ok count=0 bytes=0 fnv=%016" PRIx64 " secs=0.000000\n", (uint64_t)0);
#undef Q
    free(samples);
    free(msg);
}

int main(int argc, char **argv) {
    struct args a = {NULL, NULL, NONE, 0, 256, 1u << 16, 10000000000LL, false, false};
    struct stream s = {0, 0, 0xcbf29ce484222325ULL, 0, 0.0, false};
    memtube_connection *c;
    uint8_t *want;
    int i;
    int32_t st;
    for (i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--recv")) a.role = RECV;
        else if (!strcmp(argv[i], "--serve")) a.role = SERVE;
        else if (!strcmp(argv[i], "--echo")) a.role = ECHO;
        else if (!strcmp(argv[i], "--dump")) a.role = DUMP;
        else if (!strcmp(argv[i], "--unchecked")) a.unchecked = true;
        else if (!strcmp(argv[i], "--spin")) a.spin = true;
        else if (!v) break;
        else if (!strcmp(argv[i], "--listen")) a.listen = argv[++i];
        else if (!strcmp(argv[i], "--connect")) a.connect = argv[++i];
        else if (!strcmp(argv[i], "--send")) a.role = SEND, a.n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--call")) a.role = CALL, a.n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--ping")) a.role = PING, a.n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--size")) a.size = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--capacity")) a.capacity = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--timeout")) a.timeout_ns = (int64_t)(atof(argv[++i]) * 1e9);
        else break;
    }
    if (i < argc || (a.listen == NULL) == (a.connect == NULL) || a.role == NONE || a.size < 8) {
        printf("error: usage: %s (--listen ADDR | --connect ADDR) (--send N | --recv | --serve | "
               "--call N | --echo | --ping N | --dump) [--size S] [--capacity C] [--timeout SECS] "
               "[--unchecked] [--spin]\n", argv[0]);
        return 1;
    }
    s.size = a.size;
    dumping = a.role == DUMP;
    c = open_conn(&a);
    if (a.role == DUMP) return dump(c, &a);
    want = malloc(a.size);
    if (a.role == SEND) {
        memtube_sender *tx = memtube_connection_sender(c);
        uint64_t k;
        for (k = 0; k < a.n; k++) {
            size_t n = message(k, a.size, want);
            if ((st = memtube_send(tx, want, n, (uint32_t)k, a.timeout_ns)) != MEMTUBE_OK)
                fail("send", st);
            account(&s, want, n);
        }
    } else if (a.role == RECV) {
        memtube_receiver *rx = memtube_connection_receiver(c);
        memtube_message m;
        while ((st = memtube_recv(rx, a.timeout_ns, &m)) == MEMTUBE_OK) {
            size_t n;
            if (a.unchecked) {
                if (s.count++ == 0) s.start = now_s();
                s.bytes += m.len;
                continue;
            }
            n = message(s.count, a.size, want);
            if (m.type_id != (uint32_t)s.count || m.len != n || memcmp(m.data, want, n) != 0) {
                printf("error: message %" PRIu64 " differs: type id %" PRIu32 ", %zu bytes\n",
                       s.count, m.type_id, m.len);
                return 1;
            }
            account(&s, m.data, m.len);
        }
        if (st != MEMTUBE_CLOSED) fail("recv", st);
    } else if (a.role == ECHO) {
        memtube_sender *tx = memtube_connection_sender(c);
        memtube_receiver *rx = memtube_connection_receiver(c);
        memtube_message m;
        while ((st = memtube_recv(rx, a.timeout_ns, &m)) == MEMTUBE_OK) {
            int32_t sst = memtube_send(tx, m.data, m.len, m.type_id, a.timeout_ns);
            if (sst != MEMTUBE_OK) fail("send", sst);
            if (s.count++ == 0) s.start = now_s();
            s.bytes += m.len;
        }
        if (st != MEMTUBE_CLOSED) fail("recv", st);
    } else if (a.role == PING) {
        ping(c, &a, &s);
        memtube_connection_free(c);
        free(want);
        return 0;
    } else if (a.role == SERVE) {
        if ((st = memtube_serve(c, serve_one, &s)) != MEMTUBE_OK) fail("serve", st);
        if (s.bad) {
            printf("error: a request differs\n");
            return 1;
        }
    } else {
        uint64_t k;
        for (k = 0; k < a.n; k++) {
            size_t n = message(k, a.size, want), j;
            memtube_message r;
            if ((st = memtube_call(c, (uint32_t)k, want, n, a.timeout_ns, &r)) != MEMTUBE_OK)
                fail("call", st);
            if (r.type_id != (uint32_t)k + 1 || r.len != n) {
                printf("error: reply %" PRIu64 " differs\n", k);
                return 1;
            }
            for (j = 0; j < n; j++)
                if (r.data[j] != want[n - 1 - j]) {
                    printf("error: reply %" PRIu64 " differs\n", k);
                    return 1;
                }
            account(&s, want, n);
        }
    }
    if (a.unchecked || a.role == ECHO) s.fnv = 0;
    printf("ok count=%" PRIu64 " bytes=%" PRIu64 " fnv=%016" PRIx64 " secs=%.6f\n", s.count,
           s.bytes, s.fnv, s.count ? now_s() - s.start : 0.0);
    memtube_connection_free(c);
    free(want);
    return 0;
}
