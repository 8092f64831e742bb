// memtube.hpp: a C++17 header-only wrapper over the memtube C ABI (memtube.h).
//
// Move-only RAII handles, results without exceptions, views as pointer +
// length (and std::span under C++20). Nothing here allocates per message:
// every call is one call into libmemtube.
//
//   memtube::Listener l = memtube::Listener::bind("@demo").value();
//   memtube::Connection c = l.accept().value();
//   memtube::Receiver rx = c.receiver();
//   while (auto m = rx.recv(std::chrono::seconds(1))) {
//       use(m->data(), m->size(), m->type_id());   // valid until the next recv
//   }
//
// Lifetimes are the C ABI's (see memtube.h and docs/c-abi.md):
// - a Message view is valid until the next recv on its receiver, an explicit
//   release(), or the receiver's destruction, whichever comes first;
// - a Grant is valid until commit() / abort() on its sender, or until the
//   sender handle is freed (an owned Sender's destruction, or its
//   connection's), which drops it; while it is outstanding, other calls on
//   that sender return Status::Busy. A grant belongs to the sender handle,
//   not to a borrowed C++ view of it: `c.sender()` may be called again to
//   commit;
// - Sender / Receiver taken from a Connection (connection.sender()) are
//   borrowed: valid while the connection lives and is not split. split()
//   gives owned ones that may move to other threads. No handle is thread-safe
//   (Send, not Sync in Rust terms): one thread at a time.
#ifndef MEMTUBE_HPP
#define MEMTUBE_HPP

#include "memtube.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <type_traits>
#include <string_view>
#include <utility>
#include <vector>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#endif

namespace memtube {

/// The status kinds of the C ABI.
enum class Status : int32_t {
    Ok = MEMTUBE_OK,
    Empty = MEMTUBE_EMPTY,
    Full = MEMTUBE_FULL,
    Timeout = MEMTUBE_TIMEOUT,
    Closed = MEMTUBE_CLOSED,
    PeerGone = MEMTUBE_PEER_GONE,
    Cancelled = MEMTUBE_CANCELLED,
    TooLarge = MEMTUBE_TOO_LARGE,
    ReplyTooLarge = MEMTUBE_REPLY_TOO_LARGE,
    Corrupt = MEMTUBE_CORRUPT,
    Handshake = MEMTUBE_HANDSHAKE,
    Protocol = MEMTUBE_PROTOCOL,
    PermissionDenied = MEMTUBE_PERMISSION_DENIED,
    AddrInUse = MEMTUBE_ADDR_IN_USE,
    NoListener = MEMTUBE_NO_LISTENER,
    NotASocket = MEMTUBE_NOT_A_SOCKET,
    NoSuchHandle = MEMTUBE_NO_SUCH_HANDLE,
    Unsupported = MEMTUBE_UNSUPPORTED,
    Os = MEMTUBE_OS,
    InvalidArgument = MEMTUBE_INVALID_ARGUMENT,
    Busy = MEMTUBE_BUSY,
    BadRegion = MEMTUBE_BAD_REGION,
    RoleTaken = MEMTUBE_ROLE_TAKEN,
    Panic = MEMTUBE_PANIC,
};

/// The status's name ("PEER_GONE", ...).
inline const char *name(Status s) noexcept { return memtube_status_name(static_cast<int32_t>(s)); }

/// Whether a library of ABI version `library` (what memtube_abi_version()
/// returns: major << 16 | minor) runs a program built against this header:
/// the same major, and a library minor at least the header's (a minor only
/// adds). With the major equal, `library >= MEMTUBE_ABI_VERSION` is the
/// minor's comparison.
constexpr bool abi_compatible(uint32_t library) noexcept {
    return (library >> 16) == MEMTUBE_ABI_VERSION_MAJOR && library >= MEMTUBE_ABI_VERSION;
}
/// The start-up check: whether the library loaded runs this program.
inline bool abi_compatible() noexcept { return abi_compatible(memtube_abi_version()); }

/// A failed call: its status and the thread's last error message, copied
/// when the call failed.
struct Error {
    Status status = Status::Ok;
    std::string message;
    /// errno for Status::Os, else 0.
    int32_t os_error = 0;

