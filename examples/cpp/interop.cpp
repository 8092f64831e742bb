// The C++ twin of examples/interop.rs, over memtube.hpp: sends, receives,
// serves or calls the same deterministic sequence of messages, checking
// every byte (see interop.rs for the sequence and the output line). Sends go
// through zero-copy reservations (reserve, write in place, commit). Build:
//
//   cargo build -p memtube-ffi && c++ -std=c++17 -O2 -Ibindings/c/include
//       examples/cpp/interop.cpp target/debug/libmemtube.a -lpthread -ldl -lm -o interop-cpp
//   (one line)
//
//   interop-cpp (--listen ADDR | --connect ADDR) (--send N | --recv | --serve | --call N | --dump)
//               [--size S] [--capacity C] [--timeout SECS]
//
// --dump receives until the stream ends and prints every message, checking
// nothing: "msg TYPE HEX" ("-" for an empty payload), then "end closed", or
// "end KIND" and exit status 1 on any other error (KIND: the status name in
// lower case without MEMTUBE_, e.g. "peer_gone"); see interop.rs.
#include "memtube.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum class Role { None, Send, Recv, Serve, Call, Dump };

struct Args {
    std::string listen, connect;
    Role role = Role::None;
    uint64_t n = 0;
    std::size_t size = 256;
    uint32_t capacity = 1u << 16;
    std::chrono::nanoseconds timeout = std::chrono::seconds(10);
};

// Message `i`: `i` as u64 little-endian, then byte j = (i * 31 + j) % 256.
std::size_t message(uint64_t i, std::size_t size, uint8_t *buf) {
    std::size_t len = 8 + static_cast<std::size_t>((i * 7919) % (size - 7));
    for (std::size_t j = 0; j < 8; j++) buf[j] = static_cast<uint8_t>(i >> (8 * j));
    for (std::size_t j = 8; j < len; j++) buf[j] = static_cast<uint8_t>(i * 31 + j);
    return len;
}

struct Stream {
    uint64_t count = 0, bytes = 0, fnv = 0xcbf29ce484222325ULL;
    Clock::time_point start;
    void account(const uint8_t *p, std::size_t len) {
        if (count == 0) start = Clock::now();
        for (std::size_t k = 0; k < len; k++) {
            fnv ^= p[k];
            fnv *= 0x00000100000001b3ULL;
        }
        bytes += len;
        count++;
    }
};

// --dump: errors end with "end KIND" instead of "error: ...".
bool dumping = false;

