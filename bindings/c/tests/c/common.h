/* Shared by the C test programs (built by tests/c_abi.rs with
 * gcc -std=c99 -Wall -Wextra -Werror -pedantic against libmemtube.a). */
#ifndef MEMTUBE_TEST_COMMON_H
#define MEMTUBE_TEST_COMMON_H

#include "memtube.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int checks, failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: \"%s\")\n", \
                    __FILE__, __LINE__, #cond, memtube_last_error_message());  \
        }                                                                      \
    } while (0)

/* `call` returns `want`. The last error is read right after. */
#define EXPECT(call, want)                                                     \
    do {                                                                       \
        int32_t got_ = (call);                                                 \
        checks++;                                                              \
        if (got_ != (int32_t)(want)) {                                         \
            failures++;                                                        \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (\"%s\")\n",   \
                    __FILE__, __LINE__, #call, memtube_status_name(got_),      \
                    memtube_status_name(want), memtube_last_error_message());  \
        }                                                                      \
    } while (0)

/* `call` fails with `want` and leaves a non-empty last error. */
#define EXPECT_FAIL(call, want)                                                \
    do {                                                                       \
        EXPECT(call, want);                                                    \
        CHECK(memtube_last_error_message()[0] != '\0');                        \
    } while (0)

/* Abort the program on a setup failure (nothing sensible can follow). */
#define MUST(call)                                                             \
    do {                                                                       \
        int32_t got_ = (call);                                                 \
        if (got_ != MEMTUBE_OK) {                                              \
            fprintf(stderr, "%s:%d: %s failed: %s (\"%s\")\n", __FILE__,       \
                    __LINE__, #call, memtube_status_name(got_),                \
                    memtube_last_error_message());                             \
            exit(2);                                                           \
        }                                                                      \
    } while (0)

static inline int finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, checks - failures, failures);
    return failures == 0 ? 0 : 1;
}

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define SECOND ((int64_t)1000000000)

/* Message `i` of a stream: 8 to 608 bytes, the first 8 are `i` (little
 * endian), the rest a pattern of `i` (as tests/c_abi.rs's `payload`). */
static inline size_t payload(uint64_t i, uint8_t *buf) {
    size_t len = 8 + (size_t)((i * 37u) % 601u);
    size_t k;
    for (k = 0; k < 8; k++) buf[k] = (uint8_t)(i >> (8 * k));
    for (k = 8; k < len; k++) buf[k] = (uint8_t)(i * 131u + k * 7u);
    return len;
}

/* Whether `p` is message `i` (length, bytes, and type id `(uint32_t)i`). */
static inline int is_payload(uint64_t i, const uint8_t *p, size_t len, uint32_t type_id) {
    uint8_t want[608];
    size_t n = payload(i, want);
    return n == len && type_id == (uint32_t)i && memcmp(want, p, n) == 0;
}

/* FNV-1a over every message of a stream, in order. */
static inline uint64_t fnv(uint64_t h, const uint8_t *p, size_t len) {
    size_t k;
    for (k = 0; k < len; k++) {
        h ^= p[k];
        h *= 1099511628211ULL;
    }
    return h;
}
#define FNV_START 14695981039346656037ULL

#endif
