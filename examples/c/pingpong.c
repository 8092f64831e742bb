/* Round-trip latency between two processes over memtube's C ABI, next to
 * the hardware floor: the measurement of examples/pingpong.rs, for the 32 B
 * cases, from C.
 *
 * Build (from the repository root; one line):
 *
 *   cargo build --release -p memtube-ffi && cc -O2 -Ibindings/c/include examples/c/pingpong.c target/release/libmemtube.a -lpthread -ldl -lm -o pingpong-c
 *
 * Run:
 *
 *   ./pingpong-c                 # C <-> C, about 6 s
 *   ./pingpong-c --quick         # about 1.5 s
 *   ./pingpong-c --peer target/release/examples/pingpong   # C main <-> Rust echo
 *
 * The program starts its own peer: it re-executes itself (or the program
 * given with --peer, which must speak examples/pingpong.rs's echo protocol:
 * `--echo FD ADDR CPU`) with an inherited memfd holding the floor lines.
 * The protocol is pingpong.rs's exactly, so either side can be the Rust
 * example: the floor on its own before and after; then pingpong.rs's 11
 * cases in order, each a duplex connection accepted by the main process,
 * of which this program measures the three 32-byte ones (pure-spin,
 * default, no-isolation; the others are accepted and closed at once).
 *
 * One round trip: the main process sends 32 bytes (the first 8 a sequence
 * number) with memtube_send, the echo process receives it in place
 * (memtube_recv) and sends it back with memtube_send from the ring; the
 * main process receives it and checks length, sequence and type. Each case
 * alternates blocks of 1000 floor round trips (one 64-bit word in a
 * 128-byte line of a shared page: main stores 2s+1, echo answers 2s+2) and
 * 1000 ring round trips, so its floor column saw the same machine. Every
 * sample includes one clock read (CLOCK_MONOTONIC, as Rust's Instant). */
#define _GNU_SOURCE
#include "memtube.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CAP (16 * 1024)
#define BLOCK 1000
#define TIMEOUT_NS (10LL * 1000000000LL)
#define PAGE 4096
#define LINES (PAGE / 128 - 1)
#define FLOOR_BEFORE (LINES - 2)
#define FLOOR_AFTER (LINES - 1)
#define PIN_FLAG LINES
#define STOP UINT64_MAX
/* examples/pingpong.rs's cases, in its order; the 32-byte ones are measured. */
#define NCASES 11
#define LEN 32

struct budget {
    size_t warmup, samples;
    double time_s;
};

static struct budget timer_b, floor_b, case_b;
static uint8_t *page;

static _Atomic uint64_t *line(int i) { return (_Atomic uint64_t *)(page + (size_t)i * 128); }

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void fail(const char *what, int32_t st) {
    fprintf(stderr, "pingpong-c: %s: %s (%s)\n", what, memtube_status_name(st),
            memtube_last_error_message());
    exit(1);
}

/* ------------------------------------------------------------- floor */

static int floor_round_trip(_Atomic uint64_t *l, uint64_t seq) {
    uint64_t req = 2 * seq + 1, since = 0;
    uint32_t spins = 0;
    atomic_store_explicit(l, req, memory_order_release);
    while (atomic_load_explicit(l, memory_order_acquire) != req + 1) {
        cpu_relax();
        if (++spins % 65536 == 0) {
            if (!since) since = now_ns();
            else if (now_ns() - since > (uint64_t)TIMEOUT_NS) return -1;
        }
    }
    return 0;
}

/* Answer up to `count` requests (0: until STOP); false on STOP or silence. */
static int floor_echo(_Atomic uint64_t *l, uint64_t *last, size_t count) {
    size_t answered = 0;
    uint32_t spins = 0;
    uint64_t since = 0;
    while (count == 0 || answered < count) {
        uint64_t v = atomic_load_explicit(l, memory_order_acquire);
        if (v == *last || (v & 1) == 0) {
            cpu_relax();
            if (++spins % 65536 == 0) {
                if (!since) since = now_ns();
                else if (now_ns() - since > (uint64_t)TIMEOUT_NS) return 0;
            }
            continue;
        }
        if (v == STOP) return 0;
        atomic_store_explicit(l, v + 1, memory_order_release);
        *last = v + 1;
        answered++;
        since = 0;
    }
    return 1;
}

/* --------------------------------------------------------- measuring */

struct samples {
    uint64_t *v;
    size_t n, cap;
};

enum kind { FLOOR, RING, NOTHING };

struct rt {
    enum kind kind;
    _Atomic uint64_t *line;
    memtube_sender *tx;
    memtube_receiver *rx;
    uint8_t payload[LEN];
};

