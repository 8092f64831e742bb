/* The bindings' conformance image of docs/PROTOCOL.md (8.4) from plain C,
 * through the bring-your-own-region API. The `ring-1k-conformance` block is
 * read from the document itself (as tests/cpp/hpp.cpp reads it), copied
 * into zeroed, 128-byte-aligned memory of this program's own, and a
 * consumer attached over the copy (memtube_ring_attach_consumer) must
 * receive exactly the four messages the document lists, then CLOSED: once
 * in place (memtube_recv), once on a fresh copy copied out
 * (memtube_recv_copy).
 *
 *   conformance PROTOCOL.md   prints "conformance: N passed, M failed"
 *                             and exits 0 only when M is 0
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#define IMAGE_LEN 1664

struct want {
    uint32_t type_id;
    size_t len;
    const uint8_t *bytes;
};

static const uint8_t first[] = {0xaa, 0xbb, 0xcc};
static const char third[] = "memtube conformance";
static uint8_t fourth[40];

/* The `hex name=NAME len=N` block of `doc` into `out` (`cap` bytes, zeroed
 * first; every byte the block does not give stays zero): `OFFSET: BYTES`
 * lines, `#` comments. Returns N, or 0 when the block is missing, longer
 * than `cap`, unterminated or writes past N. */
static size_t vector_block(const char *doc, const char *name, uint8_t *out, size_t cap) {
    char line[512], head[128];
    FILE *f = fopen(doc, "r");
    size_t len = 0, at;
    int inside = 0;
    if (!f) return 0;
    snprintf(head, sizeof head, "```hex name=%s len=", name);
    memset(out, 0, cap);
    while (fgets(line, sizeof line, f)) {
        char *p, *end;
        if (!inside) {
            if (strncmp(line, head, strlen(head)) == 0) {
                len = strtoul(line + strlen(head), NULL, 10);
                if (len == 0 || len > cap) break;
                inside = 1;
            }
            continue;
        }
        if (strncmp(line, "```", 3) == 0) {
            fclose(f);
            return len;
        }
        if ((p = strchr(line, '#')) != NULL) *p = '\0';
        at = strtoul(line, &end, 16);
        if (end == line || *end != ':') continue; /* a line without bytes */
        for (p = end + 1;; p = end) {
            unsigned long b = strtoul(p, &end, 16);
            if (end == p) break;
            if (at >= len || b > 0xff) {
                fclose(f);
                return 0;
            }
            out[at++] = (uint8_t)b;
        }
    }
    fclose(f);
    return 0;
}

/* Attach a consumer over a fresh aligned copy of `image` and receive the
 * four messages and CLOSED, in place or (`copy_out`) through
 * memtube_recv_copy. */
static void decode(const uint8_t *image, const struct want *want, int copy_out) {
    void *mem = NULL;
    memtube_receiver *rx = NULL;
    memtube_message m;
    memtube_stats st;
    int32_t state = -1;
    int i;
    if (posix_memalign(&mem, 128, IMAGE_LEN) != 0) mem = NULL;
    CHECK(mem != NULL);
    if (mem == NULL) return;
    memcpy(mem, image, IMAGE_LEN);
    EXPECT(memtube_ring_attach_consumer(mem, IMAGE_LEN, &rx), MEMTUBE_OK);
    if (rx == NULL) {
        free(mem);
        return;
    }
    for (i = 0; i < 4; i++) {
        const struct want *w = &want[i];
        if (copy_out) {
            uint8_t buf[64];
            size_t len = 0;
            uint32_t ty = 0;
            int32_t s = memtube_recv_copy(rx, 0, buf, sizeof buf, &len, &ty);
            EXPECT(s, MEMTUBE_OK);
            CHECK(s == MEMTUBE_OK && ty == w->type_id && len == w->len &&
                  (len == 0 || memcmp(buf, w->bytes, len) == 0));
        } else {
            int32_t s = memtube_recv(rx, 0, &m);
            EXPECT(s, MEMTUBE_OK);
            CHECK(s == MEMTUBE_OK && m.type_id == w->type_id && m.len == w->len &&
                  (m.len == 0 || memcmp(m.data, w->bytes, m.len) == 0));
        }
    }
    EXPECT(memtube_recv(rx, 0, &m), MEMTUBE_CLOSED);
    EXPECT(memtube_recv(rx, SECOND / 100, &m), MEMTUBE_CLOSED); /* final */
    /* The producer's counters and state, as the image holds them. */
    EXPECT(memtube_receiver_stats(rx, &st), MEMTUBE_OK);
    CHECK(st.messages_committed == 4 && st.bytes_committed == 62);
    EXPECT(memtube_receiver_peer_state(rx, false, &state), MEMTUBE_OK);
    CHECK(state == MEMTUBE_PEER_STATE_CLOSED);
    memtube_receiver_free(rx);
    free(mem);
}

int main(int argc, char **argv) {
    static uint8_t image[IMAGE_LEN];
    struct want want[4];
    if (argc != 2) {
        fprintf(stderr, "usage: %s docs/PROTOCOL.md\n", argv[0]);
        return 2;
    }
    memset(fourth, 0x5a, sizeof fourth);
    want[0].type_id = 7, want[0].len = sizeof first, want[0].bytes = first;
    want[1].type_id = 8, want[1].len = 0, want[1].bytes = NULL;
    want[2].type_id = 0xfffffffeu, want[2].len = strlen(third), want[2].bytes = (const uint8_t *)third;
    want[3].type_id = 1, want[3].len = sizeof fourth, want[3].bytes = fourth;
    CHECK(vector_block(argv[1], "ring-1k-conformance", image, sizeof image) == IMAGE_LEN);
    CHECK(memtube_ring_region_size(1024) == IMAGE_LEN);
    decode(image, want, 0);
    decode(image, want, 1);
    return finish("conformance");
}
