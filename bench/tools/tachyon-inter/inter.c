/*
 * Tachyon's 32-byte inter-process round trip measured the way its own
 * inter-process benchmark (benchmark/src/bench_inter.cpp in
 * riyaneel/Tachyon) runs it -- 1 MiB buses (one per direction, each
 * created by its producer), acquire/copy/commit/flush to send,
 * tachyon_acquire_rx_blocking with a spin threshold of 50 000 to receive,
 * both processes pinned, SCHED_FIFO 99 and mlockall, two clock reads per
 * round trip -- written here against Tachyon's C API, with the one-line
 * floor (one cache line ping-ponged) timed the same way by the same two
 * processes before and after each round, so that the ratio is Tachyon over
 * the floor of its own placement and moment.
 *
 * With --system memtube, the same harness (processes, scheduling, floor,
 * clock reads) runs memtube through its C ABI instead, the way its own C
 * round-trip example (examples/c/pingpong.c) does: one duplex connection
 * with default options but for 16 KiB rings (the capacity memtube-bench
 * gives 32 B round trips), memtube_send, and memtube_recv, which hands out
 * the message in place; the echo sends it back from the ring, and each
 * message is released by the next memtube_recv (each library's receive
 * used as its own benchmark or example uses it: Tachyon's copies the
 * message out and commits it before answering). Same harness, same moment:
 * the ratio of the two is the comparison a C user would see.
 *
 * Part of memtube-bench's peer cross-check; built and run by run.sh.
 * Output: one line per round, then the median ratio of the rounds whose
 * two floors agree within 1.25x. Exit status 0, or 3 when no round's
 * floors agreed, or 1 on a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tachyon.h>
#include <memtube.h>

enum { BUS_BYTES = 1 << 20, PAYLOAD = 32, WARMUP = 10000, SPIN_THRESHOLD = 50000 };

static size_t iterations = 200000, floor_rts = 50000;
static int use_memtube;
static char path_memtube[108];
static int rounds = 5;
static char path_ping[108], path_pong[108];

/* The floor's line, in memory both processes share (mapped before fork). */
struct shared {
	_Alignas(128) _Atomic uint64_t line;
	_Alignas(128) _Atomic uint64_t failed;
};
static struct shared *sh;

static uint64_t now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void die(const char *what) {
	fprintf(stderr, "tachyon-inter: %s\n", what);
	atomic_store(&sh->failed, 1);
	_exit(1);
}

/* Pin, SCHED_FIFO 99, mlockall: what Tachyon's benchmark does to both sides. */
static void settle(int cpu) {
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die("sched_setaffinity failed");
	struct sched_param p = {.sched_priority = 99};
	if (sched_setscheduler(0, SCHED_FIFO, &p) != 0)
		fprintf(stderr, "tachyon-inter: SCHED_FIFO refused (%s): run as root\n", strerror(errno));
	if (mlockall(MCL_CURRENT) != 0)
		fprintf(stderr, "tachyon-inter: mlockall failed (%s)\n", strerror(errno));
}

struct listen_arg {
	const char *path;
	tachyon_bus_t *bus;
	tachyon_error_t err;
};

static void *listen_thread(void *p) {
	struct listen_arg *a = p;
	a->err = tachyon_bus_listen(a->path, BUS_BYTES, &a->bus);
	return NULL;
}

/* Create `mine` (this process produces into it) while connecting to
 * `theirs`: each listen waits for its consumer, so both sides do both. */
static void open_buses(const char *mine, const char *theirs, tachyon_bus_t **tx, tachyon_bus_t **rx) {
	struct listen_arg a = {.path = mine};
	pthread_t t;
	if (pthread_create(&t, NULL, listen_thread, &a) != 0)
		die("pthread_create failed");
	*rx = NULL;
	for (int i = 0; i < 2000 && *rx == NULL; i++) {
		if (tachyon_bus_connect(theirs, rx) != TACHYON_SUCCESS) {
			*rx = NULL;
			usleep(5000);
		}
	}
	pthread_join(t, NULL);
	if (*rx == NULL || a.err != TACHYON_SUCCESS)
		die("bus handshake failed");
	*tx = a.bus;
}

static const void *recv_blocking(tachyon_bus_t *rx, uint32_t *type_id, size_t *len) {
	const void *p;
	while ((p = tachyon_acquire_rx_blocking(rx, type_id, len, SPIN_THRESHOLD)) == NULL) {
		if (tachyon_get_state(rx) == TACHYON_STATE_FATAL_ERROR)
			die("bus in fatal error state");
	}
	return p;
}

static void send_copy(tachyon_bus_t *tx, const void *data, size_t len, uint32_t type_id) {
	void *slot;
	while ((slot = tachyon_acquire_tx(tx, len)) == NULL)
		cpu_relax();
	memcpy(slot, data, len);
	if (tachyon_commit_tx(tx, len, type_id) != TACHYON_SUCCESS)
		die("commit_tx failed");
	tachyon_flush(tx);
}

