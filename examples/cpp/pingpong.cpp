// Round-trip latency between two processes over memtube.hpp, next to the
// hardware floor: examples/pingpong.rs's 32-byte measurement, from C++.
//
// Build (from the repository root, one line), then run:
//
//   cargo build --release -p memtube-ffi && c++ -std=c++17 -O2 -Ibindings/c/include examples/cpp/pingpong.cpp target/release/libmemtube.a -lpthread -ldl -lm -o pingpong-cpp
//   ./pingpong-cpp            # about 6 s;  ./pingpong-cpp --quick: about 1.5 s
//
// The program forks its echo process (before any memtube object exists) and
// pins the two to two CPUs. For each case (pure-spin; default; pure-spin
// without isolation) the main process accepts one duplex connection and
// alternates blocks of 1000 floor round trips (one 64-bit word in a 128-byte
// line of a shared page: main stores 2s+1, echo answers 2s+2) with blocks of
// 1000 ring round trips (main sends 32 bytes, the first 8 a sequence number;
// the echo receives them in place and sends them back from the ring; main
// receives and checks them). Every sample is one round trip between two
// clock reads; the first of each block is not recorded. p50/floor divides by
// the p50 of the floor blocks of the same case.
#include "memtube.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sched.h>
#include <string>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t BLOCK = 1000;
constexpr std::size_t LEN = 32;
constexpr uint32_t CAP = 16 * 1024;
/// Stored in the floor line instead of a request: the case is over.
constexpr uint64_t STOP = ~uint64_t{0};
const auto TIMEOUT = std::chrono::seconds(10);

struct Case {
    const char *name;
    bool pure_spin, isolation;
};
constexpr Case CASES[] = {
    {"32 B pure-spin", true, true},
    {"32 B default", false, true},
    {"32 B no-isol", true, false},
};

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

[[noreturn]] void fail(const char *what, const memtube::Error &e) {
    std::fprintf(stderr, "pingpong-cpp: %s: %s: %s\n", what, memtube::name(e.status),
                 e.message.c_str());
    std::exit(1);
}

bool pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return cpu >= 0 && sched_setaffinity(0, sizeof set, &set) == 0;
}

memtube::Options options(const Case &c) {
    memtube::Options o;
    o.capacity(CAP).duplex(true).pure_spin(c.pure_spin).isolation(c.isolation);
    return o;
}

// ------------------------------------------------------------------ echo

/// Answer a block of floor round trips; false when the main process
/// stored STOP instead (the case is over).
bool echo_floor(std::atomic<uint64_t> &line, uint64_t &last) {
    for (std::size_t k = 0; k < BLOCK; k++) {
        uint64_t v;
        auto since = Clock::now();
        while ((v = line.load(std::memory_order_acquire)) == last || (v & 1) == 0) {
            relax();
            if (Clock::now() - since > TIMEOUT) std::exit(3);
        }
        if (v == STOP) return false;
        line.store(v + 1, std::memory_order_release);
        last = v + 1;
    }
    return true;
}

int echo(const std::string &addr, std::atomic<uint64_t> *const *lines, int cpu) {
    pin(cpu);
    for (std::size_t i = 0; i < std::size(CASES); i++) {
        memtube::Options o = options(CASES[i]);
        auto conn = memtube::Connection::connect(addr, &o);
        for (auto until = Clock::now() + TIMEOUT;
             !conn && conn.status() == memtube::Status::NoListener && Clock::now() < until;)
            conn = memtube::Connection::connect(addr, &o);
        if (!conn) fail("echo: connect", conn.error());
        memtube::Sender tx = conn->sender();
        memtube::Receiver rx = conn->receiver();
        uint64_t last = 0;
        while (echo_floor(*lines[i], last)) {
            for (std::size_t k = 0; k < BLOCK; k++) {
                auto m = rx.recv(TIMEOUT);
                if (!m) fail("echo: recv", m.error());
                // Back from the ring, in place: one copy, ring to ring.
                if (auto r = tx.send(m->data(), m->size(), m->type_id()); !r)
                    fail("echo: send", r.error());
            }
        }
    }
    return 0;
}

// ------------------------------------------------------------------ main

struct Row {
    std::vector<uint64_t> ring, floor;
};