    static Error last(int32_t st) {
        Error e;
        e.status = static_cast<Status>(st);
        const char *m = memtube_last_error_message();
        e.message = m ? m : "";
        e.os_error = memtube_last_os_error();
        return e;
    }
};

/// A value or an Error (std::expected is C++23; this is the part memtube
/// needs). Test it with `if (r)`; `*r` / `r->` / value() on an error abort.
template <class T> class Result {
  public:
    Result(T v) : ok_(true), v_(std::move(v)) {}
    Result(Error e) : ok_(false), e_(std::move(e)) {}
    explicit operator bool() const noexcept { return ok_; }
    bool ok() const noexcept { return ok_; }
    Status status() const noexcept { return ok_ ? Status::Ok : e_.status; }
    const Error &error() const noexcept { return e_; }
    T &value() & { check(); return v_; }
    T &&value() && { check(); return std::move(v_); }
    T *operator->() { check(); return &v_; }
    T &operator*() & { check(); return v_; }
    T &&operator*() && { check(); return std::move(v_); }

  private:
    void check() const {
        if (!ok_) {
            std::fprintf(stderr, "memtube: value() of a failed result: %s: %s\n",
                         name(e_.status), e_.message.c_str());
            std::abort();
        }
    }
    bool ok_;
    T v_{};
    Error e_{};
};

/// The result of a call that returns nothing.
template <> class Result<void> {
  public:
    Result() = default;
    Result(Error e) : ok_(false), e_(std::move(e)) {}
    explicit operator bool() const noexcept { return ok_; }
    bool ok() const noexcept { return ok_; }
    Status status() const noexcept { return ok_ ? Status::Ok : e_.status; }
    const Error &error() const noexcept { return e_; }

  private:
    bool ok_ = true;
    Error e_{};
};

namespace detail {
inline Result<void> check(int32_t st) {
    if (st == MEMTUBE_OK) return {};
    return Error::last(st);
}
/// A timeout as the ABI's nanoseconds, as the standard library reads
/// timeouts: zero or negative does not wait (a deadline already passed),
/// the duration's maximum (`memtube::forever`) or anything beyond what
/// int64 nanoseconds hold blocks without a limit (the cast saturates; it
/// never overflows).
template <class Rep, class Period> int64_t ns(std::chrono::duration<Rep, Period> d) {
    using D = std::chrono::duration<Rep, Period>;
    if (d == D::max()) return MEMTUBE_FOREVER;
    if (d <= D::zero()) return 0;
    long double n = std::chrono::duration<long double, std::nano>(d).count();
    if (n >= 9.2e18L) return MEMTUBE_FOREVER;
    return static_cast<int64_t>(n);
}
} // namespace detail

/// Block without a time limit.
inline constexpr std::chrono::nanoseconds forever = std::chrono::nanoseconds::max();
/// Do not wait (the try_ variants of the Rust API).
inline constexpr std::chrono::nanoseconds no_wait{0};

/// A message in place in the ring: pointer + length + type id. A view, not
/// an owner: valid until the next recv on its receiver, release(), or the
/// receiver's destruction.
class Message {
  public:
    Message() = default;
    explicit Message(const memtube_message &m) : m_(m) {}
    const uint8_t *data() const noexcept { return m_.data; }
    std::size_t size() const noexcept { return m_.len; }
    bool empty() const noexcept { return m_.len == 0; }
    uint32_t type_id() const noexcept { return m_.type_id; }
    const uint8_t *begin() const noexcept { return m_.data; }
    const uint8_t *end() const noexcept { return m_.data + m_.len; }
    std::string_view str() const noexcept {
        return {reinterpret_cast<const char *>(m_.data), m_.len};
    }
#ifdef __cpp_lib_span
    std::span<const uint8_t> span() const noexcept { return {m_.data, m_.len}; }
#endif
  private:
    memtube_message m_{};
};

/// A reservation: write up to size() bytes at data(), then Sender::commit.
class Grant {
  public:
    Grant() = default;
    explicit Grant(const memtube_grant &g) : g_(g) {}
    uint8_t *data() const noexcept { return g_.data; }
    std::size_t size() const noexcept { return g_.len; }
    uint8_t *begin() const noexcept { return g_.data; }
    uint8_t *end() const noexcept { return g_.data + g_.len; }
#ifdef __cpp_lib_span
    std::span<uint8_t> span() const noexcept { return {g_.data, g_.len}; }
#endif
  private:
    memtube_grant g_{};
};

/// A cancellation flag for blocking calls (set it from any thread or a
/// signal handler: cancel() is one atomic store).
class CancelToken {
  public:
    CancelToken() : t_(memtube_cancel_token_new()) {}
    CancelToken(CancelToken &&o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    CancelToken &operator=(CancelToken &&o) noexcept {
        std::swap(t_, o.t_);
        return *this;
    }
    CancelToken(const CancelToken &) = delete;
    CancelToken &operator=(const CancelToken &) = delete;
    ~CancelToken() { memtube_cancel_token_free(t_); }
    Result<void> cancel() noexcept { return detail::check(memtube_cancel_token_cancel(t_)); }
    const memtube_cancel_token *get() const noexcept { return t_; }

  private:
    memtube_cancel_token *t_;
};

/// Connection options (a builder; every setter returns *this). Defaults are
/// the Rust API's: 64 KiB ring, one-way listener to connector, isolation on.
class Options {
  public:
    Options() : o_(memtube_options_new()) {}
    Options(Options &&o) noexcept : o_(std::exchange(o.o_, nullptr)), st_(std::move(o.st_)) {}
    Options &operator=(Options &&o) noexcept {
        std::swap(o_, o.o_);
        std::swap(st_, o.st_);
        return *this;
    }
    Options(const Options &) = delete;
    Options &operator=(const Options &) = delete;
    ~Options() { memtube_options_free(o_); }