/* memtube: one duplex connection; the main process listens. */
struct mt {
	memtube_connection *c;
	memtube_sender *tx;
	memtube_receiver *rx;
};

static memtube_options *mt_options(void) {
	memtube_options *o = memtube_options_new();
	if (o == NULL || memtube_options_set_capacity(o, 16 * 1024) != MEMTUBE_OK)
		die("memtube options");
	if (memtube_options_set_duplex(o, true) != MEMTUBE_OK)
		die("memtube options");
	return o;
}

static struct mt mt_open(int listening) {
	struct mt m = {0};
	memtube_options *o = mt_options();
	int32_t st;
	if (listening) {
		memtube_listener *l = NULL;
		if (memtube_listen(path_memtube, o, &l) != MEMTUBE_OK)
			die("memtube_listen failed");
		st = memtube_listener_accept(l, NULL, 10000000000LL, &m.c);
		/* Report before the frees below, which clear the last error. */
		if (st != MEMTUBE_OK)
			fprintf(stderr, "tachyon-inter: memtube accept: %s: %s\n", memtube_status_name(st),
			        memtube_last_error_message());
		memtube_listener_free(l);
	} else {
		for (int i = 0; i < 2000; i++) {
			st = memtube_connect(path_memtube, o, &m.c);
			if (st != MEMTUBE_NO_LISTENER)
				break;
			usleep(5000);
		}
		if (st != MEMTUBE_OK)
			fprintf(stderr, "tachyon-inter: memtube connect: %s: %s\n", memtube_status_name(st),
			        memtube_last_error_message());
	}
	memtube_options_free(o);
	if (st != MEMTUBE_OK || m.c == NULL)
		die("memtube handshake failed");
	m.tx = memtube_connection_sender(m.c);
	m.rx = memtube_connection_receiver(m.c);
	return m;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t p50(uint64_t *v, size_t n) {
	qsort(v, n, sizeof *v, cmp_u64);
	return v[n / 2];
}

/* The floor, main side: value 2k+1 out, 2k+2 back; returns the p50 (ns). */
static uint64_t floor_ping(uint64_t *seq, uint64_t *lat) {
	for (size_t i = 0; i < floor_rts; i++) {
		uint64_t k = (*seq)++;
		uint64_t t0 = now_ns();
		atomic_store_explicit(&sh->line, 2 * k + 1, memory_order_release);
		while (atomic_load_explicit(&sh->line, memory_order_acquire) != 2 * k + 2)
			cpu_relax();
		lat[i] = now_ns() - t0;
	}
	return p50(lat, floor_rts);
}

static void floor_echo(uint64_t *seq) {
	for (size_t i = 0; i < floor_rts; i++) {
		uint64_t k = (*seq)++;
		while (atomic_load_explicit(&sh->line, memory_order_acquire) != 2 * k + 1)
			cpu_relax();
		atomic_store_explicit(&sh->line, 2 * k + 2, memory_order_release);
	}
}

/* One echo, as examples/c/pingpong.c echoes: receive in place, send the
 * message back from the ring; the next receive releases it. */
static void echo_memtube(struct mt *m) {
	memtube_message msg;
	if (memtube_recv(m->rx, -1, &msg) != MEMTUBE_OK)
		die("memtube_recv failed");
	if (msg.len > PAYLOAD)
		die("message too long");
	if (memtube_send(m->tx, msg.data, msg.len, msg.type_id, -1) != MEMTUBE_OK)
		die("memtube_send failed");
}

static void echo_tachyon(tachyon_bus_t *tx, tachyon_bus_t *rx, unsigned char *buf) {
	uint32_t type_id;
	size_t len;
	const void *m = recv_blocking(rx, &type_id, &len);
	if (len > PAYLOAD)
		die("message too long");
	memcpy(buf, m, len);
	tachyon_commit_rx(rx);
	send_copy(tx, buf, len, type_id);
}

static void echo_side(int cpu) {
	settle(cpu);
	tachyon_bus_t *tx = NULL, *rx = NULL;
	struct mt m = {0};
	if (use_memtube)
		m = mt_open(0);
	else
		open_buses(path_pong, path_ping, &tx, &rx);
	uint64_t seq = 0;
	_Alignas(64) unsigned char buf[PAYLOAD];
	for (int r = 0; r < rounds; r++) {
		floor_echo(&seq);
		for (size_t i = 0; i < WARMUP + iterations; i++) {
			if (use_memtube)
				echo_memtube(&m);
			else
				echo_tachyon(tx, rx, buf);
		}
		floor_echo(&seq);
	}
	if (use_memtube) {
		memtube_connection_free(m.c);
	} else {
		tachyon_bus_destroy(rx);
		tachyon_bus_destroy(tx);
	}
	_exit(0);
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
			iterations = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--floor") && i + 1 < argc)
			floor_rts = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--system") && i + 1 < argc && !strcmp(argv[i + 1], "memtube"))
			use_memtube = 1, i++;
		else if (!strcmp(argv[i], "--system") && i + 1 < argc && !strcmp(argv[i + 1], "tachyon"))
			use_memtube = 0, i++;
		else {
			fprintf(stderr, "usage: %s [--system tachyon|memtube] [--iterations N] [--rounds R] [--floor N]\n",
			        argv[0]);
			return 2;
		}
	}
	if (iterations < 1000 || floor_rts < 1000 || rounds < 1) {
		fprintf(stderr, "tachyon-inter: at least 1000 iterations and floor round trips, 1 round\n");
		return 2;
	}
	snprintf(path_ping, sizeof path_ping, "/tmp/memtube-tachyon-inter-%d-ping.sock", (int)getpid());
	snprintf(path_pong, sizeof path_pong, "/tmp/memtube-tachyon-inter-%d-pong.sock", (int)getpid());
	snprintf(path_memtube, sizeof path_memtube, "/tmp/memtube-tachyon-inter-%d-memtube.sock", (int)getpid());
	unlink(path_ping);
	unlink(path_pong);
	unlink(path_memtube);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0)
		echo_side(1);
	settle(0);
	tachyon_bus_t *tx = NULL, *rx = NULL;
	struct mt m = {0};
	if (use_memtube)
		m = mt_open(1);
	else
		open_buses(path_ping, path_pong, &tx, &rx);
	const char *sys = use_memtube ? "memtube" : "tachyon";
	uint64_t *lat = malloc(sizeof *lat * (iterations > floor_rts ? iterations : floor_rts));
	double *ratios = malloc(sizeof *ratios * (size_t)rounds);
	if (!lat || !ratios)
		die("out of memory");
	_Alignas(64) unsigned char payload[PAYLOAD];
	memset(payload, 0xab, sizeof payload);
	uint64_t seq = 0;
	int kept = 0;
	printf("tachyon-inter: %s, %zu B, %zu round trips per round (%d warm-up), floor %zu round trips before and after, CPUs 0 and 1, SCHED_FIFO 99\n",
	       sys, (size_t)PAYLOAD, iterations, WARMUP, floor_rts);
	for (int r = 0; r < rounds; r++) {
		uint64_t before = floor_ping(&seq, lat);
		for (size_t i = 0; i < WARMUP + iterations; i++) {
			uint32_t type_id;
			size_t len;
			uint64_t t0 = now_ns();
			if (use_memtube) {
				memtube_message msg;
				if (memtube_send(m.tx, payload, PAYLOAD, 1, -1) != MEMTUBE_OK)
					die("memtube_send failed");
				/* Released by the next memtube_recv, as in pingpong.c. */
				if (memtube_recv(m.rx, -1, &msg) != MEMTUBE_OK || msg.len != PAYLOAD)
					die("bad answer");
			} else {
				send_copy(tx, payload, PAYLOAD, 1);
				if (recv_blocking(rx, &type_id, &len) == NULL || len != PAYLOAD)
					die("bad answer");
				tachyon_commit_rx(rx);
			}
			uint64_t t1 = now_ns();
			if (i >= WARMUP)
				lat[i - WARMUP] = t1 - t0;
		}
		uint64_t t = p50(lat, iterations);
		uint64_t after = floor_ping(&seq, lat);
		double lo = before < after ? before : after, hi = before < after ? after : before;
		int same = hi <= 1.25 * lo;
		double ratio = (double)t / ((before + after) / 2.0);
		if (same)
			ratios[kept++] = ratio;
		printf("round %d: floor %llu ns, %s p50 %llu ns, floor %llu ns: %.2fx%s\n", r,
		       (unsigned long long)before, sys, (unsigned long long)t, (unsigned long long)after, ratio,
		       same ? "" : " (floors disagree: dropped)");
		fflush(stdout);
	}
	int status = 0;
	waitpid(child, &status, 0);
	if (use_memtube) {
		memtube_connection_free(m.c);
	} else {
		tachyon_bus_destroy(tx);
		tachyon_bus_destroy(rx);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || atomic_load(&sh->failed)) {
		fprintf(stderr, "tachyon-inter: the echo process failed\n");
		return 1;
	}
	if (kept == 0) {
		/* The guest changed level mid-round: not a failure (exit 3). */
		printf("no round kept\n");
		return 3;
	}
	for (int i = 0; i < kept; i++)
		for (int j = i + 1; j < kept; j++)
			if (ratios[j] < ratios[i]) {
				double x = ratios[i];
				ratios[i] = ratios[j];
				ratios[j] = x;
			}
	printf("%s / one-line floor: median %.2fx (%.2f-%.2f) over %d of %d rounds\n", sys, ratios[kept / 2],
	       ratios[0], ratios[kept - 1], kept, rounds);
	return 0;
}
