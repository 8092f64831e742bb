/* Every function of the C ABI in one process (threads play the peer):
 * results, misuse (NULLs, BUSY, commit > reserved, double release, free of
 * a borrowed handle), timeouts, call/serve, split, sendrecv, cancel, regions.
 * Prints "unit: N passed, M failed"; exits 0 only when M is 0. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static char addr_buf[128];
static const char *fresh_addr(const char *tag) {
    static int n;
    snprintf(addr_buf, sizeof addr_buf, "@memtube-ctest-%d-%d-%s", (int)getpid(), n++, tag);
    return addr_buf;
}

struct acceptor {
    memtube_listener *l;
    const memtube_options *o;
    int64_t timeout_ns;
    memtube_connection *conn;
    int32_t st;
};

static void *accept_main(void *arg) {
    struct acceptor *a = arg;
    a->st = memtube_listener_accept(a->l, a->o, a->timeout_ns, &a->conn);
    return NULL;
}

/* A connected pair in this process: `server` accepted, `client` connected. */
static void make_pair(const char *tag, const memtube_options *o, memtube_connection **server,
                      memtube_connection **client) {
    const char *addr = fresh_addr(tag);
    memtube_listener *l = NULL;
    struct acceptor a;
    pthread_t t;
    MUST(memtube_listen(addr, o, &l));
    a.l = l;
    a.o = NULL;
    a.timeout_ns = 10 * SECOND;
    a.conn = NULL;
    a.st = -1;
    pthread_create(&t, NULL, accept_main, &a);
    MUST(memtube_connect(addr, o, client));
    pthread_join(t, NULL);
    MUST(a.st);
    *server = a.conn;
    memtube_listener_free(l);
}

static memtube_options *opts(uint32_t capacity, bool duplex) {
    memtube_options *o = memtube_options_new();
    if (!o) exit(2);
    MUST(memtube_options_set_capacity(o, capacity));
    MUST(memtube_options_set_duplex(o, duplex));
    return o;
}

/* ------------------------------------------------------------- basics */

/* The start-up check of docs/c-abi.md ("Versioning"): the same major, and a
 * library minor at least the header's. */
static bool abi_ok(uint32_t v) {
    return (v >> 16) == MEMTUBE_ABI_VERSION_MAJOR && v >= MEMTUBE_ABI_VERSION;
}