static inline int round_trip(struct rt *r, uint64_t seq) {
    memtube_message m;
    int32_t st;
    switch (r->kind) {
    case FLOOR:
        return floor_round_trip(r->line, seq);
    case RING:
        memcpy(r->payload, &seq, 8);
        st = memtube_send(r->tx, r->payload, LEN, 7, TIMEOUT_NS);
        if (st != MEMTUBE_OK) fail("send", st);
        st = memtube_recv(r->rx, TIMEOUT_NS, &m);
        if (st != MEMTUBE_OK) fail("recv", st);
        if (m.len != LEN || memcmp(m.data, &seq, 8) != 0 || m.type_id != 7) {
            fprintf(stderr, "pingpong-c: echo mismatch at round trip %" PRIu64 "\n", seq);
            exit(1);
        }
        return 0;
    default:
        return 0;
    }
}

/* `count` round trips; record each one's time (but the first `skip`). */
static void timed(struct rt *r, size_t count, size_t skip, uint64_t *seq, struct samples *out) {
    uint64_t prev = now_ns();
    size_t i;
    for (i = 0; i < count; i++) {
        uint64_t t;
        if (round_trip(r, *seq) != 0) {
            fprintf(stderr, "pingpong-c: floor: the echo process did not answer\n");
            exit(1);
        }
        (*seq)++;
        t = now_ns();
        if (out && i >= skip && out->n < out->cap) out->v[out->n++] = t - prev;
        prev = t;
    }
}