    Options &capacity(uint32_t bytes) { return set(memtube_options_set_capacity(o_, bytes)); }
    Options &duplex(bool on) { return set(memtube_options_set_duplex(o_, on)); }
    Options &isolation(bool on) { return set(memtube_options_set_isolation(o_, on)); }
    Options &pure_spin(bool on) { return set(memtube_options_set_pure_spin(o_, on)); }
    Options &huge_pages(bool on) { return set(memtube_options_set_huge_pages(o_, on)); }
    Options &mlock(bool on) { return set(memtube_options_set_mlock(o_, on)); }
    Options &direction(int32_t d) { return set(memtube_options_set_direction(o_, d)); }
    template <class R, class P> Options &connect_timeout(std::chrono::duration<R, P> d) {
        return set(memtube_options_set_connect_timeout_ns(o_, detail::ns(d)));
    }
    template <class R, class P> Options &handshake_timeout(std::chrono::duration<R, P> d) {
        return set(memtube_options_set_handshake_timeout_ns(o_, detail::ns(d)));
    }
    /// Accept only these uids (an empty list: only our own uid, the default).
    Options &allow_uids(const std::vector<uint32_t> &uids) {
        return set(memtube_options_set_uid_policy(
            o_, uids.empty() ? MEMTUBE_UID_POLICY_SAME_UID : MEMTUBE_UID_POLICY_UIDS,
            uids.data(), uids.size()));
    }
    /// Accept any uid that can reach the socket.
    Options &allow_any_uid() {
        return set(memtube_options_set_uid_policy(o_, MEMTUBE_UID_POLICY_ANY, nullptr, 0));
    }
    Options &cancel_token(const CancelToken &t) {
        return set(memtube_options_set_cancel_token(o_, t.get()));
    }
    /// The first setter that failed, if any (a bad value: InvalidArgument).
    const Result<void> &status() const noexcept { return st_; }
    const memtube_options *get() const noexcept { return o_; }

