// memtube.hpp from C++ (built as C++17 and C++20 by tests/c_abi.rs): results
// and statuses, move-only handles, zero-copy send and receive, call/serve,
// split handles on two threads, rings in caller memory, and the bindings'
// conformance image of docs/PROTOCOL.md (8.4), decoded here as every
// binding must decode it.
//
//   hpp PROTOCOL.md   prints "hpp: N checks, 0 failed" and exits 0 on success
#include "memtube.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;

static int checks, failed;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            failed++;                                                               \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed (%s)\n", __FILE__, __LINE__, \
                         #cond, memtube_last_error_message());                      \
        }                                                                           \
    } while (0)

static_assert(!std::is_copy_constructible_v<memtube::Connection>);
static_assert(!std::is_copy_constructible_v<memtube::Sender>);
static_assert(!std::is_copy_assignable_v<memtube::Receiver>);
static_assert(std::is_nothrow_move_constructible_v<memtube::Listener>);

// The version rule: the same ABI major, a library minor at least the header's.
static_assert(memtube::abi_compatible(MEMTUBE_ABI_VERSION));
static_assert(memtube::abi_compatible(MEMTUBE_ABI_VERSION + 1));        // a newer minor
static_assert(memtube::abi_compatible((MEMTUBE_ABI_VERSION_MAJOR << 16) | 0xffff));
static_assert(!memtube::abi_compatible(MEMTUBE_ABI_VERSION - 1));       // an older minor (or major)
static_assert(!memtube::abi_compatible(MEMTUBE_ABI_VERSION + (1u << 16))); // the next major
static_assert(!memtube::abi_compatible(((MEMTUBE_ABI_VERSION_MAJOR - 1u) << 16) | 0xffff));

static std::string fresh(const char *tag) {
    static int n;
    return "@memtube-hpp-" + std::to_string(getpid()) + "-" + std::to_string(n++) + "-" + tag;
}

/// A connected pair on one address: (listener side, connector side).
static std::pair<memtube::Connection, memtube::Connection> pair(const char *tag,
                                                                const memtube::Options &o) {
    std::string addr = fresh(tag);
    auto l = memtube::Listener::bind(addr, &o);
    CHECK(l.ok());
    memtube::Result<memtube::Connection> server = memtube::Error{};
    std::thread t([&] { server = l->accept(10s); });
    auto client = memtube::Connection::connect(addr, &o);
    t.join();
    CHECK(server.ok() && client.ok());
    return {std::move(*server), std::move(*client)};
}

static void results_and_options() {
    CHECK(memtube::abi_compatible()); // the library linked
    auto c = memtube::Connection::connect(fresh("nobody"));
    CHECK(!c && c.status() == memtube::Status::NoListener);
    CHECK(!c.error().message.empty());
    CHECK(std::strcmp(memtube::name(c.status()), "MEMTUBE_NO_LISTENER") == 0);
    memtube::Options o;
    o.capacity(1000).duplex(true);
    CHECK(o.status().status() == memtube::Status::InvalidArgument);
    memtube::Options ok;
    ok.capacity(4096).duplex(true).isolation(false).pure_spin(false).connect_timeout(1s);
    CHECK(ok.status().ok());
    memtube::CancelToken tok;
    CHECK(tok.cancel().ok());
}

