/* The C side of the multi-process tests of tests/c_abi.rs: streams with
 * sequence numbers and checksums, call/serve, a peer killed mid-stream, a
 * hostile listener, and a ring in a region shared through fork.
 *
 *   peer region-fork N
 *   peer region-kill N                  a forked producer SIGKILLed after N, a successor takes over
 *   peer send ADDR listen|connect N     sends N messages (payload(i), type i)
 *   peer recv ADDR listen|connect N     receives N, then expects the end
 *   peer serve ADDR listen|connect      serves until the caller closes
 *   peer call ADDR listen|connect N     N calls, replies checked
 *   peer recv-until-gone ADDR           listens; prints "got 100", ends on an error
 *   peer send-until-gone ADDR           connects; fills the ring, prints "full", blocks
 *   peer hostile ADDR COUNT             COUNT connects, each refused with HANDSHAKE
 *
 * A listening peer prints "listening" once it listens. Every mode prints
 * its result on stdout and exits 0 on success. */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void die(const char *what, int32_t st) {
    fprintf(stderr, "peer: %s: %s (%s)\n", what, memtube_status_name(st),
            memtube_last_error_message());
    exit(1);
}

/* Listen or connect at `addr` with `o`. */
static memtube_connection *open_conn(const char *addr, const char *how, const memtube_options *o) {
    memtube_connection *c = NULL;
    int32_t st;
    if (strcmp(how, "listen") == 0) {
        memtube_listener *l = NULL;
        st = memtube_listen(addr, o, &l);
        if (st != MEMTUBE_OK) die("listen", st);
        say("listening");
        st = memtube_listener_accept(l, NULL, 20 * SECOND, &c);
        if (st != MEMTUBE_OK) die("accept", st);
        memtube_listener_free(l);
    } else {
        st = memtube_connect(addr, o, &c);
        if (st != MEMTUBE_OK) die("connect", st);
    }
    return c;
}

/* One-way options for a C side that sends (`sends`) and listens or connects. */
static memtube_options *one_way(int sends, const char *how) {
    memtube_options *o = memtube_options_new();
    int listens = strcmp(how, "listen") == 0;
    MUST(memtube_options_set_capacity(o, 4096));
    MUST(memtube_options_set_direction(o, sends == listens ? MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR
                                                           : MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER));
    return o;
}

static memtube_options *duplex(void) {
    memtube_options *o = memtube_options_new();
    MUST(memtube_options_set_capacity(o, 4096));
    MUST(memtube_options_set_duplex(o, true));
    return o;
}

/* Message i through one of the three ways of sending. */
static void send_one(memtube_sender *tx, uint64_t i) {
    uint8_t buf[608];
    size_t len = payload(i, buf);
    int32_t st;
    switch (i % 3) {
    case 0:
        st = memtube_send(tx, buf, len, (uint32_t)i, 20 * SECOND);
        if (st != MEMTUBE_OK) die("send", st);
        break;
    case 1: {
        memtube_grant g;
        st = memtube_reserve(tx, len, 20 * SECOND, &g);
        if (st != MEMTUBE_OK) die("reserve", st);
        memcpy(g.data, buf, len);
        st = memtube_commit(tx, len, (uint32_t)i);
        if (st != MEMTUBE_OK) die("commit", st);
        break;
    }
    default:
        st = memtube_send_staged(tx, buf, len, (uint32_t)i);
        if (st == MEMTUBE_FULL) {
            MUST(memtube_publish(tx));
            st = memtube_send(tx, buf, len, (uint32_t)i, 20 * SECOND);
        }
        if (st != MEMTUBE_OK) die("send_staged", st);
        if (i % 4 == 2) MUST(memtube_publish(tx));
    }
}

static int mode_send(const char *addr, const char *how, uint64_t n) {
    memtube_options *o = one_way(1, how);
    memtube_connection *c = open_conn(addr, how, o);
    memtube_sender *tx = memtube_connection_sender(c);
    uint64_t i, h = FNV_START;
    uint8_t buf[608];
    if (!tx) die("sender", MEMTUBE_NO_SUCH_HANDLE);
    for (i = 0; i < n; i++) {
        size_t len = payload(i, buf);
        h = fnv(h, buf, len);
        send_one(tx, i);
    }
    MUST(memtube_publish(tx));
    memtube_connection_free(c);
    memtube_options_free(o);
    say("sent %llu checksum %016llx", (unsigned long long)n, (unsigned long long)h);
    return 0;
}