  private:
    Options &set(int32_t st) {
        if (st_ && st != MEMTUBE_OK) st_ = Error::last(st);
        return *this;
    }
    memtube_options *o_;
    Result<void> st_;
};

/// Ring counters (may be stale).
using Stats = memtube_stats;
/// The peer's credentials when it connected.
using PeerCred = memtube_peer_cred;

/// What a probe of the peer found.
enum class PeerState : int32_t {
    Alive = MEMTUBE_PEER_STATE_ALIVE,
    Closed = MEMTUBE_PEER_STATE_CLOSED,
    Gone = MEMTUBE_PEER_STATE_GONE,
};

class Receiver;

/// The writing end of a ring. Owned (from Connection::split or
/// Sender::attach) or borrowed from a Connection.
class Sender {
  public:
    Sender() = default;
    Sender(Sender &&o) noexcept
        : tx_(std::exchange(o.tx_, nullptr)), owned_(std::exchange(o.owned_, false)) {}
    Sender &operator=(Sender &&o) noexcept {
        std::swap(tx_, o.tx_);
        std::swap(owned_, o.owned_);
        return *this;
    }
    Sender(const Sender &) = delete;
    Sender &operator=(const Sender &) = delete;
    ~Sender() {
        if (owned_) memtube_sender_free(tx_);
    }
    explicit operator bool() const noexcept { return tx_ != nullptr; }

    /// The producer of a ring in memory the caller mapped (`region`, `len`
    /// bytes, initialized with init_region). The memory must stay mapped
    /// until the Sender is destroyed.
    static Result<Sender> attach(void *region, std::size_t len) {
        memtube_sender *tx = nullptr;
        int32_t st = memtube_ring_attach_producer(region, len, &tx);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Sender(tx, true);
    }

    /// The producer role of a ring whose producer process died without
    /// closing (or a free role): every message it published is still
    /// delivered. RoleTaken while it runs; Closed once it closed cleanly.
    static Result<Sender> take_over(void *region, std::size_t len) {
        memtube_sender *tx = nullptr;
        int32_t st = memtube_ring_take_over_producer(region, len, &tx);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Sender(tx, true);
    }

    /// Copy `len` bytes in as one message and publish it, waiting at most
    /// `timeout` for room (no_wait: Full at once; forever: no limit).
    template <class R = int64_t, class P = std::nano>
    Result<void> send(const void *data, std::size_t len, uint32_t type_id,
                      std::chrono::duration<R, P> timeout = forever) {
        return detail::check(memtube_send(tx_, data, len, type_id, detail::ns(timeout)));
    }
    Result<void> try_send(const void *data, std::size_t len, uint32_t type_id) {
        return send(data, len, type_id, no_wait);
    }
    /// Send, then receive the next message on `rx`, in one call
    /// (memtube_sendrecv): a lockstep exchange, or an echo forwarding the
    /// message `rx` holds (`data` may point into it). `timeout` applies to
    /// each wait. On failure `*sent` (when given) says whether the message
    /// went out: if it did, retry with rx.recv(), not with sendrecv.
    template <class R = int64_t, class P = std::nano>
    Result<Message> sendrecv(const void *data, std::size_t len, uint32_t type_id, Receiver &rx,
                             std::chrono::duration<R, P> timeout = forever, bool *sent = nullptr);
    /// Stage a message (visible at the next publish or publishing send).
    Result<void> send_staged(const void *data, std::size_t len, uint32_t type_id) {
        return detail::check(memtube_send_staged(tx_, data, len, type_id));
    }
    Result<void> publish() { return detail::check(memtube_publish(tx_)); }

    /// Reserve `len` bytes in place (zero-copy send): write them, then commit.
    template <class R = int64_t, class P = std::nano>
    Result<Grant> reserve(std::size_t len, std::chrono::duration<R, P> timeout = forever) {
        memtube_grant g{};
        int32_t st = memtube_reserve(tx_, len, detail::ns(timeout), &g);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Grant(g);
    }
    /// Publish the first `used` bytes of the outstanding grant.
    Result<void> commit(std::size_t used, uint32_t type_id) {
        return detail::check(memtube_commit(tx_, used, type_id));
    }
    /// Drop the outstanding grant: nothing is sent.
    Result<void> abort() { return detail::check(memtube_abort(tx_)); }