static void one_way_zero_copy() {
    memtube::Options o;
    o.capacity(4096);
    auto [server, client] = pair("oneway", o);
    memtube::Sender tx = client.sender();
    memtube::Receiver rx = server.receiver();
    CHECK(tx && rx && !server.sender() && !client.receiver());
    CHECK(tx.max_payload() == 4096 / 2 - 8);
    // Zero copy: write in place, commit part of it.
    auto g = tx.reserve(64, 1s);
    CHECK(g.ok() && g->size() == 64);
    std::memcpy(g->data(), "in place", 8);
    // While the grant is outstanding the sender refuses to send.
    CHECK(tx.try_send("x", 1, 1).status() == memtube::Status::Busy);
    CHECK(tx.commit(8, 7).ok());
    CHECK(tx.send("copied", 6, 8, 1s).ok());
    auto g2 = tx.reserve(16, memtube::no_wait);
    CHECK(g2.ok() && tx.abort().ok());
    auto m = rx.recv(1s);
    CHECK(m && m->type_id() == 7 && m->str() == "in place");
    auto m2 = rx.try_recv();  // releases the first
    CHECK(m2 && m2->type_id() == 8 && m2->str() == "copied");
    CHECK(rx.release().ok());
    CHECK(rx.try_recv().status() == memtube::Status::Empty);
    // A private copy for an untrusted sender.
    CHECK(tx.send("private", 7, 9, 1s).ok());
    char small[3], big[16];
    CHECK(rx.recv_copy(small, sizeof small, 1s).status() == memtube::Status::TooLarge);
    auto cp = rx.recv_copy(big, sizeof big, 1s);
    CHECK(cp && cp->size == 7 && cp->type_id == 9 && std::memcmp(big, "private", 7) == 0);
    CHECK(rx.recv(10ms).status() == memtube::Status::Timeout);
    // A deadline already passed does not wait (as in the standard library).
    auto t0 = std::chrono::steady_clock::now();
    CHECK(rx.recv(-5s).status() == memtube::Status::Empty);
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    // A const handler compiles (the thunk takes its address as const).
    memtube::Connection none;
    if (none) {
        const auto echo = [](uint32_t ty, memtube::Message, memtube::Connection::Reply &) { return ty; };
        (void)none.serve(echo);
    }
    // Batches.
    for (uint32_t i = 0; i < 5; i++) CHECK(tx.send_staged(&i, sizeof i, i).ok());
    CHECK(rx.try_recv().status() == memtube::Status::Empty);
    CHECK(tx.publish().ok());
    for (uint32_t i = 0; i < 5; i++) {
        auto b = rx.recv(1s);
        CHECK(b && b->type_id() == i && b->size() == sizeof i);
    }
    auto st = tx.stats();
    CHECK(st && st->messages_committed == 8);
    CHECK(tx.peer_state(true) == memtube::PeerState::Alive);
    CHECK(client.peer_cred().pid == getpid());
    // The peer closes: every message, then Closed.
    CHECK(tx.send("last", 4, 1, 1s).ok());
    { memtube::Connection gone = std::move(client); }
    CHECK(rx.recv(1s)->str() == "last");
    CHECK(rx.recv(1s).status() == memtube::Status::Closed);
}

