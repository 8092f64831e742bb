/* One message from one process to another through memtube's C ABI (the
 * example of docs/c-abi.md; tests/c_abi.rs builds it with pkg-config
 * against the shared library and runs it). */
#include <memtube.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    memtube_listener *l;
    memtube_connection *c;
    memtube_message m;
    if (memtube_listen("@memtube-hello", NULL, &l) != MEMTUBE_OK) return 1;
    if (fork() == 0) { /* the sender, in another process */
        if (memtube_connect("@memtube-hello", NULL, &c) != MEMTUBE_OK) return 1;
        memtube_send(memtube_connection_sender(c), "hello", 5, 1, MEMTUBE_FOREVER);
        memtube_connection_free(c); /* a clean close: the receiver gets CLOSED after "hello" */
        return 0;
    }
    if (memtube_listener_accept(l, NULL, 5000000000LL, &c) != MEMTUBE_OK ||
        memtube_recv(memtube_connection_receiver(c), MEMTUBE_FOREVER, &m) != MEMTUBE_OK) {
        fprintf(stderr, "memtube: %s\n", memtube_last_error_message());
        return 1;
    }
    printf("%.*s (type %u)\n", (int)m.len, (const char *)m.data, m.type_id);
    memtube_connection_free(c); /* releases the message too */
    memtube_listener_free(l);
    return 0;
}