static int mode_recv(const char *addr, const char *how, uint64_t n) {
    memtube_options *o = one_way(0, how);
    memtube_connection *c = open_conn(addr, how, o);
    memtube_receiver *rx = memtube_connection_receiver(c);
    memtube_message m;
    uint64_t i, h = FNV_START;
    int32_t st;
    if (!rx) die("receiver", MEMTUBE_NO_SUCH_HANDLE);
    for (i = 0; i < n; i++) {
        st = memtube_recv(rx, i % 2 ? 20 * SECOND : MEMTUBE_FOREVER, &m);
        if (st != MEMTUBE_OK) die("recv", st);
        if (!is_payload(i, m.data, m.len, m.type_id)) {
            fprintf(stderr, "peer: message %llu wrong (len %zu, type %u)\n", (unsigned long long)i,
                    m.len, m.type_id);
            return 1;
        }
        h = fnv(h, m.data, m.len);
        if (i % 5 == 0) MUST(memtube_release(rx));
    }
    st = memtube_recv(rx, 20 * SECOND, &m);
    memtube_connection_free(c);
    memtube_options_free(o);
    say("received %llu checksum %016llx end %s", (unsigned long long)n, (unsigned long long)h,
        memtube_status_name(st));
    return 0;
}

static uint32_t reverse_handler(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                                memtube_reply *reply) {
    uint8_t *p = memtube_reply_extend(reply, len);
    size_t k;
    (*(uint64_t *)ctx)++;
    for (k = 0; p && k < len; k++) p[k] = req[len - 1 - k];
    return type_id + 1;
}

static int mode_serve(const char *addr, const char *how) {
    memtube_options *o = duplex();
    memtube_connection *c = open_conn(addr, how, o);
    uint64_t served = 0;
    int32_t st = memtube_serve(c, reverse_handler, &served);
    memtube_connection_free(c);
    memtube_options_free(o);
    say("served %llu %s", (unsigned long long)served, memtube_status_name(st));
    return st == MEMTUBE_OK ? 0 : 1;
}

static int mode_call(const char *addr, const char *how, uint64_t n) {
    memtube_options *o = duplex();
    memtube_connection *c = open_conn(addr, how, o);
    memtube_message m;
    uint8_t buf[608];
    uint64_t i;
    for (i = 0; i < n; i++) {
        size_t len = payload(i, buf), k;
        int32_t st = memtube_call(c, (uint32_t)i, buf, len, 20 * SECOND, &m);
        if (st != MEMTUBE_OK) die("call", st);
        if (m.len != len || m.type_id != (uint32_t)i + 1) {
            fprintf(stderr, "peer: reply %llu wrong\n", (unsigned long long)i);
            return 1;
        }
        for (k = 0; k < len; k++)
            if (m.data[k] != buf[len - 1 - k]) {
                fprintf(stderr, "peer: reply %llu byte %zu wrong\n", (unsigned long long)i, k);
                return 1;
            }
    }
    memtube_connection_free(c);
    memtube_options_free(o);
    say("called %llu", (unsigned long long)n);
    return 0;
}

static int mode_recv_until_gone(const char *addr) {
    memtube_options *o = one_way(0, "listen");
    memtube_connection *c = open_conn(addr, "listen", o);
    memtube_receiver *rx = memtube_connection_receiver(c);
    memtube_message m;
    uint64_t i = 0;
    int32_t st;
    for (;;) {
        st = memtube_recv(rx, MEMTUBE_FOREVER, &m);
        if (st != MEMTUBE_OK) break;
        if (!is_payload(i, m.data, m.len, m.type_id)) {
            fprintf(stderr, "peer: message %llu wrong\n", (unsigned long long)i);
            return 1;
        }
        if (++i == 100) say("got 100");
    }
    {
        int32_t state = -1;
        MUST(memtube_connection_peer_state(c, false, &state));
        memtube_connection_free(c);
        memtube_options_free(o);
        say("end %s after %llu, peer state %d", memtube_status_name(st), (unsigned long long)i,
            state);
    }
    return 0;
}