static void call_serve_and_split() {
    memtube::Options o;
    o.capacity(4096).duplex(true);
    auto [server, client] = pair("rpc", o);
    std::thread t([&s = server] {
        auto r = s.serve([](uint32_t ty, memtube::Message req, memtube::Connection::Reply &rep) {
            std::string up(req.str());
            for (char &ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            rep.write(up.data(), up.size());
            return ty + 1;
        });
        CHECK(r.ok());
    });
    CHECK(client.max_request() == 4096 / 2 - 16);
    for (int i = 0; i < 100; i++) {
        auto r = client.call(41, "hello", 5, 5s);
        CHECK(r && r->type_id() == 42 && r->str() == "HELLO");
    }
    { memtube::Connection done = std::move(client); }
    t.join();
    // Split: owned handles on two threads.
    auto [a, b] = pair("split", o);
    auto sa = std::move(a).split();
    auto sb = std::move(b).split();
    CHECK(sa && sb);
    auto [atx, arx] = std::move(*sa);
    auto [btx, brx] = std::move(*sb);
    CHECK(atx && arx && btx && brx && !a);
    std::thread echo([&] {
        for (int i = 0; i < 1000; i++) {
            auto m = brx.recv(5s);
            if (!m) break;
            CHECK(btx.send(m->data(), m->size(), m->type_id(), 5s).ok());
        }
    });
    for (uint32_t i = 0; i < 1000; i++) {
        CHECK(atx.send(&i, sizeof i, i, 5s).ok());
        auto m = arx.recv(5s);
        uint32_t got = 0;
        if (m && m->size() == sizeof got) std::memcpy(&got, m->data(), sizeof got);
        CHECK(m && m->type_id() == i && got == i);
    }
    echo.join();
    // sendrecv: lockstep against an echo that forwards from the ring.
    std::thread echo2([&] {
        auto m = brx.recv(5s);
        while (m) {
            bool sent = false;
            m = btx.sendrecv(m->data(), m->size(), m->type_id(), brx, 5s, &sent);
            if (!m) CHECK(sent && m.status() == memtube::Status::Closed);
        }
    });
    for (uint32_t i = 0; i < 500; i++) {
        bool sent = false;
        auto m = atx.sendrecv(&i, sizeof i, i + 7, arx, 5s, &sent);
        uint32_t got = 0;
        if (m && m->size() == sizeof got) std::memcpy(&got, m->data(), sizeof got);
        CHECK(sent && m && m->type_id() == i + 7 && got == i);
    }
    { memtube::Sender done = std::move(atx); }
    echo2.join();
}

/// 128-byte aligned, zeroed memory for a region.
struct Region {
    explicit Region(std::size_t n) : len(n), mem(static_cast<uint8_t *>(std::aligned_alloc(128, (n + 127) / 128 * 128))) {
        std::memset(mem, 0, n);
    }
    ~Region() { std::free(mem); }
    Region(const Region &) = delete;
    Region &operator=(const Region &) = delete;
    std::size_t len;
    uint8_t *mem;
};

static void rings_in_caller_memory() {
    CHECK(memtube::region_size(1024) == 1664);
    CHECK(memtube::region_size(1000) == 0);
    Region r(memtube::region_size(4096));
    CHECK(memtube::init_region(r.mem, r.len, 4096).ok());
    auto tx = memtube::Sender::attach(r.mem, r.len);
    auto rx = memtube::Receiver::attach(r.mem, r.len);
    CHECK(tx && rx);
    CHECK(memtube::Sender::attach(r.mem, r.len).status() == memtube::Status::RoleTaken);
    // This process holds both roles and runs: nothing to take over.
    CHECK(memtube::Sender::take_over(r.mem, r.len).status() == memtube::Status::RoleTaken);
    CHECK(memtube::Receiver::take_over(r.mem, r.len).status() == memtube::Status::RoleTaken);
    CHECK(tx->send("ring", 4, 3, 1s).ok());
    auto m = rx->recv(1s);
    CHECK(m && m->str() == "ring" && m->type_id() == 3);
    Region bad(4096);
    CHECK(memtube::Receiver::attach(bad.mem, bad.len).status() == memtube::Status::BadRegion);
}

/// The `hex name=NAME` block of docs/PROTOCOL.md: `OFFSET: BYTES` lines,
/// `#` comments, every byte not given zero.
static std::vector<uint8_t> vector_block(const char *doc, const std::string &name) {
    std::ifstream in(doc);
    std::string line;
    std::vector<uint8_t> out;
    bool inside = false;
    while (std::getline(in, line)) {
        if (!inside) {
            std::string head = "```hex name=" + name + " len=";
            if (line.rfind(head, 0) == 0) {
                out.assign(std::stoul(line.substr(head.size())), 0);
                inside = true;
            }
            continue;
        }
        if (line.rfind("```", 0) == 0) break;
        line = line.substr(0, line.find('#'));
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::size_t at = std::stoul(line.substr(0, colon), nullptr, 16);
        std::istringstream bytes(line.substr(colon + 1));
        std::string b;
        while (bytes >> b) out.at(at++) = static_cast<uint8_t>(std::stoul(b, nullptr, 16));
    }
    return out;
}

static void conformance(const char *doc) {
    std::vector<uint8_t> image = vector_block(doc, "ring-1k-conformance");
    CHECK(image.size() == 1664);
    Region r(image.size());
    std::memcpy(r.mem, image.data(), image.size());
    auto rx = memtube::Receiver::attach(r.mem, r.len);
    CHECK(rx.ok());
    if (!rx) return;
    const std::string third = "memtube conformance";
    struct { uint32_t ty; std::string payload; } want[] = {
        {7, "\xAA\xBB\xCC"}, {8, ""}, {0xFFFFFFFEu, third}, {1, std::string(40, '\x5A')}};
    for (auto &w : want) {
        auto m = rx->try_recv();
        CHECK(m && m->type_id() == w.ty && m->str() == w.payload);
    }
    CHECK(rx->try_recv().status() == memtube::Status::Closed);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s docs/PROTOCOL.md\n", argv[0]);
        return 2;
    }
    results_and_options();
    one_way_zero_copy();
    call_serve_and_split();
    rings_in_caller_memory();
    conformance(argv[1]);
    std::printf("hpp: %d checks, %d failed\n", checks, failed);
    return failed != 0;
}