static struct samples alloc_samples(size_t cap) {
    struct samples s;
    s.v = malloc(cap * sizeof *s.v);
    s.n = 0;
    s.cap = cap;
    if (!s.v) exit(1);
    return s;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, q in 0..1. */
static uint64_t pct(const struct samples *s, double q) {
    size_t rank;
    if (s->n == 0) return 0;
    rank = (size_t)(q * (double)s->n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > s->n) rank = s->n;
    return s->v[rank - 1];
}

static void sort(struct samples *s) { qsort(s->v, s->n, sizeof *s->v, cmp_u64); }

/* Warm up, then time blocks until the sample or time budget is spent. */
static struct samples measure(struct rt *r, struct budget b) {
    struct samples s = alloc_samples(b.samples);
    uint64_t seq = 0, start;
    timed(r, b.warmup, 0, &seq, NULL);
    start = now_ns();
    while (s.n + BLOCK <= b.samples && (double)(now_ns() - start) * 1e-9 < b.time_s)
        timed(r, BLOCK, 0, &seq, &s);
    sort(&s);
    return s;
}

/* One case: ring blocks alternating with floor blocks on line k. */
static void run_case(memtube_connection *conn, int k, struct samples *ring, struct samples *flr) {
    struct rt rr, fr;
    uint64_t ring_seq = 0, floor_seq = 0, start;
    size_t w;
    memtube_sender *tx = NULL;
    memtube_receiver *rx = NULL;
    int32_t st = memtube_connection_split(conn, &tx, &rx);
    if (st != MEMTUBE_OK || !tx || !rx) fail("split", st);
    memset(&rr, 0, sizeof rr);
    memset(rr.payload, 0xa5, LEN);
    rr.kind = RING;
    rr.tx = tx;
    rr.rx = rx;
    memset(&fr, 0, sizeof fr);
    fr.kind = FLOOR;
    fr.line = line(k);
    *ring = alloc_samples(case_b.samples);
    *flr = alloc_samples(case_b.samples);
    for (w = 0; w < (case_b.warmup + BLOCK - 1) / BLOCK; w++) {
        timed(&fr, BLOCK, 0, &floor_seq, NULL);
        timed(&rr, BLOCK, 0, &ring_seq, NULL);
    }
    start = now_ns();
    while (ring->n + BLOCK <= case_b.samples && (double)(now_ns() - start) * 1e-9 < case_b.time_s) {
        timed(&fr, BLOCK, 1, &floor_seq, flr);
        timed(&rr, BLOCK, 1, &ring_seq, ring);
    }
    atomic_store_explicit(line(k), STOP, memory_order_release);
    memtube_sender_free(tx);
    memtube_receiver_free(rx);
    sort(ring);
    sort(flr);
}

/* --------------------------------------------------------------- echo */

static int echo_one(memtube_receiver *rx, memtube_sender *tx) {
    memtube_message m;
    int32_t st = memtube_recv(rx, TIMEOUT_NS, &m);
    if (st == MEMTUBE_CLOSED) return 0;
    if (st != MEMTUBE_OK) fail("echo recv", st);
    st = memtube_send(tx, m.data, m.len, m.type_id, TIMEOUT_NS);
    if (st == MEMTUBE_CLOSED) return 0;
    if (st != MEMTUBE_OK) fail("echo send", st);
    return 1;
}

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

static void map_page(int fd) {
    page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
}

static int echo_main(int fd, const char *addr, int cpu) {
    memtube_options *o = memtube_options_new();
    uint64_t last;
    int k;
    map_page(fd);
    if (cpu >= 0 && !pin(cpu)) atomic_store_explicit(line(PIN_FLAG), 1, memory_order_relaxed);
    last = 0;
    floor_echo(line(FLOOR_BEFORE), &last, 0);
    memtube_options_set_duplex(o, true);
    for (k = 0; k < NCASES; k++) {
        memtube_connection *c = NULL;
        memtube_sender *tx = NULL;
        memtube_receiver *rx = NULL;
        int32_t st = memtube_connect(addr, o, &c);
        if (st != MEMTUBE_OK) fail("connect", st);
        st = memtube_connection_split(c, &tx, &rx);
        if (st != MEMTUBE_OK) fail("split", st);
        last = 0;
        while (floor_echo(line(k), &last, BLOCK)) {
            int i, more = 1;
            for (i = 0; i < BLOCK && more; i++) more = echo_one(rx, tx);
            if (!more) break;
        }
        memtube_sender_free(tx);
        memtube_receiver_free(rx);
    }
    last = 0;
    floor_echo(line(FLOOR_AFTER), &last, 0);
    memtube_options_free(o);
    return 0;
}

/* --------------------------------------------------------------- main */

static void row(const char *name, const struct samples *s, uint64_t floor_p50, uint64_t timer) {
    char f[32] = "-", raw[32] = "-", net[32] = "-";
    uint64_t p50 = pct(s, 0.5);
    if (floor_p50) {
        double r = (double)p50 / (double)floor_p50;
        double n = (double)(p50 > timer ? p50 - timer : 0) /
                   (double)(floor_p50 > timer ? floor_p50 - timer : 1);
        snprintf(f, sizeof f, "%" PRIu64, floor_p50);
        snprintf(raw, sizeof raw, "%.2fx", r);
        snprintf(net, sizeof net, "%.2fx", n);
    }
    printf("%-22s %9zu %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
           " %8s %10s %6s\n",
           name, s->n, pct(s, 0.0), p50, pct(s, 0.90), pct(s, 0.99), pct(s, 0.999),
           s->n ? s->v[s->n - 1] : 0, f, raw, net);
}

/* pingpong.rs's options of case k (only the 32-byte ones are measured). */
static memtube_options *case_options(int k, const char **name, const char **tag) {
    memtube_options *o = memtube_options_new();
    memtube_options_set_duplex(o, true);
    memtube_options_set_capacity(o, CAP);
    switch (k) {
    case 0:
        *name = "pure-spin    32 B";
        *tag = "pure-spin";
        memtube_options_set_pure_spin(o, true);
        break;
    case 4:
        *name = "default      32 B";
        *tag = "default";
        break;
    case 8:
        *name = "no-isol      32 B";
        *tag = "no-isol";
        memtube_options_set_pure_spin(o, true);
        memtube_options_set_isolation(o, false);
        break;
    default:
        *name = NULL;
        *tag = NULL;
    }
    return o;
}

static void cpu_model(char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char buf[512];
    snprintf(out, n, "model unknown");
    if (!f) return;
    while (fgets(buf, sizeof buf, f)) {
        char *c = strchr(buf, ':');
        if (strncmp(buf, "model name", 10) == 0 && c) {
            c += 2;
            c[strcspn(c, "\n")] = 0;
            snprintf(out, n, "%s", c);
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    const char *peer = argv[0];
    int quick = 0, i, k, cpus[2], ncpu = 0, echo_cpu = -1, fd;
    char addr[96], fds[16], cpus_s[16], model[256];
    memtube_options *lo;
    memtube_listener *l = NULL;
    struct rt nothing, fr;
    struct samples timer, before, after;
    uint64_t timer_p50;
    pid_t pid;
    int status;
    cpu_set_t set;

    if (argc == 5 && strcmp(argv[1], "--echo") == 0)
        return echo_main(atoi(argv[2]), argv[3], argv[4][0] == '-' ? -1 : atoi(argv[4]));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--peer") == 0 && i + 1 < argc) peer = argv[++i];
        else {
            fprintf(stderr, "usage: pingpong-c [--quick] [--peer ECHO_PROGRAM]\n");
            return 2;
        }
    }
    if (quick) {
        timer_b = (struct budget){1000, 20000, 0.02};
        floor_b = (struct budget){5000, 200000, 0.1};
        case_b = (struct budget){4000, 200000, 0.2};
    } else {
        timer_b = (struct budget){10000, 200000, 0.1};
        floor_b = (struct budget){50000, 2000000, 0.8};
        case_b = (struct budget){20000, 2000000, 1.2};
    }
    cpu_model(model, sizeof model);
    printf("memtube pingpong (C ABI, memtube %s, ABI %u.%u): two-process round trips over a duplex "
           "connection, %d-byte data area each\n",
           memtube_version(), memtube_abi_version() >> 16, memtube_abi_version() & 0xffff, CAP);
    printf("cpu: %s (%ld CPUs online)\n", model, sysconf(_SC_NPROCESSORS_ONLN));
    printf("echo: %s\n", peer == argv[0] ? "this program (C)" : peer);

    fd = memfd_create("memtube-floor", 0); /* inherited by the echo process */
    if (fd < 0 || ftruncate(fd, PAGE) != 0) {
        perror("memfd");
        return 1;
    }
    map_page(fd);
    snprintf(addr, sizeof addr, "@memtube-pingpong-c-%d", (int)getpid());
    lo = memtube_options_new();
    memtube_options_set_duplex(lo, true);
    if (memtube_listen(addr, lo, &l) != MEMTUBE_OK) fail("listen", MEMTUBE_OS);

    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (i = 0; i < CPU_SETSIZE && ncpu < 2; i++)
            if (CPU_ISSET(i, &set)) cpus[ncpu++] = i;
    if (ncpu == 2) echo_cpu = cpus[1];
    snprintf(fds, sizeof fds, "%d", fd);
    snprintf(cpus_s, sizeof cpus_s, "%d", echo_cpu);
    if (echo_cpu < 0) snprintf(cpus_s, sizeof cpus_s, "-");
    pid = fork();
    if (pid == 0) {
        execl(peer, peer, "--echo", fds, addr, cpus_s, (char *)NULL);
        perror("exec");
        _exit(127);
    }
    if (ncpu == 2 && pin(cpus[0]))
        printf("pinning: ok, main process on CPU %d, echo process on CPU %d\n", cpus[0], cpus[1]);
    else
        printf("pinning: not pinned\n");

    memset(&nothing, 0, sizeof nothing);
    nothing.kind = NOTHING;
    timer = measure(&nothing, timer_b);
    timer_p50 = pct(&timer, 0.5);
    printf("timer overhead: p50 %" PRIu64 " ns per sample (clock_gettime; included in every row)\n",
           timer_p50);
    printf("mode %s: each case alternates %d-round-trip floor and ring blocks for up to %.1f s; "
           "times in ns\n\n",
           quick ? "--quick" : "full", BLOCK, case_b.time_s);
    printf("case                     samples      min      p50      p90      p99    p99.9      max"
           "    floor  p50/floor    net\n");

    memset(&fr, 0, sizeof fr);
    fr.kind = FLOOR;
    fr.line = line(FLOOR_BEFORE);
    before = measure(&fr, floor_b);
    atomic_store_explicit(line(FLOOR_BEFORE), STOP, memory_order_release);
    row("floor (before)", &before, 0, timer_p50);

    for (k = 0; k < NCASES; k++) {
        const char *name, *tag;
        memtube_options *o = case_options(k, &name, &tag);
        memtube_connection *c = NULL;
        int32_t st;
        if (!name) /* not measured: the echo sees STOP and goes on */
            atomic_store_explicit(line(k), STOP, memory_order_release);
        st = memtube_listener_accept(l, o, TIMEOUT_NS, &c);
        if (st != MEMTUBE_OK) fail("accept", st);
        if (name) {
            struct samples ring, flr;
            run_case(c, k, &ring, &flr);
            row(name, &ring, pct(&flr, 0.5), timer_p50);
            printf("RESULT case=%s p50=%" PRIu64 " p99=%" PRIu64 " p999=%" PRIu64 " floor=%" PRIu64
                   "\n",
                   tag, pct(&ring, 0.5), pct(&ring, 0.99), pct(&ring, 0.999), pct(&flr, 0.5));
            free(ring.v);
            free(flr.v);
        } else {
            memtube_connection_free(c);
        }
        memtube_options_free(o);
    }

    fr.line = line(FLOOR_AFTER);
    after = measure(&fr, floor_b);
    atomic_store_explicit(line(FLOOR_AFTER), STOP, memory_order_release);
    row("floor (after)", &after, 0, timer_p50);
    printf("floor: p50 of the floor blocks interleaved with the case; p50/floor: raw ratio; net: "
           "both less the timer\n");
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pingpong-c: the echo process failed\n");
        return 1;
    }
    if (atomic_load_explicit(line(PIN_FLAG), memory_order_relaxed))
        printf("WARNING: pinning the echo process failed; its runs were unpinned\n");
    memtube_listener_free(l);
    memtube_options_free(lo);
    free(timer.v);
    free(before.v);
    free(after.v);
    return 0;
}
