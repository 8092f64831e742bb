//! Connection options: shape of the rings, regions, policy, timeouts.

use crate::cancel::CancelToken;
use crate::peer::UidPolicy;
use crate::region::Backend;
use std::time::Duration;

/// Which side writes the ring of a one-way connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The connecting process sends, the listener receives (the default).
    #[default]
    ConnectorToListener,
    /// The listener sends, the connecting process receives.
    ListenerToConnector,
}

/// How to connect. Both sides pass their own; the listener's decides the
/// rings (capacity, pure spin, huge pages, isolation), and the connector
/// refuses a handshake whose direction or duplex mode differs from its own.
///
/// ```
/// use memtube_posix::{Direction, Options, UidPolicy};
/// use std::time::Duration;
/// let o = Options::new()
///     .capacity(1 << 16)
///     .direction(Direction::ListenerToConnector)
///     .pure_spin(true)
///     .uid_policy(UidPolicy::Any)
///     .handshake_timeout(Duration::from_secs(1));
/// assert_eq!(o.get_capacity(), 1 << 16);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub(crate) direction: Direction,
    pub(crate) capacity: u32,
    pub(crate) max_capacity: u32,
    pub(crate) duplex: bool,
    pub(crate) pure_spin: bool,
    pub(crate) huge_pages: bool,
    pub(crate) mlock: bool,
    pub(crate) isolation: bool,
    /// `None`: the system's [`Os::DEFAULT_BACKEND`](crate::Os::DEFAULT_BACKEND).
    pub(crate) backend: Option<Backend>,
    pub(crate) uid_policy: UidPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) cancel: Option<CancelToken>,
    pub(crate) monitorable: bool,
    pub(crate) readiness: bool,
}

/// See [`Options::max_capacity`].
pub const DEFAULT_MAX_CAPACITY: u32 = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Options {
            direction: Direction::default(),
            capacity: 1 << 16,
            max_capacity: DEFAULT_MAX_CAPACITY,
            duplex: false,
            pure_spin: false,
            huge_pages: false,
            mlock: false,
            isolation: true,
            backend: None,
            uid_policy: UidPolicy::SameUid,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            cancel: None,
            monitorable: true,
            readiness: false,
        }
    }
}

impl Options {
    /// The defaults: connector sends, 64 KiB rings, spin-then-sleep waiting,
    /// isolation on, same uid only, 5 s connect and handshake timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Which side sends (ignored in duplex mode, where both do).
    pub fn direction(mut self, d: Direction) -> Self {
        self.direction = d;
        self
    }

    /// Data-area bytes of each ring: a power of two in
    /// `memtube_ring::MIN_CAPACITY..=MAX_CAPACITY`; the largest message is
    /// `memtube_ring::max_payload(capacity)` (half, minus 8).
    ///
    /// Round trips need no small ring to reuse cache lines: duplex
    /// connections without isolation wrap early while the ring is nearly
    /// empty ([`Sender::set_early_wrap`](crate::Sender::set_early_wrap)),
    /// and keep the whole capacity for bursts.
    pub fn capacity(mut self, bytes: u32) -> Self {
        self.capacity = bytes;
        self
    }

    /// The capacity set.
    pub fn get_capacity(&self) -> u32 {
        self.capacity
    }

    /// The largest ring capacity a connector accepts from a listener
    /// (default 64 MiB; the listener's own `capacity` counts too: the bound
    /// is the larger of the two). The listener decides the rings, so without
    /// a bound a hostile listener could make a connector map and fault in
    /// up to 2 GiB per ring; a handshake above it is refused with
    /// [`HandshakeFailure::CapacityTooLarge`](crate::HandshakeFailure::CapacityTooLarge)
    /// before anything is mapped.
    pub fn max_capacity(mut self, bytes: u32) -> Self {
        self.max_capacity = bytes;
        self
    }

    /// The largest ring capacity a connector accepts: the larger of
    /// [`max_capacity`](Self::max_capacity) and [`capacity`](Self::capacity).
    pub fn get_max_capacity(&self) -> u32 {
        self.max_capacity.max(self.capacity)
    }

    /// Two rings, one each way: request/reply with
    /// [`Connection::call`](crate::Connection::call) and
    /// [`Connection::serve`](crate::Connection::serve).
    pub fn duplex(mut self, yes: bool) -> Self {
        self.duplex = yes;
        self
    }

    /// Blocked handles only spin, never sleep (lowest latency, burns a core each).
    pub fn pure_spin(mut self, yes: bool) -> Self {
        self.pure_spin = yes;
        self
    }