static int mode_send_until_gone(const char *addr) {
    memtube_options *o = one_way(1, "connect");
    memtube_connection *c = open_conn(addr, "connect", o);
    memtube_sender *tx = memtube_connection_sender(c);
    uint8_t buf[608];
    uint64_t i = 0;
    int32_t st;
    for (;;) {
        size_t len = payload(i, buf);
        st = memtube_send(tx, buf, len, (uint32_t)i, 0);
        if (st == MEMTUBE_FULL) break;
        if (st != MEMTUBE_OK) die("send", st);
        i++;
    }
    say("full");
    for (;;) {
        size_t len = payload(i, buf);
        st = memtube_send(tx, buf, len, (uint32_t)i, MEMTUBE_FOREVER);
        if (st != MEMTUBE_OK) break;
        i++;
    }
    memtube_connection_free(c);
    memtube_options_free(o);
    say("end %s", memtube_status_name(st));
    return 0;
}

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static int mode_hostile(const char *addr, int count) {
    memtube_options *o = one_way(1, "connect");
    int k, before = open_fds(), refused = 0;
    MUST(memtube_options_set_handshake_timeout_ns(o, 10 * SECOND));
    for (k = 0; k < count; k++) {
        memtube_connection *c = NULL;
        int32_t st = memtube_connect(addr, o, &c);
        if (st == MEMTUBE_HANDSHAKE && c == NULL && memtube_last_error_message()[0] != '\0')
            refused++;
        else
            fprintf(stderr, "peer: forgery %d gave %s (%s)\n", k, memtube_status_name(st),
                    memtube_last_error_message());
        if (c) memtube_connection_free(c);
    }
    memtube_options_free(o);
    say("refused %d of %d, fds before %d after %d", refused, count, before, open_fds());
    return refused == count && before == open_fds() ? 0 : 1;
}