// "end KIND": the status name in lower case without "MEMTUBE_".
void print_end(memtube::Status st) {
    std::string k = memtube::name(st);
    if (k.rfind("MEMTUBE_", 0) == 0) k.erase(0, 8);
    for (char &ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::printf("end %s\n", k.c_str());
}

[[noreturn]] void fail(const char *what, const memtube::Error &e) {
    if (dumping) {
        print_end(e.status);
        std::exit(1);
    }
    std::printf("error: %s: %s: %s\n", what, memtube::name(e.status), e.message.c_str());
    std::exit(1);
}

[[noreturn]] void differs(const char *what, uint64_t i) {
    std::printf("error: %s %" PRIu64 " differs\n", what, i);
    std::exit(1);
}

memtube::Connection open(const Args &a) {
    bool duplex = a.role == Role::Serve || a.role == Role::Call;
    bool sends = a.role == Role::Send, listening = !a.listen.empty();
    memtube::Options o;
    o.capacity(a.capacity).duplex(duplex).direction(
        sends == listening ? MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR
                           : MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER);
    if (!o.status()) fail("options", o.status().error());
    if (listening) {
        auto l = memtube::Listener::bind(a.listen, &o);
        if (!l) fail("listen", l.error());
        std::printf("listening\n");
        std::fflush(stdout);
        auto c = l->accept(a.timeout);
        if (!c) fail("accept", c.error());
        return std::move(*c);
    }
    auto until = Clock::now() + a.timeout;
    for (;;) {
        auto c = memtube::Connection::connect(a.connect, &o);
        if (c) return std::move(*c);
        if (c.status() != memtube::Status::NoListener || Clock::now() >= until)
            fail("connect", c.error());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

} // namespace

int main(int argc, char **argv) {
    Args a;
    int i = 1;
    for (; i < argc; i++) {
        std::string k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (k == "--recv") a.role = Role::Recv;
        else if (k == "--dump") a.role = Role::Dump;
        else if (k == "--serve") a.role = Role::Serve;
        else if (!v) break;
        else if (k == "--listen") a.listen = argv[++i];
        else if (k == "--connect") a.connect = argv[++i];
        else if (k == "--send") a.role = Role::Send, a.n = std::strtoull(argv[++i], nullptr, 10);
        else if (k == "--call") a.role = Role::Call, a.n = std::strtoull(argv[++i], nullptr, 10);
        else if (k == "--size") a.size = std::strtoull(argv[++i], nullptr, 10);
        else if (k == "--capacity") a.capacity = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        else if (k == "--timeout")
            a.timeout = std::chrono::nanoseconds(static_cast<int64_t>(std::atof(argv[++i]) * 1e9));
        else break;
    }
    if (i < argc || a.listen.empty() == a.connect.empty() || a.role == Role::None || a.size < 8) {
        std::printf("error: usage: %s (--listen ADDR | --connect ADDR) (--send N | --recv | "
                    "--serve | --call N | --dump) [--size S] [--capacity C] [--timeout SECS]\n",
                    argv[0]);
        return 1;
    }
    Stream s;
    std::vector<uint8_t> want(a.size);
    dumping = a.role == Role::Dump;
    {
        memtube::Connection c = open(a);
        switch (a.role) {
        case Role::Dump: {
            memtube::Receiver rx = c.receiver();
            for (;;) {
                auto m = rx.recv(a.timeout);
                if (!m) {
                    print_end(m.status());
                    return m.status() == memtube::Status::Closed ? 0 : 1;
                }
                std::printf("msg %" PRIu32 " ", m->type_id());
                for (uint8_t b : *m) std::printf("%02x", b);
                std::fputs(m->size() ? "\n" : "-\n", stdout);
            }
        }
        case Role::Send: {
            memtube::Sender tx = c.sender();
            for (uint64_t k = 0; k < a.n; k++) {
                // Zero copy: written in place, then committed.
                auto g = tx.reserve(a.size, a.timeout);
                if (!g) fail("reserve", g.error());
                std::size_t n = message(k, a.size, g->data());
                s.account(g->data(), n);
                if (auto r = tx.commit(n, static_cast<uint32_t>(k)); !r) fail("commit", r.error());
            }
            break;
        }
        case Role::Recv: {
            memtube::Receiver rx = c.receiver();
            for (;;) {
                auto m = rx.recv(a.timeout);
                if (!m) {
                    if (m.status() == memtube::Status::Closed) break;
                    fail("recv", m.error());
                }
                std::size_t n = message(s.count, a.size, want.data());
                if (m->type_id() != static_cast<uint32_t>(s.count) || m->size() != n ||
                    !std::equal(m->begin(), m->end(), want.begin()))
                    differs("message", s.count);
                s.account(m->data(), m->size());
            }
            break;
        }
        case Role::Serve: {
            bool bad = false;
            auto r = c.serve([&](uint32_t ty, memtube::Message req,
                                 memtube::Connection::Reply &reply) -> uint32_t {
                std::size_t n = message(s.count, a.size, want.data());
                if (ty != static_cast<uint32_t>(s.count) || req.size() != n ||
                    !std::equal(req.begin(), req.end(), want.begin()))
                    bad = true;
                s.account(req.data(), req.size());
                if (uint8_t *out = reply.extend(req.size()))
                    std::reverse_copy(req.begin(), req.end(), out);
                return ty + 1;
            });
            if (!r) fail("serve", r.error());
            if (bad) differs("request", s.count);
            break;
        }
        case Role::Call: {
            for (uint64_t k = 0; k < a.n; k++) {
                std::size_t n = message(k, a.size, want.data());
                auto r = c.call(static_cast<uint32_t>(k), want.data(), n, a.timeout);
                if (!r) fail("call", r.error());
                if (r->type_id() != static_cast<uint32_t>(k) + 1 || r->size() != n ||
                    !std::equal(r->begin(), r->end(), want.rbegin() + static_cast<long>(a.size - n)))
                    differs("reply", k);
                s.account(want.data(), n);
            }
            break;
        }
        case Role::None:
            break;
        }
    }
    double secs = s.count ? std::chrono::duration<double>(Clock::now() - s.start).count() : 0.0;
    std::printf("ok count=%" PRIu64 " bytes=%" PRIu64 " fnv=%016" PRIx64 " secs=%.6f\n", s.count,
                s.bytes, s.fnv, secs);
    return 0;
}
