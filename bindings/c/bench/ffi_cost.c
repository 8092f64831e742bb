/* Instructions per 32-byte send + receive through the C ABI, for
 * callgrind (docs/bench/c-abi.md): one process, one duplex connection, the
 * message always there (no waiting, no second core), so the count is the
 * code path alone. Compare with bindings/c/examples/ffi_cost.rs, the same
 * loop over the Rust API:
 *
 *   valgrind --tool=callgrind --toggle-collect='run_loop*' ./ffi-cost-c 100000
 */
#define _GNU_SOURCE
#include "memtube.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static memtube_listener *l;
static memtube_connection *server;

static void *accept_main(void *arg) {
    (void)arg;
    if (memtube_listener_accept(l, NULL, 10000000000LL, &server) != MEMTUBE_OK) exit(1);
    return NULL;
}

__attribute__((noinline)) static uint64_t run_loop(memtube_sender *tx, memtube_receiver *rx,
                                                   long n) {
    uint8_t payload[32];
    memtube_message m;
    uint64_t sum = 0;
    long i;
    memset(payload, 0xa5, sizeof payload);
    for (i = 0; i < n; i++) {
        memcpy(payload, &i, 8);
        if (memtube_send(tx, payload, 32, 7, 10000000000LL) != MEMTUBE_OK) exit(1);
        if (memtube_recv(rx, 10000000000LL, &m) != MEMTUBE_OK) exit(1);
        sum += m.data[0] + m.len + m.type_id;
    }
    return sum;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    char addr[64];
    memtube_options *o = memtube_options_new();
    memtube_connection *client;
    memtube_sender *tx = NULL;
    memtube_receiver *rx = NULL;
    memtube_sender *stx = NULL;
    memtube_receiver *srx = NULL;
    pthread_t t;
    snprintf(addr, sizeof addr, "@memtube-ffi-cost-%d", (int)getpid());
    memtube_options_set_duplex(o, true);
    memtube_options_set_capacity(o, 16384);
    memtube_options_set_pure_spin(o, true);
    if (memtube_listen(addr, o, &l) != MEMTUBE_OK) return 1;
    pthread_create(&t, NULL, accept_main, NULL);
    if (memtube_connect(addr, o, &client) != MEMTUBE_OK) return 1;
    pthread_join(t, NULL);
    /* Owned handles, as pingpong.c uses: the client's sender to the
     * server's receiver. */
    if (memtube_connection_split(client, &tx, &rx) != MEMTUBE_OK) return 1;
    if (memtube_connection_split(server, &stx, &srx) != MEMTUBE_OK) return 1;
    printf("%llu\n", (unsigned long long)run_loop(tx, srx, n));
    memtube_sender_free(tx);
    memtube_receiver_free(rx);
    memtube_sender_free(stx);
    memtube_receiver_free(srx);
    memtube_listener_free(l);
    memtube_options_free(o);
    return 0;
}