static int mode_region_fork(uint64_t n) {
    uint32_t cap = 16384;
    size_t size = memtube_ring_region_size(cap), stride = (size + 4095) & ~(size_t)4095;
    uint8_t *mem = mmap(NULL, 2 * stride, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint8_t *a = mem, *b = mem + stride; /* a: parent to child; b: back */
    memtube_sender *tx = NULL;
    memtube_receiver *rx = NULL;
    memtube_message m;
    uint64_t i, got = 0, h = FNV_START;
    pid_t pid;
    int status;
    if (mem == MAP_FAILED) return 2;
    MUST(memtube_ring_init(a, size, cap));
    MUST(memtube_ring_init(b, size, cap));
    pid = fork();
    if (pid == 0) {
        /* The echo: everything back, in place, until the parent closes. */
        int32_t st;
        MUST(memtube_ring_attach_consumer(a, size, &rx));
        MUST(memtube_ring_attach_producer(b, size, &tx));
        for (;;) {
            st = memtube_recv(rx, MEMTUBE_FOREVER, &m);
            if (st != MEMTUBE_OK) break;
            st = memtube_send(tx, m.data, m.len, m.type_id, MEMTUBE_FOREVER);
            if (st != MEMTUBE_OK) break;
        }
        memtube_receiver_free(rx);
        memtube_sender_free(tx);
        _exit(st == MEMTUBE_CLOSED ? 0 : 3);
    }
    MUST(memtube_ring_attach_producer(a, size, &tx));
    MUST(memtube_ring_attach_consumer(b, size, &rx));
    for (i = 0; i < n; i++) {
        /* Up to 8 in flight, so both sides block and wrap. */
        send_one(tx, i);
        MUST(memtube_publish(tx));
        if (i >= 8 || i + 1 == n) {
            while (got + 8 <= i || (i + 1 == n && got < n)) {
                int32_t st = memtube_recv(rx, 20 * SECOND, &m);
                if (st != MEMTUBE_OK) die("recv echo", st);
                if (!is_payload(got, m.data, m.len, m.type_id)) {
                    fprintf(stderr, "peer: echo %llu wrong\n", (unsigned long long)got);
                    return 1;
                }
                h = fnv(h, m.data, m.len);
                got++;
            }
        }
    }
    memtube_sender_free(tx);
    {
        int32_t st = memtube_recv(rx, 20 * SECOND, &m);
        memtube_receiver_free(rx);
        waitpid(pid, &status, 0);
        say("echoed %llu checksum %016llx end %s child %d", (unsigned long long)got,
            (unsigned long long)h, memtube_status_name(st),
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return got == n && st == MEMTUBE_CLOSED && WIFEXITED(status) && WEXITSTATUS(status) == 0
                   ? 0
                   : 1;
    }
}

/* A ring in a MAP_SHARED region: a forked producer streams until it is
 * SIGKILLed after N messages were received; the consumer drains what it
 * published, sees the peer GONE, and a second forked process takes the
 * producer role over and sends 100 more, then frees its handle. */
static int mode_region_kill(uint64_t n) {
    uint32_t cap = 4096;
    size_t size = memtube_ring_region_size(cap), stride = (size + 4095) & ~(size_t)4095;
    uint8_t *a = mmap(NULL, stride, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memtube_sender *tx = NULL;
    memtube_receiver *rx = NULL;
    memtube_message m;
    uint64_t i, got = 0, drained;
    int32_t st, state;
    pid_t pid;
    int status;
    if (a == MAP_FAILED) return 2;
    MUST(memtube_ring_init(a, size, cap));
    MUST(memtube_ring_attach_consumer(a, size, &rx));
    pid = fork();
    if (pid == 0) {
        MUST(memtube_ring_attach_producer(a, size, &tx));
        for (i = 0;; i++) send_one(tx, i); /* until killed, blocking when full */
    }
    for (; got < n; got++) {
        st = memtube_recv(rx, 20 * SECOND, &m);
        if (st != MEMTUBE_OK) die("recv", st);
        if (!is_payload(got, m.data, m.len, m.type_id)) return 1;
    }
    MUST(memtube_receiver_peer_state(rx, true, &state));
    if (state != MEMTUBE_PEER_STATE_ALIVE) return 1;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    /* What it published arrives, then nothing. */
    for (;;) {
        st = memtube_recv(rx, 100 * 1000000LL, &m);
        if (st != MEMTUBE_OK) break;
        if (!is_payload(got, m.data, m.len, m.type_id)) return 1;
        got++;
    }
    drained = got - n;
    if (st != MEMTUBE_TIMEOUT) die("drain", st);
    MUST(memtube_receiver_peer_state(rx, true, &state));
    if (state != MEMTUBE_PEER_STATE_GONE) {
        fprintf(stderr, "peer: state %d after SIGKILL\n", state);
        return 1;
    }
    pid = fork();
    if (pid == 0) {
        st = memtube_ring_take_over_producer(a, size, &tx);
        if (st != MEMTUBE_OK) die("take over", st);
        for (i = 0; i < 100; i++) send_one(tx, i);
        memtube_sender_free(tx);
        _exit(0);
    }
    for (i = 0; i < 100; i++) {
        st = memtube_recv(rx, 20 * SECOND, &m);
        if (st != MEMTUBE_OK) die("recv from the successor", st);
        if (!is_payload(i, m.data, m.len, m.type_id)) return 1;
    }
    st = memtube_recv(rx, 20 * SECOND, &m);
    memtube_receiver_free(rx);
    waitpid(pid, &status, 0);
    say("killed after %llu, drained %llu, successor 100, end %s child %d",
        (unsigned long long)n, (unsigned long long)drained, memtube_status_name(st),
        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return st == MEMTUBE_CLOSED && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "region-fork") == 0 && argc == 3)
        return mode_region_fork(strtoull(argv[2], NULL, 10));
    if (strcmp(mode, "region-kill") == 0 && argc == 3)
        return mode_region_kill(strtoull(argv[2], NULL, 10));
    if (strcmp(mode, "send") == 0 && argc == 5)
        return mode_send(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (strcmp(mode, "recv") == 0 && argc == 5)
        return mode_recv(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (strcmp(mode, "serve") == 0 && argc == 4) return mode_serve(argv[2], argv[3]);
    if (strcmp(mode, "call") == 0 && argc == 5)
        return mode_call(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (strcmp(mode, "recv-until-gone") == 0 && argc == 3) return mode_recv_until_gone(argv[2]);
    if (strcmp(mode, "send-until-gone") == 0 && argc == 3) return mode_send_until_gone(argv[2]);
    if (strcmp(mode, "hostile") == 0 && argc == 4) return mode_hostile(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: see the comment at the top of peer.c\n");
    return 2;
}