    /// Back the data regions with huge pages (`MFD_HUGETLB`, 2 MiB). Fails
    /// with [`Error::HugePagesUnavailable`](crate::Error::HugePagesUnavailable)
    /// when the kernel has none reserved; there is no silent fallback.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }

    /// Readiness descriptors for event loops (off by default): each
    /// [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver) can then
    /// give a descriptor that becomes readable when it may be ready
    /// ([`Receiver::readiness_fd`](crate::Receiver::readiness_fd)), for
    /// epoll, kqueue or an async runtime (the `memtube` crate's `tokio`
    /// feature). It costs two more descriptors per ring on each side, and
    /// each wake-up of a sleeping peer one more system call (a byte on the
    /// wake channel, docs/PROTOCOL.md 3.7); nothing while both sides keep
    /// pace. Both sides must pass the same value.
    pub fn readiness(mut self, yes: bool) -> Self {
        self.readiness = yes;
        self
    }

    /// Keep a descriptor of each of this side's ring regions open while the
    /// connection lives (the default), so that a monitor run by the same
    /// user (`memtube top`, `memtube stat`) can find and map the rings
    /// read-only through `/proc/<pid>/fd`: the kernel does not let an
    /// unprivileged process open another one's mappings otherwise. Costs one
    /// descriptor per region: 2 per duplex connection, 4 with isolation.
    /// Off: the rings are visible to a monitor run by root only.
    pub fn monitorable(mut self, yes: bool) -> Self {
        self.monitorable = yes;
        self
    }

    /// `mlock` this side's mappings (needs `RLIMIT_MEMLOCK` room).
    pub fn mlock(mut self, yes: bool) -> Self {
        self.mlock = yes;
        self
    }

    /// Kernel-enforced isolation (the default): ring-core's split layout;
    /// each side maps writable only the pages it writes, and the peer's pages
    /// read-only, so a stray write by either side into the other's pages
    /// faults. Against a *hostile* peer the protection is one-way: the
    /// listener creates every memfd, seals the pages it writes with
    /// `F_SEAL_FUTURE_WRITE` (the connector cannot map them writable), but
    /// cannot seal the pages the connector writes (the connector must map
    /// those writable), so a hostile listener could still map them writable.
    /// ring-core validates whatever a peer writes either way.
    ///
    /// Its cost is the read-only mapping: round trips a few to some tens of
    /// percent slower, the most for messages of hundreds of bytes (without
    /// isolation duplex senders also wrap early:
    /// [`Sender::set_early_wrap`](crate::Sender::set_early_wrap)).
    /// Measurements: docs/design.md, "Isolation".
    pub fn isolation(mut self, yes: bool) -> Self {
        self.isolation = yes;
        self
    }

    /// Where the regions come from: [`Backend::Memfd`] (Linux, the default
    /// there) or [`Backend::PosixShm`] (`shm_open`; the default and only one
    /// on macOS). Both sides must choose the same. The socket follows it:
    /// `SOCK_SEQPACKET` with memfds, `SOCK_STREAM` with shm (macOS has no
    /// Unix `SOCK_SEQPACKET`), so on Linux `PosixShm` runs exactly macOS's
    /// code path except the wait. The listener's socket type is decided by
    /// the options given to `listen`.
    pub fn backend(mut self, b: Backend) -> Self {
        self.backend = Some(b);
        self
    }

    /// The backend set (`None`: the system's default, [`Os::DEFAULT_BACKEND`](crate::Os::DEFAULT_BACKEND)).
    pub fn get_backend(&self) -> Option<Backend> {
        self.backend
    }

    /// The backend used on the system `O`.
    pub(crate) fn backend_for<O: crate::Os>(&self) -> Backend {
        self.backend.unwrap_or(O::DEFAULT_BACKEND)
    }

    /// Who may be at the other end (checked with `SO_PEERCRED` on Linux,
    /// `getpeereid` on macOS).
    pub fn uid_policy(mut self, p: UidPolicy) -> Self {
        self.uid_policy = p;
        self
    }

    /// How long `connect` waits for a listener's backlog to have room.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long either side waits for the other's handshake message.
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Stop blocking calls with `token`: once it is cancelled, `accept` of a
    /// listener made with these options and `connect` with them (each
    /// including its wait for the peer's handshake), and every blocking call
    /// of the connections made with them (`recv`, `send`, `reserve`, `call`,
    /// `serve`, ...), return [`Error::Cancelled`](crate::Error::Cancelled)
    /// within about [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) instead of
    /// waiting on. A cancelled call took nothing and sent nothing partial:
    /// the connection stays consistent, calls that need not wait go on
    /// working, and dropping it is a clean close; every later call that
    /// would wait returns `Cancelled` again (a token cannot be reset). See
    /// [`CancelToken`].
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }
}