static void test_basics(void) {
    CHECK(memtube_abi_version() == MEMTUBE_ABI_VERSION);
    CHECK((memtube_abi_version() >> 16) == MEMTUBE_ABI_VERSION_MAJOR);
    CHECK(abi_ok(memtube_abi_version()));
    CHECK(abi_ok(MEMTUBE_ABI_VERSION + 1));                     /* a newer minor */
    CHECK(!abi_ok(MEMTUBE_ABI_VERSION - 1));                    /* an older minor (or major) */
    CHECK(!abi_ok(MEMTUBE_ABI_VERSION + (1u << 16)));           /* the next major */
    CHECK(!abi_ok(((MEMTUBE_ABI_VERSION_MAJOR - 1u) << 16) | 0xffff)); /* the previous major */
    CHECK(strlen(memtube_version()) > 0);
    CHECK(strcmp(memtube_status_name(MEMTUBE_OK), "MEMTUBE_OK") == 0);
    CHECK(strcmp(memtube_status_name(MEMTUBE_PEER_GONE), "MEMTUBE_PEER_GONE") == 0);
    CHECK(strcmp(memtube_status_name(MEMTUBE_PANIC), "MEMTUBE_PANIC") == 0);
    CHECK(strcmp(memtube_status_name(24), "MEMTUBE_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(memtube_status_name(-1), "MEMTUBE_UNKNOWN_STATUS") == 0);
    CHECK(MEMTUBE_OK == 0 && MEMTUBE_EMPTY == 1 && MEMTUBE_FULL == 2 && MEMTUBE_TIMEOUT == 3 &&
          MEMTUBE_CLOSED == 4 && MEMTUBE_PEER_GONE == 5 && MEMTUBE_CANCELLED == 6 &&
          MEMTUBE_TOO_LARGE == 7 && MEMTUBE_REPLY_TOO_LARGE == 8 && MEMTUBE_CORRUPT == 9 &&
          MEMTUBE_HANDSHAKE == 10 && MEMTUBE_PROTOCOL == 11 &&
          MEMTUBE_PERMISSION_DENIED == 12 && MEMTUBE_ADDR_IN_USE == 13 &&
          MEMTUBE_NO_LISTENER == 14 && MEMTUBE_NOT_A_SOCKET == 15 &&
          MEMTUBE_NO_SUCH_HANDLE == 16 && MEMTUBE_UNSUPPORTED == 17 && MEMTUBE_OS == 18 &&
          MEMTUBE_INVALID_ARGUMENT == 19 && MEMTUBE_BUSY == 20 && MEMTUBE_BAD_REGION == 21 &&
          MEMTUBE_ROLE_TAKEN == 22 && MEMTUBE_PANIC == 23);
    CHECK(strcmp(memtube_last_error_message(), "") == 0);
    CHECK(memtube_last_os_error() == 0);
}

/* ------------------------------------------------------------ options */

static void test_options(void) {
    memtube_options *o = memtube_options_new();
    memtube_cancel_token *t = memtube_cancel_token_new();
    uint32_t uids[2];
    CHECK(o != NULL && t != NULL);
    EXPECT(memtube_options_set_capacity(o, 4096), MEMTUBE_OK);
    EXPECT_FAIL(memtube_options_set_capacity(o, 1000), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_capacity(o, 32), MEMTUBE_INVALID_ARGUMENT);
    /* A success clears the last error. */
    EXPECT(memtube_options_set_duplex(o, true), MEMTUBE_OK);
    CHECK(strcmp(memtube_last_error_message(), "") == 0);
    EXPECT(memtube_options_set_isolation(o, false), MEMTUBE_OK);
    EXPECT(memtube_options_set_pure_spin(o, true), MEMTUBE_OK);
    EXPECT(memtube_options_set_huge_pages(o, false), MEMTUBE_OK);
    EXPECT(memtube_options_set_mlock(o, false), MEMTUBE_OK);
    EXPECT(memtube_options_set_direction(o, MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR), MEMTUBE_OK);
    EXPECT(memtube_options_set_direction(o, MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER), MEMTUBE_OK);
    EXPECT_FAIL(memtube_options_set_direction(o, 7), MEMTUBE_INVALID_ARGUMENT);
    EXPECT(memtube_options_set_connect_timeout_ns(o, SECOND), MEMTUBE_OK);
    EXPECT(memtube_options_set_connect_timeout_ns(o, MEMTUBE_FOREVER), MEMTUBE_OK);
    EXPECT(memtube_options_set_handshake_timeout_ns(o, 2 * SECOND), MEMTUBE_OK);
    EXPECT(memtube_options_set_max_capacity(o, 1u << 30), MEMTUBE_OK);
    EXPECT(memtube_options_set_uid_policy(o, MEMTUBE_UID_POLICY_ANY, NULL, 0), MEMTUBE_OK);
    uids[0] = (uint32_t)getuid();
    uids[1] = 12345;
    EXPECT(memtube_options_set_uid_policy(o, MEMTUBE_UID_POLICY_UIDS, uids, 2), MEMTUBE_OK);
    EXPECT(memtube_options_set_uid_policy(o, MEMTUBE_UID_POLICY_UIDS, NULL, 0), MEMTUBE_OK);
    EXPECT_FAIL(memtube_options_set_uid_policy(o, MEMTUBE_UID_POLICY_UIDS, NULL, 2),
                MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_uid_policy(o, 9, NULL, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT(memtube_options_set_uid_policy(o, MEMTUBE_UID_POLICY_SAME_UID, NULL, 0), MEMTUBE_OK);
    EXPECT(memtube_options_set_cancel_token(o, t), MEMTUBE_OK);
    EXPECT_FAIL(memtube_options_set_cancel_token(o, NULL), MEMTUBE_INVALID_ARGUMENT);

    /* Every setter refuses NULL options. */
    EXPECT_FAIL(memtube_options_set_capacity(NULL, 4096), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_duplex(NULL, true), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_isolation(NULL, true), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_pure_spin(NULL, true), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_huge_pages(NULL, true), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_mlock(NULL, true), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_direction(NULL, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_connect_timeout_ns(NULL, 1), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_handshake_timeout_ns(NULL, 1), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_max_capacity(NULL, 1), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_uid_policy(NULL, 0, NULL, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_options_set_cancel_token(NULL, t), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_cancel_token_cancel(NULL), MEMTUBE_INVALID_ARGUMENT);

    memtube_options_free(o);
    memtube_options_free(NULL);
    memtube_cancel_token_free(t);
    memtube_cancel_token_free(NULL);
}

/* -------------------------------------------------- NULL everywhere else */

static void test_nulls(void) {
    memtube_listener *l = NULL;
    memtube_connection *c = NULL;
    memtube_sender *tx = NULL;
    memtube_receiver *rx = NULL;
    memtube_message m;
    memtube_grant g;
    memtube_stats st;
    memtube_peer_cred pc;
    uint32_t u;
    int32_t s;
    char region[1024];

    EXPECT_FAIL(memtube_listen(NULL, NULL, &l), MEMTUBE_INVALID_ARGUMENT);
    CHECK(l == NULL);
    EXPECT_FAIL(memtube_listen("@x", NULL, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_listener_accept(NULL, NULL, 0, &c), MEMTUBE_INVALID_ARGUMENT);
    CHECK(memtube_listener_fd(NULL) == -1);
    CHECK(memtube_last_error_message()[0] != '\0');
    memtube_listener_free(NULL);
    EXPECT_FAIL(memtube_connect(NULL, NULL, &c), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_connect("@x", NULL, NULL), MEMTUBE_INVALID_ARGUMENT);
    memtube_connection_free(NULL);
    CHECK(memtube_connection_sender(NULL) == NULL);
    CHECK(memtube_connection_receiver(NULL) == NULL);
    EXPECT_FAIL(memtube_connection_split(NULL, &tx, &rx), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_connection_peer_cred(NULL, &pc), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_connection_peer_state(NULL, true, &s), MEMTUBE_INVALID_ARGUMENT);

    EXPECT_FAIL(memtube_send(NULL, "x", 1, 0, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_send_staged(NULL, "x", 1, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_publish(NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_reserve(NULL, 8, 0, &g), MEMTUBE_INVALID_ARGUMENT);
    CHECK(g.data == NULL && g.len == 0);
    EXPECT_FAIL(memtube_commit(NULL, 0, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_abort(NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_max_payload(NULL, &u), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_capacity(NULL, &u), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_stats(NULL, &st), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_peer_state(NULL, false, &s), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_set_nontemporal_threshold(NULL, 1), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_set_line_padding(NULL, true), MEMTUBE_INVALID_ARGUMENT);
    memtube_sender_free(NULL);

    EXPECT_FAIL(memtube_recv(NULL, 0, &m), MEMTUBE_INVALID_ARGUMENT);
    CHECK(m.data == NULL && m.len == 0);
    EXPECT_FAIL(memtube_release(NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_receiver_max_payload(NULL, &u), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_receiver_stats(NULL, &st), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_receiver_peer_state(NULL, true, &s), MEMTUBE_INVALID_ARGUMENT);
    memtube_receiver_free(NULL);

    EXPECT_FAIL(memtube_call(NULL, 1, "x", 1, SECOND, &m), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_max_request(NULL, &u), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_serve_one(NULL, 0, NULL, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_serve(NULL, NULL, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_reply_write(NULL, "x", 1), MEMTUBE_INVALID_ARGUMENT);
    CHECK(memtube_reply_extend(NULL, 4) == NULL);

    EXPECT_FAIL(memtube_ring_init(NULL, 4096, 1024), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_ring_attach_producer(NULL, 4096, &tx), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_ring_attach_consumer(NULL, 4096, &rx), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_ring_attach_producer(region, sizeof region, NULL),
                MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_ring_attach_consumer(region, sizeof region, NULL),
                MEMTUBE_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------- addresses */

static void test_addresses(void) {
    memtube_listener *l = NULL, *l2 = NULL;
    memtube_connection *c = NULL;
    char *long_addr;
    char path[256];
    int fd;
    const char *a = fresh_addr("addr");

    /* Not UTF-8. */
    EXPECT_FAIL(memtube_listen("@\xff\xfe", NULL, &l), MEMTUBE_INVALID_ARGUMENT);
    CHECK(strstr(memtube_last_error_message(), "UTF-8") != NULL);
    /* No NUL within 4096 bytes: refused without reading further. */
    long_addr = malloc(5000);
    memset(long_addr, 'a', 5000);
    EXPECT_FAIL(memtube_listen(long_addr, NULL, &l), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_connect(long_addr, NULL, &c), MEMTUBE_INVALID_ARGUMENT);
    /* Too long for a socket address. */
    memset(long_addr, 'a', 300);
    long_addr[0] = '/';
    long_addr[300] = '\0';
    EXPECT_FAIL(memtube_listen(long_addr, NULL, &l), MEMTUBE_INVALID_ARGUMENT);
    free(long_addr);

    /* Address in use; nobody listening. */
    MUST(memtube_listen(a, NULL, &l));
    EXPECT_FAIL(memtube_listen(a, NULL, &l2), MEMTUBE_ADDR_IN_USE);
    CHECK(l2 == NULL);
    memtube_listener_free(l);
    EXPECT_FAIL(memtube_connect(fresh_addr("nobody"), NULL, &c), MEMTUBE_NO_LISTENER);
    CHECK(c == NULL);

    /* A regular file at the path is never replaced. */
    snprintf(path, sizeof path, "/tmp/memtube-ctest-%d.file", (int)getpid());
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(fd >= 0);
    close(fd);
    EXPECT_FAIL(memtube_listen(path, NULL, &l), MEMTUBE_NOT_A_SOCKET);
    unlink(path);

    /* A path socket: created, then removed by the free. */
    snprintf(path, sizeof path, "/tmp/memtube-ctest-%d.sock", (int)getpid());
    unlink(path);
    MUST(memtube_listen(path, NULL, &l));
    {
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode));
        memtube_listener_free(l);
        CHECK(stat(path, &sb) != 0);
    }

    /* An OS error carries its errno. */
    EXPECT_FAIL(memtube_listen("/nonexistent-dir-memtube/x.sock", NULL, &l), MEMTUBE_OS);
    CHECK(memtube_last_os_error() == ENOENT);
    EXPECT(memtube_listen(fresh_addr("ok"), NULL, &l), MEMTUBE_OK);
    CHECK(memtube_last_os_error() == 0);
    memtube_listener_free(l);
}

/* ------------------------------------------------------ one-way pair */

static void test_one_way(void) {
    memtube_options *o = opts(4096, false);
    memtube_connection *server, *client;
    memtube_sender *tx, *tx2;
    memtube_receiver *rx;
    memtube_message m;
    memtube_grant g;
    memtube_stats st;
    memtube_peer_cred pc;
    uint32_t u, maxp;
    int32_t state;
    uint8_t buf[4096];
    double t0;
    int i, n;

    make_pair("oneway", o, &server, &client);
    /* The connector sends, the listener receives. */
    tx = memtube_connection_sender(client);
    CHECK(tx != NULL);
    CHECK(memtube_connection_sender(client) == tx); /* the same pointer each time */
    CHECK(memtube_connection_receiver(client) == NULL);
    CHECK(strstr(memtube_last_error_message(), "no such handle") != NULL);
    rx = memtube_connection_receiver(server);
    CHECK(rx != NULL && memtube_connection_receiver(server) == rx);
    CHECK(memtube_connection_sender(server) == NULL);

    EXPECT(memtube_sender_capacity(tx, &u), MEMTUBE_OK);
    CHECK(u == 4096);
    EXPECT(memtube_sender_max_payload(tx, &maxp), MEMTUBE_OK);
    CHECK(maxp == 4096 / 2 - 8);
    EXPECT(memtube_receiver_max_payload(rx, &u), MEMTUBE_OK);
    CHECK(u == maxp);
    EXPECT(memtube_connection_peer_cred(server, &pc), MEMTUBE_OK);
    CHECK(pc.pid == (int32_t)getpid() && pc.uid == (uint32_t)getuid() && pc.gid == (uint32_t)getgid());
    EXPECT(memtube_connection_peer_state(server, true, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_ALIVE);
    EXPECT(memtube_connection_peer_state(server, false, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_ALIVE);
    EXPECT(memtube_sender_peer_state(tx, true, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_ALIVE);
    EXPECT(memtube_receiver_peer_state(rx, false, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_ALIVE);
    EXPECT_FAIL(memtube_connection_peer_cred(server, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_connection_peer_state(server, true, NULL), MEMTUBE_INVALID_ARGUMENT);

    /* Nothing yet: EMPTY now, TIMEOUT after the timeout. */
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);
    t0 = now_s();
    EXPECT(memtube_recv(rx, 30 * 1000000LL, &m), MEMTUBE_TIMEOUT);
    CHECK(now_s() - t0 >= 0.025);
    CHECK(m.data == NULL && m.len == 0);

    /* A copy for an untrusted sender: too small a buffer keeps the message
     * (and says how much room it needs), a big enough one takes it. */
    {
        size_t len = 99;
        uint32_t ty = 99;
        uint8_t small[4];
        EXPECT(memtube_send(tx, "copy me out", 11, 42, SECOND), MEMTUBE_OK);
        EXPECT_FAIL(memtube_recv_copy(rx, SECOND, small, sizeof small, &len, &ty),
                    MEMTUBE_TOO_LARGE);
        CHECK(len == 11 && ty == 42);
        EXPECT_FAIL(memtube_recv_copy(rx, 0, NULL, 16, &len, &ty), MEMTUBE_INVALID_ARGUMENT);
        EXPECT_FAIL(memtube_recv_copy(rx, 0, buf, sizeof buf, NULL, &ty),
                    MEMTUBE_INVALID_ARGUMENT);
        EXPECT(memtube_recv_copy(rx, 0, buf, sizeof buf, &len, &ty), MEMTUBE_OK);
        CHECK(len == 11 && ty == 42 && memcmp(buf, "copy me out", 11) == 0);
        EXPECT(memtube_recv_copy(rx, 0, NULL, 0, &len, &ty), MEMTUBE_EMPTY);
        CHECK(len == 0);
        /* Kept by a failed copy, then received in place. */
        EXPECT(memtube_send(tx, "again", 5, 43, SECOND), MEMTUBE_OK);
        EXPECT_FAIL(memtube_recv_copy(rx, SECOND, NULL, 0, &len, &ty), MEMTUBE_TOO_LARGE);
        EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_OK);
        CHECK(m.len == 5 && m.type_id == 43 && memcmp(m.data, "again", 5) == 0);
        EXPECT(memtube_release(rx), MEMTUBE_OK);
    }

    /* Copying send, received in place and held until released. */
    EXPECT(memtube_send(tx, "hello", 5, 42, 0), MEMTUBE_OK);
    CHECK(strcmp(memtube_last_error_message(), "") == 0);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 5 && m.type_id == 42 && memcmp(m.data, "hello", 5) == 0);
    CHECK(((uintptr_t)m.data & 7) == 0);
    EXPECT(memtube_release(rx), MEMTUBE_OK);
    EXPECT(memtube_release(rx), MEMTUBE_OK); /* double release: harmless */
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);

    /* The next recv releases the held message first. */
    EXPECT(memtube_send(tx, "a", 1, 1, SECOND), MEMTUBE_OK);
    EXPECT(memtube_send(tx, "bb", 2, 2, MEMTUBE_FOREVER), MEMTUBE_OK);
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_OK);
    CHECK(m.len == 1 && m.data[0] == 'a' && m.type_id == 1);
    EXPECT(memtube_recv(rx, MEMTUBE_FOREVER, &m), MEMTUBE_OK);
    CHECK(m.len == 2 && memcmp(m.data, "bb", 2) == 0 && m.type_id == 2);
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);

    /* Zero-length messages; NULL data only with len 0. */
    EXPECT(memtube_send(tx, NULL, 0, 3, 0), MEMTUBE_OK);
    EXPECT_FAIL(memtube_send(tx, NULL, 5, 3, 0), MEMTUBE_INVALID_ARGUMENT);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 0 && m.type_id == 3);
    EXPECT_FAIL(memtube_recv(rx, 0, NULL), MEMTUBE_INVALID_ARGUMENT);

    /* Zero copy: reserve, write, commit. */
    EXPECT(memtube_reserve(tx, 16, SECOND, &g), MEMTUBE_OK);
    CHECK(g.data != NULL && g.len == 16 && ((uintptr_t)g.data & 7) == 0);
    memcpy(g.data, "0123456789abcdef", 16);
    /* While the grant is outstanding, every writing call is BUSY... */
    EXPECT_FAIL(memtube_send(tx, "x", 1, 0, 0), MEMTUBE_BUSY);
    EXPECT_FAIL(memtube_send_staged(tx, "x", 1, 0), MEMTUBE_BUSY);
    EXPECT_FAIL(memtube_publish(tx), MEMTUBE_BUSY);
    EXPECT_FAIL(memtube_reserve(tx, 8, 0, &g), MEMTUBE_BUSY);
    CHECK(g.data == NULL); /* a failed reserve clears *out, the grant stays */
    EXPECT_FAIL(memtube_sender_set_line_padding(tx, true), MEMTUBE_BUSY);
    EXPECT_FAIL(memtube_sender_set_nontemporal_threshold(tx, 1), MEMTUBE_BUSY);
    /* ... the queries still answer ... */
    EXPECT(memtube_sender_max_payload(tx, &u), MEMTUBE_OK);
    EXPECT(memtube_sender_stats(tx, &st), MEMTUBE_OK);
    /* ... and a commit of more than reserved is refused, the grant kept. */
    EXPECT_FAIL(memtube_commit(tx, 17, 9), MEMTUBE_INVALID_ARGUMENT);
    CHECK(strstr(memtube_last_error_message(), "more bytes than reserved") != NULL);
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);
    EXPECT(memtube_commit(tx, 10, 9), MEMTUBE_OK);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 10 && m.type_id == 9 && memcmp(m.data, "0123456789", 10) == 0);
    EXPECT_FAIL(memtube_commit(tx, 0, 0), MEMTUBE_INVALID_ARGUMENT); /* none outstanding */
    EXPECT(memtube_abort(tx), MEMTUBE_OK);                          /* none: fine */
    /* An aborted grant sends nothing. */
    EXPECT(memtube_reserve(tx, 100, 0, &g), MEMTUBE_OK);
    memset(g.data, 0x55, 100);
    EXPECT(memtube_abort(tx), MEMTUBE_OK);
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);
    EXPECT_FAIL(memtube_reserve(tx, 8, 0, NULL), MEMTUBE_INVALID_ARGUMENT);

    /* Too large, and the largest. */
    memset(buf, 7, sizeof buf);
    EXPECT_FAIL(memtube_send(tx, buf, maxp + 1, 0, 0), MEMTUBE_TOO_LARGE);
    EXPECT_FAIL(memtube_reserve(tx, maxp + 1, 0, &g), MEMTUBE_TOO_LARGE);
    EXPECT(memtube_send(tx, buf, maxp, 77, 0), MEMTUBE_OK);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == maxp && m.type_id == 77 && m.data[maxp - 1] == 7);
    EXPECT(memtube_release(rx), MEMTUBE_OK);

    /* Full: FULL without waiting, TIMEOUT with a timeout. */
    n = 0;
    for (;;) {
        int32_t s2 = memtube_send(tx, buf, 500, (uint32_t)n, 0);
        if (s2 == MEMTUBE_FULL) break;
        CHECK(s2 == MEMTUBE_OK);
        if (s2 != MEMTUBE_OK || ++n > 1000) break;
    }
    CHECK(n >= 4 && n < 10);
    t0 = now_s();
    EXPECT(memtube_send(tx, buf, 500, 0, 20 * 1000000LL), MEMTUBE_TIMEOUT);
    CHECK(now_s() - t0 >= 0.015);
    EXPECT(memtube_reserve(tx, 500, 0, &g), MEMTUBE_FULL);
    for (i = 0; i < n; i++) {
        EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
        CHECK(m.len == 500 && m.type_id == (uint32_t)i);
    }
    EXPECT(memtube_release(rx), MEMTUBE_OK);

    /* Staged messages appear together at publish. */
    EXPECT(memtube_send_staged(tx, "s1", 2, 1), MEMTUBE_OK);
    EXPECT(memtube_send_staged(tx, "s2", 2, 2), MEMTUBE_OK);
    EXPECT(memtube_send_staged(tx, "s3", 2, 3), MEMTUBE_OK);
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);
    EXPECT(memtube_publish(tx), MEMTUBE_OK);
    for (i = 1; i <= 3; i++) {
        EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_OK);
        CHECK(m.len == 2 && m.data[0] == 's' && m.data[1] == (uint8_t)('0' + i) &&
              m.type_id == (uint32_t)i);
    }
    EXPECT(memtube_release(rx), MEMTUBE_OK);

    /* Setters and stats. */
    EXPECT(memtube_sender_set_line_padding(tx, false), MEMTUBE_OK);
    EXPECT(memtube_sender_set_nontemporal_threshold(tx, UINT32_MAX), MEMTUBE_OK);
    EXPECT(memtube_sender_stats(tx, &st), MEMTUBE_OK);
    CHECK(st.messages_committed == (uint64_t)(11 + n)); /* 2 from the copy case */
    CHECK(st.full_events >= 1);
    EXPECT(memtube_receiver_stats(rx, &st), MEMTUBE_OK);
    CHECK(st.messages_released <= (uint64_t)(11 + n)); /* released lazily */
    EXPECT_FAIL(memtube_sender_stats(tx, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_receiver_stats(rx, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_max_payload(tx, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_capacity(tx, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_receiver_max_payload(rx, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sender_peer_state(tx, true, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_receiver_peer_state(rx, true, NULL), MEMTUBE_INVALID_ARGUMENT);

    /* Freeing a borrowed handle is refused and reported; it still works. */
    memtube_sender_free(tx);
    CHECK(strstr(memtube_last_error_message(), "borrowed") != NULL);
    memtube_receiver_free(rx);
    CHECK(strstr(memtube_last_error_message(), "borrowed") != NULL);
    tx2 = memtube_connection_sender(client);
    CHECK(tx2 == tx);
    EXPECT(memtube_send(tx, "still", 5, 5, 0), MEMTUBE_OK);

    /* call/serve need a duplex connection. */
    EXPECT_FAIL(memtube_call(client, 1, "q", 1, SECOND, &m), MEMTUBE_NO_SUCH_HANDLE);
    EXPECT(memtube_max_request(client, &u), MEMTUBE_OK);
    CHECK(u == maxp - 8);
    EXPECT(memtube_max_request(server, &u), MEMTUBE_OK);
    CHECK(u == 0);

    /* A message held when the connection is freed dies with it; the
     * sender's close reaches the receiver after the last message. */
    EXPECT(memtube_send(tx, "last", 4, 6, 0), MEMTUBE_OK);
    memtube_connection_free(client);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 5 && memcmp(m.data, "still", 5) == 0);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 4 && memcmp(m.data, "last", 4) == 0);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_CLOSED);
    EXPECT(memtube_connection_peer_state(server, true, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_CLOSED);
    memtube_connection_free(server);
    memtube_options_free(o);
}

/* --------------------------------------------------------- call/serve */

struct served {
    int calls;
    memtube_connection *conn;
    memtube_sender *tx;      /* the served connection's borrowed sender */
    int32_t reentry;         /* what a send on it returned inside the handler */
    int sender_null_inside;  /* memtube_connection_sender gave NULL inside */
    int32_t serve_status;
};

static uint32_t handler(void *ctx, uint32_t type_id, const uint8_t *req, size_t len,
                        memtube_reply *reply) {
    struct served *s = ctx;
    size_t i;
    s->calls++;
    if (type_id == 100) { /* a reply too large for the ring */
        uint8_t *p = memtube_reply_extend(reply, 5000);
        if (p) memset(p, 1, 5000);
        return 1;
    }
    if (type_id == 101) /* the reserved type id */
        return UINT32_MAX;
    if (type_id == 102) { /* calling back into the served connection */
        s->reentry = memtube_send(s->tx, "x", 1, 0, 0);
        s->sender_null_inside = memtube_connection_sender(s->conn) == NULL;
        memtube_connection_free(s->conn); /* refused too: nothing happens */
        return 2;
    }
    if (type_id == 103) { /* in-place reply */
        uint8_t *p = memtube_reply_extend(reply, len);
        for (i = 0; p && i < len; i++) p[i] = (uint8_t)(req[i] + 1);
        return 3;
    }
    for (i = len; i > 0; i--) memtube_reply_write(reply, &req[i - 1], 1);
    memtube_reply_write(reply, NULL, 0);
    return type_id + 1000;
}

static void *serve_main(void *arg) {
    struct served *s = arg;
    s->serve_status = memtube_serve(s->conn, handler, s);
    return NULL;
}

static void test_call_serve(void) {
    memtube_options *o = opts(4096, true);
    memtube_connection *server, *client;
    memtube_message m, m2;
    memtube_grant g;
    struct served s;
    pthread_t t;
    uint32_t maxr;
    uint8_t big[4096];

    make_pair("rpc", o, &server, &client);
    /* serve_one without waiting: nothing there. */
    EXPECT(memtube_serve_one(server, 0, handler, NULL), MEMTUBE_EMPTY);
    EXPECT(memtube_serve_one(server, 10 * 1000000LL, handler, NULL), MEMTUBE_TIMEOUT);
    EXPECT_FAIL(memtube_serve_one(server, 0, NULL, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_serve(server, NULL, NULL), MEMTUBE_INVALID_ARGUMENT);

    memset(&s, 0, sizeof s);
    s.conn = server;
    s.tx = memtube_connection_sender(server);
    pthread_create(&t, NULL, serve_main, &s);

    EXPECT(memtube_call(client, 5, "abc", 3, 10 * SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 3 && memcmp(m.data, "cba", 3) == 0 && m.type_id == 1005);
    /* The reply is held until the next call, which releases it first. */
    EXPECT(memtube_call(client, 6, "hello", 5, MEMTUBE_FOREVER, &m2), MEMTUBE_OK);
    CHECK(m2.len == 5 && memcmp(m2.data, "olleh", 5) == 0 && m2.type_id == 1006);
    EXPECT(memtube_release(memtube_connection_receiver(client)), MEMTUBE_OK);
    EXPECT(memtube_call(client, 7, NULL, 0, 10 * SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 0 && m.type_id == 1007);
    EXPECT(memtube_call(client, 103, "abc", 3, 10 * SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 3 && memcmp(m.data, "bcd", 3) == 0 && m.type_id == 3);

    EXPECT(memtube_max_request(client, &maxr), MEMTUBE_OK);
    CHECK(maxr == 4096 / 2 - 16);
    memset(big, 3, sizeof big);
    EXPECT_FAIL(memtube_call(client, 1, big, maxr + 1, 10 * SECOND, &m), MEMTUBE_TOO_LARGE);
    EXPECT(memtube_call(client, 1, big, maxr, 10 * SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == maxr);
    EXPECT_FAIL(memtube_call(client, 100, "x", 1, 10 * SECOND, &m), MEMTUBE_REPLY_TOO_LARGE);
    EXPECT_FAIL(memtube_call(client, 101, "x", 1, 10 * SECOND, &m), MEMTUBE_PROTOCOL);
    EXPECT(memtube_call(client, 102, "x", 1, 10 * SECOND, &m), MEMTUBE_OK);
    CHECK(m.type_id == 2);
    EXPECT_FAIL(memtube_call(client, 1, "x", 1, 10 * SECOND, NULL), MEMTUBE_INVALID_ARGUMENT);

    /* A grant outstanding on the connection's sender: call is BUSY. */
    EXPECT(memtube_reserve(memtube_connection_sender(client), 8, 0, &g), MEMTUBE_OK);
    EXPECT_FAIL(memtube_call(client, 1, "x", 1, SECOND, &m), MEMTUBE_BUSY);
    EXPECT(memtube_abort(memtube_connection_sender(client)), MEMTUBE_OK);
    EXPECT(memtube_call(client, 8, "x", 1, 10 * SECOND, &m), MEMTUBE_OK);

    /* The client closes: serve returns OK. */
    memtube_connection_free(client);
    pthread_join(t, NULL);
    EXPECT(s.serve_status, MEMTUBE_OK);
    CHECK(s.calls == 9);
    CHECK(s.reentry == MEMTUBE_BUSY);
    CHECK(s.sender_null_inside);
    memtube_connection_free(server);
    memtube_options_free(o);
}

/* ------------------------------------------------------------- split */

struct echo_args {
    memtube_sender *tx;
    memtube_receiver *rx;
    int n;
    int ok;
};

static void *echo_main(void *arg) {
    struct echo_args *e = arg;
    memtube_message m;
    int i;
    for (i = 0; i < e->n; i++) {
        if (memtube_recv(e->rx, 10 * SECOND, &m) != MEMTUBE_OK) return NULL;
        if (memtube_send(e->tx, m.data, m.len, m.type_id, 10 * SECOND) != MEMTUBE_OK) return NULL;
    }
    e->ok = 1;
    return NULL;
}

static void test_split(void) {
    memtube_options *o = opts(4096, true);
    memtube_connection *server, *client;
    memtube_sender *stx, *ctx_ = NULL;
    memtube_receiver *srx, *crx = NULL;
    memtube_message m;
    memtube_grant g;
    struct echo_args e;
    pthread_t t;
    uint8_t buf[608];
    int i;

    make_pair("split", o, &server, &client);
    /* A held message and an outstanding grant carry over to the owned handles. */
    EXPECT(memtube_send(memtube_connection_sender(server), "held", 4, 1, 0), MEMTUBE_OK);
    EXPECT(memtube_recv(memtube_connection_receiver(client), SECOND, &m), MEMTUBE_OK);
    EXPECT(memtube_reserve(memtube_connection_sender(client), 8, 0, &g), MEMTUBE_OK);
    memcpy(g.data, "granted!", 8);
    EXPECT(memtube_connection_split(client, &ctx_, &crx), MEMTUBE_OK);
    CHECK(ctx_ != NULL && crx != NULL);
    CHECK(memcmp(m.data, "held", 4) == 0); /* still valid */
    EXPECT_FAIL(memtube_send(ctx_, "x", 1, 0, 0), MEMTUBE_BUSY);
    EXPECT(memtube_commit(ctx_, 8, 2), MEMTUBE_OK);
    EXPECT(memtube_release(crx), MEMTUBE_OK);
    EXPECT(memtube_recv(memtube_connection_receiver(server), SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 8 && memcmp(m.data, "granted!", 8) == 0 && m.type_id == 2);

    /* The server's handles move to an echo thread. */
    stx = NULL;
    srx = NULL;
    EXPECT(memtube_connection_split(server, &stx, &srx), MEMTUBE_OK);
    e.tx = stx;
    e.rx = srx;
    e.n = 200;
    e.ok = 0;
    pthread_create(&t, NULL, echo_main, &e);
    for (i = 0; i < 200; i++) {
        size_t len = payload((uint64_t)i, buf);
        EXPECT(memtube_send(ctx_, buf, len, (uint32_t)i, 10 * SECOND), MEMTUBE_OK);
        EXPECT(memtube_recv(crx, 10 * SECOND, &m), MEMTUBE_OK);
        CHECK(is_payload((uint64_t)i, m.data, m.len, m.type_id));
    }
    pthread_join(t, NULL);
    CHECK(e.ok);
    memtube_sender_free(stx);
    CHECK(strcmp(memtube_last_error_message(), "") == 0);
    EXPECT(memtube_recv(crx, SECOND, &m), MEMTUBE_CLOSED);
    memtube_receiver_free(srx);
    memtube_sender_free(ctx_);
    memtube_receiver_free(crx);

    /* A NULL out pointer: refused, the connection freed all the same. */
    make_pair("split2", o, &server, &client);
    EXPECT_FAIL(memtube_connection_split(client, NULL, &crx), MEMTUBE_INVALID_ARGUMENT);
    EXPECT(memtube_recv(memtube_connection_receiver(server), SECOND, &m), MEMTUBE_CLOSED);
    memtube_connection_free(server);
    memtube_options_free(o);
}

/* ---------------------------------------------------------- sendrecv */

/* An echo over memtube_sendrecv: receive one, then send back what it holds
 * (straight from the ring) and receive the next in one call, until CLOSED. */
static void *sendrecv_echo_main(void *arg) {
    struct echo_args *e = arg;
    memtube_message m;
    bool sent = true;
    int32_t st;
    if (memtube_recv(e->rx, 10 * SECOND, &m) != MEMTUBE_OK) return NULL;
    for (;;) {
        st = memtube_sendrecv(e->tx, m.data, m.len, m.type_id, e->rx, 10 * SECOND, &m, &sent);
        if (st == MEMTUBE_CLOSED && sent) break;
        if (st != MEMTUBE_OK) return NULL;
        e->n++;
    }
    e->ok = 1;
    return NULL;
}

static void test_sendrecv(void) {
    memtube_options *o = opts(4096, true);
    memtube_connection *server, *client;
    memtube_sender *stx = NULL, *ctx_ = NULL;
    memtube_receiver *srx = NULL, *crx = NULL;
    memtube_message m, held;
    struct echo_args e;
    pthread_t t;
    uint8_t buf[608], big[8192];
    bool sent = true;
    int i;

    make_pair("sendrecv", o, &server, &client);
    /* Argument checks come first: nothing goes out. */
    sent = true;
    EXPECT_FAIL(memtube_sendrecv(memtube_connection_sender(client), "x", 1, 0, NULL, 0, &m, &sent),
                MEMTUBE_INVALID_ARGUMENT);
    CHECK(!sent && m.data == NULL);
    EXPECT_FAIL(memtube_sendrecv(memtube_connection_sender(client), "x", 1, 0,
                                 memtube_connection_receiver(client), 0, NULL, &sent),
                MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_sendrecv(NULL, "x", 1, 0, memtube_connection_receiver(client), 0, &m, NULL),
                MEMTUBE_INVALID_ARGUMENT);
    EXPECT(memtube_recv(memtube_connection_receiver(server), 0, &m), MEMTUBE_EMPTY);

    /* A failed send: nothing sent, the held message still held and valid. */
    EXPECT(memtube_send(memtube_connection_sender(server), "keep", 4, 9, 0), MEMTUBE_OK);
    EXPECT(memtube_recv(memtube_connection_receiver(client), SECOND, &held), MEMTUBE_OK);
    memset(big, 7, sizeof big);
    sent = true;
    EXPECT_FAIL(memtube_sendrecv(memtube_connection_sender(client), big, sizeof big, 1,
                                 memtube_connection_receiver(client), 0, &m, &sent),
                MEMTUBE_TOO_LARGE);
    CHECK(!sent && m.data == NULL && m.len == 0);
    CHECK(held.len == 4 && memcmp(held.data, "keep", 4) == 0 && held.type_id == 9);
    /* Sent, then nothing to receive: sent is true, the status the receive's,
     * and the held message was released by the receive. */
    EXPECT_FAIL(memtube_sendrecv(memtube_connection_sender(client), held.data, held.len, 10,
                                 memtube_connection_receiver(client), 0, &m, &sent),
                MEMTUBE_EMPTY);
    CHECK(sent && m.data == NULL);
    EXPECT(memtube_recv(memtube_connection_receiver(server), SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 4 && memcmp(m.data, "keep", 4) == 0 && m.type_id == 10);
    EXPECT(memtube_sendrecv(memtube_connection_sender(client), "y", 1, 11,
                            memtube_connection_receiver(client), 20 * 1000000LL, &m, &sent),
           MEMTUBE_TIMEOUT);
    CHECK(sent);
    EXPECT(memtube_recv(memtube_connection_receiver(server), SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 1 && m.data[0] == 'y' && m.type_id == 11);

    /* Lockstep against an echo that forwards from the ring: every byte back. */
    EXPECT(memtube_connection_split(server, &stx, &srx), MEMTUBE_OK);
    EXPECT(memtube_connection_split(client, &ctx_, &crx), MEMTUBE_OK);
    e.tx = stx;
    e.rx = srx;
    e.n = 0;
    e.ok = 0;
    pthread_create(&t, NULL, sendrecv_echo_main, &e);
    for (i = 0; i < 300; i++) {
        size_t len = payload((uint64_t)i, buf);
        EXPECT(memtube_sendrecv(ctx_, buf, len, (uint32_t)i, crx, 10 * SECOND, &m, &sent), MEMTUBE_OK);
        CHECK(sent && is_payload((uint64_t)i, m.data, m.len, m.type_id));
    }
    memtube_sender_free(ctx_);
    pthread_join(t, NULL);
    CHECK(e.ok && e.n == 299);
    memtube_receiver_free(crx);
    memtube_sender_free(stx);
    memtube_receiver_free(srx);
    memtube_options_free(o);
}

/* ------------------------------------------------------------ cancel */

struct cancel_args {
    memtube_cancel_token *t;
};

static void *cancel_main(void *arg) {
    struct cancel_args *c = arg;
    struct timespec d = {0, 100 * 1000000L};
    nanosleep(&d, NULL);
    memtube_cancel_token_cancel(c->t);
    return NULL;
}

static void test_cancel(void) {
    memtube_options *o = opts(4096, false);
    memtube_cancel_token *tok = memtube_cancel_token_new();
    memtube_connection *server, *client;
    memtube_listener *l;
    memtube_connection *c = NULL;
    memtube_message m;
    struct cancel_args ca;
    pthread_t t;
    double t0;

    MUST(memtube_options_set_cancel_token(o, tok));
    make_pair("cancel", o, &server, &client);
    ca.t = tok;
    pthread_create(&t, NULL, cancel_main, &ca);
    t0 = now_s();
    EXPECT(memtube_recv(memtube_connection_receiver(server), MEMTUBE_FOREVER, &m), MEMTUBE_CANCELLED);
    CHECK(now_s() - t0 < 5.0);
    pthread_join(t, NULL);
    /* A listener with a cancelled token stops accepting at once. */
    MUST(memtube_listen(fresh_addr("cancel-l"), o, &l));
    EXPECT(memtube_listener_accept(l, NULL, MEMTUBE_FOREVER, &c), MEMTUBE_CANCELLED);
    CHECK(c == NULL);
    memtube_listener_free(l);
    memtube_connection_free(client);
    memtube_connection_free(server);
    memtube_cancel_token_free(tok);
    memtube_options_free(o);
}

/* ---------------------------------------------------------- listener */

static void test_listener(void) {
    const char *addr = fresh_addr("poll");
    memtube_listener *l;
    memtube_connection *c = NULL, *client = NULL;
    memtube_options *o = opts(1024, false);
    struct pollfd p;
    struct acceptor a;
    pthread_t t;
    double t0;

    MUST(memtube_listen(addr, NULL, &l));
    p.fd = memtube_listener_fd(l);
    p.events = POLLIN;
    CHECK(p.fd >= 0);
    CHECK(poll(&p, 1, 0) == 0);
    EXPECT(memtube_listener_accept(l, NULL, 0, &c), MEMTUBE_TIMEOUT);
    t0 = now_s();
    EXPECT(memtube_listener_accept(l, NULL, 20 * 1000000LL, &c), MEMTUBE_TIMEOUT);
    CHECK(now_s() - t0 >= 0.015);
    EXPECT_FAIL(memtube_listener_accept(l, NULL, 0, NULL), MEMTUBE_INVALID_ARGUMENT);
    /* Accept with other options for this one connection (capacity 1024). */
    a.l = l;
    a.o = o;
    a.timeout_ns = 10 * SECOND;
    a.conn = NULL;
    pthread_create(&t, NULL, accept_main, &a);
    MUST(memtube_connect(addr, NULL, &client));
    pthread_join(t, NULL);
    EXPECT(a.st, MEMTUBE_OK);
    {
        uint32_t cap = 0;
        EXPECT(memtube_sender_capacity(memtube_connection_sender(client), &cap), MEMTUBE_OK);
        CHECK(cap == 1024);
    }
    memtube_connection_free(a.conn);
    memtube_connection_free(client);
    /* A connector refuses rings larger than it accepts, before mapping. */
    {
        memtube_options *small = opts(1024, false);
        MUST(memtube_options_set_max_capacity(small, 2048));
        a.o = NULL; /* the listener's: 64 KiB */
        a.conn = NULL;
        pthread_create(&t, NULL, accept_main, &a);
        client = NULL;
        EXPECT_FAIL(memtube_connect(addr, small, &client), MEMTUBE_HANDSHAKE);
        CHECK(client == NULL);
        CHECK(strstr(memtube_last_error_message(), "max_capacity") != NULL);
        pthread_join(t, NULL);
        CHECK(a.st != MEMTUBE_OK);
        memtube_options_free(small);
    }
    memtube_listener_free(l);
    memtube_options_free(o);
}

/* ------------------------------------------------------------ regions */

static void test_regions(void) {
    uint32_t cap = 4096;
    size_t size = memtube_ring_region_size(cap);
    uint8_t *region;
    memtube_sender *tx = NULL, *tx2 = NULL;
    memtube_receiver *rx = NULL;
    memtube_message m;
    memtube_grant g;
    memtube_stats st;
    uint32_t u;
    int32_t state;
    uint8_t buf[608];
    int i;

    CHECK(size == 640 + 4096);
    CHECK(memtube_ring_region_size(100) == 0);
    CHECK(memtube_ring_region_size(32) == 0);
    region = aligned_alloc(128, size + 128);
    CHECK(region != NULL);
    memset(region, 0, size + 128);
    /* Not initialized: bad magic. */
    EXPECT_FAIL(memtube_ring_attach_producer(region, size, &tx), MEMTUBE_BAD_REGION);
    CHECK(tx == NULL);
    EXPECT_FAIL(memtube_ring_init(region, size, 1000), MEMTUBE_BAD_REGION);
    EXPECT_FAIL(memtube_ring_init(region, size - 1, cap), MEMTUBE_BAD_REGION);
    EXPECT_FAIL(memtube_ring_init(region + 8, size, cap), MEMTUBE_BAD_REGION);
    EXPECT(memtube_ring_init(region, size, cap), MEMTUBE_OK);
    EXPECT_FAIL(memtube_ring_attach_producer(region, size - 1, &tx), MEMTUBE_BAD_REGION);
    EXPECT(memtube_ring_attach_producer(region, size, &tx), MEMTUBE_OK);
    EXPECT_FAIL(memtube_ring_attach_producer(region, size, &tx2), MEMTUBE_ROLE_TAKEN);
    CHECK(tx2 == NULL);
    EXPECT(memtube_ring_attach_consumer(region, size, &rx), MEMTUBE_OK);
    /* Both roles are held by this process, which runs: no take-over. */
    EXPECT_FAIL(memtube_ring_take_over_producer(region, size, &tx2), MEMTUBE_ROLE_TAKEN);
    CHECK(tx2 == NULL);
    EXPECT_FAIL(memtube_ring_take_over_consumer(region, size, NULL), MEMTUBE_INVALID_ARGUMENT);
    EXPECT_FAIL(memtube_ring_take_over_producer(NULL, size, &tx2), MEMTUBE_INVALID_ARGUMENT);

    EXPECT(memtube_sender_capacity(tx, &u), MEMTUBE_OK);
    CHECK(u == cap);
    EXPECT(memtube_receiver_max_payload(rx, &u), MEMTUBE_OK);
    CHECK(u == cap / 2 - 8);
    EXPECT(memtube_sender_peer_state(tx, true, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_ALIVE);
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_EMPTY);
    EXPECT(memtube_recv(rx, 10 * 1000000LL, &m), MEMTUBE_TIMEOUT);
    for (i = 0; i < 100; i++) {
        size_t len = payload((uint64_t)i, buf);
        if (i % 2) {
            EXPECT(memtube_reserve(tx, len, SECOND, &g), MEMTUBE_OK);
            memcpy(g.data, buf, len);
            EXPECT(memtube_commit(tx, len, (uint32_t)i), MEMTUBE_OK);
        } else {
            EXPECT(memtube_send(tx, buf, len, (uint32_t)i, SECOND), MEMTUBE_OK);
        }
        EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
        CHECK(is_payload((uint64_t)i, m.data, m.len, m.type_id));
    }
    EXPECT(memtube_send_staged(tx, "z", 1, 1), MEMTUBE_OK);
    EXPECT(memtube_publish(tx), MEMTUBE_OK);
    EXPECT(memtube_sender_set_line_padding(tx, true), MEMTUBE_OK);
    EXPECT(memtube_sender_set_nontemporal_threshold(tx, 1024), MEMTUBE_OK);
    EXPECT(memtube_sender_stats(tx, &st), MEMTUBE_OK);
    CHECK(st.messages_committed == 101);
    EXPECT(memtube_receiver_stats(rx, &st), MEMTUBE_OK);
    CHECK(st.messages_released <= 100); /* released lazily */
    /* The producer closes: the consumer drains, then CLOSED. */
    memtube_sender_free(tx);
    EXPECT(memtube_receiver_peer_state(rx, false, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_CLOSED);
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_OK);
    CHECK(m.len == 1 && m.data[0] == 'z');
    EXPECT(memtube_recv(rx, SECOND, &m), MEMTUBE_CLOSED);
    memtube_receiver_free(rx);
    /* Both roles closed: a new attach is refused, and a closed role is
     * not taken over (the stream ended). */
    EXPECT_FAIL(memtube_ring_attach_consumer(region, size, &rx), MEMTUBE_ROLE_TAKEN);
    EXPECT_FAIL(memtube_ring_take_over_producer(region, size, &tx2), MEMTUBE_CLOSED);
    EXPECT_FAIL(memtube_ring_take_over_consumer(region, size, &rx), MEMTUBE_CLOSED);
    CHECK(rx == NULL && tx2 == NULL);
    free(region);
}

int main(void) {
    test_basics();
    test_options();
    test_nulls();
    test_addresses();
    test_one_way();
    test_call_serve();
    test_split();
    test_sendrecv();
    test_cancel();
    test_listener();
    test_regions();
    return finish("unit");
}