    uint32_t max_payload() const {
        uint32_t n = 0;
        memtube_sender_max_payload(tx_, &n);
        return n;
    }
    Result<Stats> stats() const {
        Stats s{};
        int32_t st = memtube_sender_stats(tx_, &s);
        if (st != MEMTUBE_OK) return Error::last(st);
        return s;
    }
    /// The peer's state: cached (no system call), or probed now.
    PeerState peer_state(bool probe = false) const {
        int32_t s = MEMTUBE_PEER_STATE_ALIVE;
        memtube_sender_peer_state(tx_, probe, &s);
        return static_cast<PeerState>(s);
    }
    memtube_sender *get() const noexcept { return tx_; }

  private:
    friend class Connection;
    Sender(memtube_sender *tx, bool owned) : tx_(tx), owned_(owned) {}
    memtube_sender *tx_ = nullptr;
    bool owned_ = false;
};

/// The reading end of a ring. Owned or borrowed, as Sender.
class Receiver {
  public:
    Receiver() = default;
    Receiver(Receiver &&o) noexcept
        : rx_(std::exchange(o.rx_, nullptr)), owned_(std::exchange(o.owned_, false)) {}
    Receiver &operator=(Receiver &&o) noexcept {
        std::swap(rx_, o.rx_);
        std::swap(owned_, o.owned_);
        return *this;
    }
    Receiver(const Receiver &) = delete;
    Receiver &operator=(const Receiver &) = delete;
    ~Receiver() {
        if (owned_) memtube_receiver_free(rx_);
    }
    explicit operator bool() const noexcept { return rx_ != nullptr; }

    /// The consumer of a ring in memory the caller mapped (see Sender::attach).
    static Result<Receiver> attach(void *region, std::size_t len) {
        memtube_receiver *rx = nullptr;
        int32_t st = memtube_ring_attach_consumer(region, len, &rx);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Receiver(rx, true);
    }

    /// The consumer role of a ring whose consumer process died without
    /// closing (or a free role): delivery resumes at the first message it
    /// had not released (see Sender::take_over).
    static Result<Receiver> take_over(void *region, std::size_t len) {
        memtube_receiver *rx = nullptr;
        int32_t st = memtube_ring_take_over_consumer(region, len, &rx);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Receiver(rx, true);
    }

    /// The next message, waiting at most `timeout` (no_wait: Empty at once).
    /// Releases the message received before. Closed once the peer closed
    /// and every message was received; PeerGone if it died.
    template <class R = int64_t, class P = std::nano>
    Result<Message> recv(std::chrono::duration<R, P> timeout = forever) {
        memtube_message m{};
        int32_t st = memtube_recv(rx_, detail::ns(timeout), &m);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Message(m);
    }
    Result<Message> try_recv() { return recv(no_wait); }

    /// What recv_copy copied.
    struct Copied {
        std::size_t size;
        uint32_t type_id;
    };
    /// Receive the next message and copy it into `buf` (`cap` bytes), then
    /// release it: for a sender you do not trust (each byte is read from the
    /// ring once; the copy cannot change afterwards). TooLarge when `cap` is
    /// short: nothing copied, the message stays (call again with room).
    template <class R = int64_t, class P = std::nano>
    Result<Copied> recv_copy(void *buf, std::size_t cap,
                             std::chrono::duration<R, P> timeout = forever) {
        Copied c{0, 0};
        int32_t st = memtube_recv_copy(rx_, detail::ns(timeout), static_cast<uint8_t *>(buf), cap,
                                       &c.size, &c.type_id);
        if (st != MEMTUBE_OK) return Error::last(st);
        return c;
    }
    /// Release the message held (its view dies); no-op when none is.
    Result<void> release() { return detail::check(memtube_release(rx_)); }