uint64_t pct(std::vector<uint64_t> &v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

Row measure(memtube::Connection &conn, std::atomic<uint64_t> &line, double seconds) {
    Row row;
    memtube::Sender tx = conn.sender();
    memtube::Receiver rx = conn.receiver();
    uint8_t buf[LEN] = {};
    uint64_t seq = 0, fseq = 0;
    auto until = Clock::now() + std::chrono::duration<double>(seconds);
    do {
        for (std::size_t k = 0; k < BLOCK; k++) {
            uint64_t req = 2 * ++fseq + 1;
            auto t0 = Clock::now();
            line.store(req, std::memory_order_release);
            while (line.load(std::memory_order_acquire) != req + 1) relax();
            auto t1 = Clock::now();
            if (k) row.floor.push_back(static_cast<uint64_t>((t1 - t0).count()));
        }
        for (std::size_t k = 0; k < BLOCK; k++) {
            ++seq;
            std::memcpy(buf, &seq, sizeof seq);
            auto t0 = Clock::now();
            if (auto r = tx.send(buf, LEN, 1); !r) fail("send", r.error());
            auto m = rx.recv(TIMEOUT);
            auto t1 = Clock::now();
            uint64_t got = 0;
            if (!m) fail("recv", m.error());
            if (m->size() == LEN) std::memcpy(&got, m->data(), sizeof got);
            if (m->size() != LEN || got != seq || m->type_id() != 1) {
                std::fprintf(stderr, "pingpong-cpp: echo mismatch at %" PRIu64 "\n", seq);
                std::exit(1);
            }
            if (k) row.ring.push_back(static_cast<uint64_t>((t1 - t0).count()));
        }
    } while (Clock::now() < until);
    line.store(STOP, std::memory_order_release);
    return row;
}

} // namespace

int main(int argc, char **argv) {
    bool quick = argc == 2 && std::strcmp(argv[1], "--quick") == 0;
    if (argc > 2 || (argc == 2 && !quick)) {
        std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
        return 2;
    }
    double seconds = quick ? 0.4 : 2.0;
    // The floor lines, one per case, shared with the echo process.
    void *page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 1;
    static_assert(sizeof(std::atomic<uint64_t>) == 8);
    for (std::size_t i = 0; i < std::size(CASES); i++)
        new (static_cast<char *>(page) + 128 * i) std::atomic<uint64_t>(0);
    auto line = [&](std::size_t i) -> std::atomic<uint64_t> & {
        return *reinterpret_cast<std::atomic<uint64_t> *>(static_cast<char *>(page) + 128 * i);
    };
    // Two CPUs this process may use.
    cpu_set_t allowed;
    int cpus[2] = {-1, -1}, n = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
            if (CPU_ISSET(c, &allowed)) cpus[n++] = c;
    std::string addr = "@memtube-pingpong-cpp-" + std::to_string(getpid());
    memtube::Options first = options(CASES[0]);
    auto listener = memtube::Listener::bind(addr, &first);
    if (!listener) fail("listen", listener.error());
    pid_t child = fork();
    if (child == 0) {
        std::atomic<uint64_t> *ls[std::size(CASES)];
        for (std::size_t i = 0; i < std::size(CASES); i++) ls[i] = &line(i);
        // The child's copy of the listener is its parent's: it is left
        // alone (_Exit runs no destructors; dropping it would do nothing).
        std::_Exit(echo(addr, ls, cpus[1]));
    }
    bool pinned = pin(cpus[0]) && cpus[1] >= 0;
    std::printf("memtube pingpong (C++ over memtube.hpp, memtube %s): two-process round trips "
                "over a duplex connection, %zu-byte messages, ns\n", memtube_version(), LEN);
    std::printf("pinning: %s\n", pinned ? "main and echo on two CPUs" : "not pinned");
    std::printf("%-18s %9s %8s %8s %8s %8s %9s\n", "case", "samples", "p50", "p99", "p99.9",
                "floor", "p50/floor");
    for (std::size_t i = 0; i < std::size(CASES); i++) {
        memtube::Options o = options(CASES[i]);
        auto conn = listener->accept(TIMEOUT, &o);
        if (!conn) fail("accept", conn.error());
        Row r = measure(*conn, line(i), seconds);
        uint64_t p50 = pct(r.ring, 0.5), p99 = pct(r.ring, 0.99), p999 = pct(r.ring, 0.999);
        uint64_t f50 = pct(r.floor, 0.5);
        std::printf("%-18s %9zu %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8.2fx\n",
                    CASES[i].name, r.ring.size(), p50, p99, p999, f50,
                    f50 ? static_cast<double>(p50) / static_cast<double>(f50) : 0.0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "pingpong-cpp: the echo process failed (%#x)\n", status);
        return 1;
    }
    return 0;
}