    uint32_t max_payload() const {
        uint32_t n = 0;
        memtube_receiver_max_payload(rx_, &n);
        return n;
    }
    Result<Stats> stats() const {
        Stats s{};
        int32_t st = memtube_receiver_stats(rx_, &s);
        if (st != MEMTUBE_OK) return Error::last(st);
        return s;
    }
    PeerState peer_state(bool probe = false) const {
        int32_t s = MEMTUBE_PEER_STATE_ALIVE;
        memtube_receiver_peer_state(rx_, probe, &s);
        return static_cast<PeerState>(s);
    }
    memtube_receiver *get() const noexcept { return rx_; }

  private:
    friend class Connection;
    friend class Sender;
    Receiver(memtube_receiver *rx, bool owned) : rx_(rx), owned_(owned) {}
    memtube_receiver *rx_ = nullptr;
    bool owned_ = false;
};

template <class R, class P>
Result<Message> Sender::sendrecv(const void *data, std::size_t len, uint32_t type_id, Receiver &rx,
                                 std::chrono::duration<R, P> timeout, bool *sent) {
    memtube_message m{};
    bool out = false;
    int32_t st = memtube_sendrecv(tx_, data, len, type_id, rx.rx_, detail::ns(timeout), &m, &out);
    if (sent) *sent = out;
    if (st != MEMTUBE_OK) return Error::last(st);
    return Message(m);
}

/// Size, in bytes, of a region for a ring of `capacity` data bytes (0 if
/// `capacity` is not a valid one: a power of two from 64).
inline std::size_t region_size(uint32_t capacity) noexcept {
    return memtube_ring_region_size(capacity);
}
/// Lay a ring out in memory the caller mapped (128-byte aligned).
inline Result<void> init_region(void *region, std::size_t len, uint32_t capacity) {
    return detail::check(memtube_ring_init(region, len, capacity));
}

/// A connection: one ring (one-way) or two (duplex).
class Connection {
  public:
    Connection() = default;
    Connection(Connection &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    Connection &operator=(Connection &&o) noexcept {
        std::swap(c_, o.c_);
        return *this;
    }
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;
    ~Connection() { memtube_connection_free(c_); }
    explicit operator bool() const noexcept { return c_ != nullptr; }

    /// Connect to a listener at `addr` (a path, or "@name" on Linux).
    static Result<Connection> connect(const std::string &addr, const Options *opts = nullptr) {
        memtube_connection *c = nullptr;
        int32_t st = memtube_connect(addr.c_str(), opts ? opts->get() : nullptr, &c);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Connection(c);
    }

    /// This side's sender, borrowed (an empty Sender if this side only receives).
    Sender sender() { return Sender(memtube_connection_sender(c_), false); }
    /// This side's receiver, borrowed (empty if this side only sends).
    Receiver receiver() { return Receiver(memtube_connection_receiver(c_), false); }

    /// Owned handles, to move to other threads; the connection is consumed
    /// (empty afterwards), except on Busy (split from inside one of its own
    /// serve handlers), which leaves it as it was.
    Result<std::pair<Sender, Receiver>> split() && {
        memtube_sender *tx = nullptr;
        memtube_receiver *rx = nullptr;
        int32_t st = memtube_connection_split(c_, &tx, &rx);
        if (st == MEMTUBE_BUSY) return Error::last(st);
        c_ = nullptr;
        if (st != MEMTUBE_OK) return Error::last(st);
        return std::pair<Sender, Receiver>(Sender(tx, true), Receiver(rx, true));
    }

    PeerCred peer_cred() const {
        PeerCred p{};
        memtube_connection_peer_cred(c_, &p);
        return p;
    }
    PeerState peer_state(bool probe = false) const {
        int32_t s = MEMTUBE_PEER_STATE_ALIVE;
        memtube_connection_peer_state(c_, probe, &s);
        return static_cast<PeerState>(s);
    }

    /// Send a request (duplex) and wait for its reply: a view valid until the
    /// receiver's next recv / release, or the next call.
    template <class R = int64_t, class P = std::nano>
    Result<Message> call(uint32_t type_id, const void *req, std::size_t len,
                         std::chrono::duration<R, P> timeout = forever) {
        memtube_message m{};
        int32_t st = memtube_call(c_, type_id, req, len, detail::ns(timeout), &m);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Message(m);
    }
    uint32_t max_request() const {
        uint32_t n = 0;
        memtube_max_request(c_, &n);
        return n;
    }

    /// The reply buffer a handler fills.
    class Reply {
      public:
        explicit Reply(memtube_reply *r) : r_(r) {}
        /// Append bytes; false on failure (out of memory).
        bool write(const void *data, std::size_t len) {
            return memtube_reply_write(r_, data, len) == MEMTUBE_OK;
        }
        /// `n` more bytes to fill in place (nullptr: out of memory).
        uint8_t *extend(std::size_t n) { return memtube_reply_extend(r_, n); }

      private:
        memtube_reply *r_;
    };

    /// Serve one request: `h(type_id, Message request, Reply &reply) -> uint32_t`
    /// returns the reply's type id. `h` must not throw (the call crosses C).
    template <class H, class R = int64_t, class P = std::nano>
    Result<void> serve_one(H &&h, std::chrono::duration<R, P> timeout = forever) {
        return detail::check(memtube_serve_one(c_, detail::ns(timeout), &thunk<H>, ctx(h)));
    }
    /// Serve until the peer closes (Ok) or an error.
    template <class H> Result<void> serve(H &&h) {
        return detail::check(memtube_serve(c_, &thunk<H>, ctx(h)));
    }
    memtube_connection *get() const noexcept { return c_; }

  private:
    friend class Listener;
    explicit Connection(memtube_connection *c) : c_(c) {}
    /// The handler as the C ABI's context pointer (const handlers and
    /// types with an overloaded `operator&` included).
    template <class H> static void *ctx(H &h) noexcept {
        return const_cast<void *>(static_cast<const void *>(std::addressof(h)));
    }
    template <class H>
    static uint32_t thunk(void *ctx, uint32_t type_id, const uint8_t *req, std::size_t len,
                          memtube_reply *reply) noexcept {
        memtube_message m{req, len, type_id};
        Reply r(reply);
        return (*static_cast<std::remove_reference_t<H> *>(ctx))(type_id, Message(m), r);
    }
    memtube_connection *c_ = nullptr;
};

/// A listening socket.
class Listener {
  public:
    Listener() = default;
    Listener(Listener &&o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
    Listener &operator=(Listener &&o) noexcept {
        std::swap(l_, o.l_);
        return *this;
    }
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;
    ~Listener() { memtube_listener_free(l_); }
    explicit operator bool() const noexcept { return l_ != nullptr; }

    /// Listen on `addr` (a path, or "@name" on Linux).
    static Result<Listener> bind(const std::string &addr, const Options *opts = nullptr) {
        memtube_listener *l = nullptr;
        int32_t st = memtube_listen(addr.c_str(), opts ? opts->get() : nullptr, &l);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Listener(l);
    }

    /// Accept one connection, waiting at most `timeout`, with the listener's
    /// options (or `opts`).
    template <class R = int64_t, class P = std::nano>
    Result<Connection> accept(std::chrono::duration<R, P> timeout = forever,
                              const Options *opts = nullptr) {
        memtube_connection *c = nullptr;
        int32_t st =
            memtube_listener_accept(l_, opts ? opts->get() : nullptr, detail::ns(timeout), &c);
        if (st != MEMTUBE_OK) return Error::last(st);
        return Connection(c);
    }
    /// The socket's descriptor, to wait for a connection with poll().
    int fd() const { return memtube_listener_fd(l_); }
    memtube_listener *get() const noexcept { return l_; }

  private:
    explicit Listener(memtube_listener *l) : l_(l) {}
    memtube_listener *l_ = nullptr;
};

} // namespace memtube

#endif // MEMTUBE_HPP
