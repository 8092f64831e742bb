//! Async receivers and senders for tokio (feature `tokio`).
//!
//! A connection made with [`Options::readiness`](crate::Options::readiness)
//! gives each handle a descriptor that becomes readable when the handle may
//! be ready ([`Receiver::readiness_fd`](crate::Receiver::readiness_fd)).
//! [`AsyncReceiver`] and [`AsyncSender`] wrap a handle and await that
//! descriptor through tokio's reactor instead of blocking a thread. While
//! both sides keep pace nothing changes: a call first spins the handle's
//! spin budget, as the blocking calls do, and the descriptor is signalled
//! (in the peer, one system call beside the futex wake it makes anyway)
//! only after the handle announced that it waits on it.
//!
//! Cancellation: every future here may be dropped at any await point
//! without losing anything. A receive takes its message only when it
//! returns it; a send or reserve writes only when it returns. A dropped
//! future may leave its announcement in place, which costs the peer at most
//! one needless wake-up; the next call makes a new one.
//!
//! Liveness: the descriptor also becomes readable when the peer process
//! exits (its end of the wake channel closes), and a wait probes the peer's
//! socket at least every [`LIVENESS_SLICE`], so a
//! dead peer is reported ([`Error::PeerGone`]) as by the blocking calls.
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use memtube::tokio::{AsyncReceiver, AsyncSender};
//! use memtube::{connect, listen, Options};
//! use std::time::Duration;
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! let addr = format!("@memtube-doc-tokio-{}", std::process::id());
//! let opts = Options::new().readiness(true);
//! let listener = listen(addr.as_str(), &opts)?;
//! // The handshake blocks briefly: accept on a blocking thread.
//! let accept = tokio::task::spawn_blocking(move || listener.accept_timeout(Duration::from_secs(5)));
//! let client = connect(addr.as_str(), &opts)?;
//! let server = accept.await.unwrap()?;
//! let mut tx = AsyncSender::new(client.into_split().0.unwrap())?;
//! let mut rx = AsyncReceiver::new(server.into_split().1.unwrap())?;
//! let reader = tokio::spawn(async move {
//!     let m = rx.recv().await?;
//!     Ok::<_, memtube::Error>((m.type_id(), m.payload().to_vec()))
//! });
//! tx.send(b"async", 3).await?;
//! assert_eq!(reader.await.unwrap()?, (3, b"async".to_vec()));
//! # Ok::<(), memtube::Error>(())
//! # }).unwrap();
//! # }
//! ```

use crate::{Connection, Error, Grant, Message, Receiver, Reply, Result, Sender, LIVENESS_SLICE};
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use memtube_ring::SleepPlan;
use std::os::fd::OwnedFd;

/// The readable end of a handle's wake channel, registered with tokio.
fn register(fd: Option<std::os::fd::BorrowedFd<'_>>) -> Result<AsyncFd<OwnedFd>> {
    let fd = fd.ok_or(Error::NoSuchHandle)?;
    // A descriptor of our own (the same open socket) for the reactor.
    let own = fd.try_clone_to_owned().map_err(Error::from)?;
    // SAFETY: `own` is an `OwnedFd`: a valid descriptor that the `AsyncFd`
    // owns, closed only when the `AsyncFd` drops it.
    unsafe { AsyncFd::register_with_interest(own, Interest::READABLE) }
        .map_err(|e| Error::from(e.into_parts().1))
}

/// Wait until `fd` is readable, for at most `cap` and [`LIVENESS_SLICE`];
/// `true` if it became readable (tokio's cached readiness is then cleared,
/// to be re-armed), `false` on timeout.
///
/// A readable end at end-of-file stays readable: the caller's disarm turns
/// it into a liveness probe (the peer's death is then reported at once).
/// Should the peer live on with its end closed (it broke the protocol),
/// the channel can never signal again; this then sleeps a millisecond
/// before returning, so the caller looks again every millisecond instead
/// of spinning.
async fn readable(fd: &AsyncFd<OwnedFd>, cap: Option<std::time::Duration>) -> bool {
    let slice = cap.map_or(LIVENESS_SLICE, |c| c.min(LIVENESS_SLICE));
    match ::tokio::time::timeout(slice, fd.readable()).await {
        Ok(Ok(mut guard)) => {
            let closed = guard.ready().is_read_closed();
            // tokio clears only readiness no newer event has set, and every
            // later send makes a new event: nothing is lost by clearing
            // before the caller drains.
            guard.clear_ready();
            if closed {
                ::tokio::time::sleep(memtube_ring::WAIT_ANY_SLICE).await;
            }
            true
        }
        // An error of the reactor: look again (the next wait retries).
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// A [`Receiver`] that awaits messages (tokio). `Send`, not `Sync`.
#[derive(Debug)]
pub struct AsyncReceiver {
    rx: Receiver,
    fd: AsyncFd<OwnedFd>,
    /// Waits that ended by their time slice, not by the descriptor.
    slices: u64,
    /// Waits armed with a time cap (no barrier for a light waker, a ring in
    /// pure-spin mode).
    capped: u64,
}

impl AsyncReceiver {
    /// Wrap `rx`, whose connection was made with
    /// [`Options::readiness`](crate::Options::readiness)
    /// ([`Error::NoSuchHandle`] otherwise: check
    /// [`Receiver::readiness_fd`] first to keep the handle, which an error
    /// drops, closing its ring). Must be called within a tokio runtime with
    /// its I/O and time drivers enabled.
    pub fn new(rx: Receiver) -> Result<Self> {
        let fd = register(rx.readiness_fd())?;
        Ok(AsyncReceiver {
            rx,
            fd,
            slices: 0,
            capped: 0,
        })
    }

    /// The next message: as [`Receiver::recv`], but awaiting instead of
    /// blocking. Cancel-safe: a message is taken only when returned.
    pub async fn recv(&mut self) -> Result<Message<'_>> {
        loop {
            match self.rx.arm_readiness()? {
                SleepPlan::Ready => break,
                SleepPlan::Sleep(cap) => {
                    self.capped += u64::from(cap.is_some());
                    let woken = readable(&self.fd, cap).await;
                    self.rx.disarm_readiness();
                    if !woken {
                        self.slices += 1;
                        self.rx.probe_peer();
                    }
                }
            }
        }
        self.rx.try_recv()
    }

    /// Waits that ended because their time slice passed rather than by a
    /// signal of the descriptor (tests: a wake-up that is never signalled
    /// shows here).
    #[doc(hidden)]
    pub fn slice_timeouts(&self) -> u64 {
        self.slices
    }

    /// Waits armed with a time cap (diagnostics).
    #[doc(hidden)]
    pub fn capped_waits(&self) -> u64 {
        self.capped
    }

    /// The wrapped receiver, for its non-blocking calls.
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// The receiver back (its descriptor leaves tokio's reactor).
    pub fn into_inner(self) -> Receiver {
        self.rx
    }
}

/// A [`Sender`] that awaits room (tokio). `Send`, not `Sync`.
#[derive(Debug)]
pub struct AsyncSender {
    tx: Sender,
    fd: AsyncFd<OwnedFd>,
}

impl AsyncSender {
    /// Wrap `tx`, whose connection was made with
    /// [`Options::readiness`](crate::Options::readiness)
    /// ([`Error::NoSuchHandle`] otherwise). Must be called within a tokio
    /// runtime with its I/O and time drivers enabled.
    pub fn new(tx: Sender) -> Result<Self> {
        let fd = register(tx.readiness_fd())?;
        Ok(AsyncSender { tx, fd })
    }

    /// Wait for room for a `len`-byte message.
    async fn room(&mut self, len: usize) -> Result<()> {
        loop {
            match self.tx.arm_readiness(len)? {
                SleepPlan::Ready => return Ok(()),
                SleepPlan::Sleep(cap) => {
                    let woken = readable(&self.fd, cap).await;
                    self.tx.disarm_readiness();
                    if !woken {
                        self.tx.probe_peer();
                    }
                }
            }
        }
    }

    /// Copy `payload` in as one message of type `type_id` and publish it:
    /// as [`Sender::send`], but awaiting room instead of blocking.
    /// Cancel-safe: nothing is written unless it returns `Ok`.
    pub async fn send(&mut self, payload: &[u8], type_id: u32) -> Result<()> {
        loop {
            self.room(payload.len()).await?;
            match self.tx.try_send(payload, type_id) {
                // Room seen is room kept (only this handle writes the
                // ring), so this does not happen; if it did, wait again.
                Err(Error::Full) => continue,
                r => return r,
            }
        }
    }

    /// Reserve `len` bytes in place: as [`Sender::reserve`], but awaiting
    /// room. Cancel-safe: nothing is reserved unless it returns.
    pub async fn reserve(&mut self, len: usize) -> Result<Grant<'_>> {
        self.room(len).await?;
        self.tx.try_reserve(len)
    }

    /// The wrapped sender, for its non-blocking calls.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// The sender back (its descriptor leaves tokio's reactor).
    pub fn into_inner(self) -> Sender {
        self.tx
    }
}

/// A [`PollSet`](crate::PollSet) whose wait is awaited (tokio): one task
/// serving many connections. Linux (the set's descriptor is an epoll
/// instance). `Send`, not `Sync`.
///
/// Insert and remove through [`set_mut`](Self::set_mut) at any time; the
/// set keeps its descriptor up to date. Handles need
/// [`Options::readiness`](crate::Options::readiness): one without it is
/// looked at every millisecond while the set waits.
#[derive(Debug)]
pub struct AsyncPollSet<T: crate::Pollable> {
    set: memtube_posix::PollSet<T>,
    fd: AsyncFd<OwnedFd>,
}

impl<T: crate::Pollable> AsyncPollSet<T> {
    /// Wrap `set`. Must be called within a tokio runtime with its I/O and
    /// time drivers enabled.
    pub fn new(mut set: memtube_posix::PollSet<T>) -> Result<Self> {
        let fd = register(Some(set.readiness_fd()?))?;
        Ok(AsyncPollSet { set, fd })
    }

    /// Wait until at least one handle is ready and list the ready ones in
    /// `events`: as [`PollSet::wait`](memtube_posix::PollSet::wait)
    /// without a timeout (wrap the future in `tokio::time::timeout` for
    /// one), awaiting instead of blocking. Cancel-safe: nothing is taken
    /// from any ring.
    pub async fn wait(&mut self, events: &mut crate::Events) -> Result<()> {
        loop {
            match self.set.arm_readiness(events)? {
                SleepPlan::Ready => return Ok(()),
                SleepPlan::Sleep(cap) => {
                    readable(&self.fd, cap).await;
                    self.set.disarm_readiness();
                }
            }
        }
    }

    /// The set: insert, remove, and act on the handles between waits.
    pub fn set_mut(&mut self) -> &mut memtube_posix::PollSet<T> {
        &mut self.set
    }

    /// The set back.
    pub fn into_inner(self) -> memtube_posix::PollSet<T> {
        self.set
    }
}

/// A duplex [`Connection`] whose [`call`](Self::call) is awaited (tokio).
/// `Send`, not `Sync`.
#[derive(Debug)]
pub struct AsyncConnection {
    conn: Connection,
    rx_fd: AsyncFd<OwnedFd>,
    tx_fd: AsyncFd<OwnedFd>,
}

impl AsyncConnection {
    /// Wrap a duplex `conn` made with
    /// [`Options::readiness`](crate::Options::readiness)
    /// ([`Error::NoSuchHandle`] otherwise). Must be called within a tokio
    /// runtime with its I/O and time drivers enabled.
    pub fn new(mut conn: Connection) -> Result<Self> {
        let rx_fd = register(conn.receiver()?.readiness_fd())?;
        let tx_fd = register(conn.sender()?.readiness_fd())?;
        Ok(AsyncConnection { conn, rx_fd, tx_fd })
    }

    /// Send a request and await its reply: as
    /// [`Connection::call`](crate::Connection::call), awaiting instead of
    /// blocking. Dropping the future leaves the connection usable: a
    /// request already sent has its reply skipped by the next call, as
    /// after a timed-out `call_timeout`.
    pub async fn call(&mut self, type_id: u32, request: &[u8]) -> Result<Reply<'_>> {
        let max = self.conn.max_request();
        if request.len() > max as usize {
            return Err(memtube_ring::Error::TooLarge {
                len: request.len(),
                max,
            }
            .into());
        }
        // Room for the request (its 8-byte correlation id included).
        let len = request.len() + 8;
        loop {
            let tx = self.conn.sender()?;
            match tx.arm_readiness(len)? {
                SleepPlan::Ready => break,
                SleepPlan::Sleep(cap) => {
                    let woken = readable(&self.tx_fd, cap).await;
                    let tx = self.conn.sender()?;
                    tx.disarm_readiness();
                    if !woken {
                        tx.probe_peer();
                    }
                }
            }
        }
        let id = self
            .conn
            .send_request(type_id, request, Some(std::time::Duration::ZERO))?;
        // Its reply.
        loop {
            if self.conn.poll_reply(id)? {
                break;
            }
            let rx = self.conn.receiver()?;
            if let SleepPlan::Sleep(cap) = rx.arm_readiness()? {
                let woken = readable(&self.rx_fd, cap).await;
                let rx = self.conn.receiver()?;
                rx.disarm_readiness();
                if !woken {
                    rx.probe_peer();
                }
            }
        }
        self.conn.recv_reply(id, Some(std::time::Duration::ZERO))
    }

    /// The connection, for its other calls.
    pub fn get_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The connection back.
    pub fn into_inner(self) -> Connection {
        self.conn
    }
}

/// A [`Listener`](crate::Listener) whose `accept` is awaited (tokio): the
/// accept and its handshake run on tokio's blocking pool. Cancel-safe: a
/// connection accepted after its future was dropped is returned by the
/// next `accept`.
#[derive(Debug)]
pub struct AsyncListener {
    inner: std::sync::Arc<crate::Listener>,
    opts: Option<crate::Options>,
    pending: Option<::tokio::task::JoinHandle<Result<Connection>>>,
}

impl AsyncListener {
    /// Wrap `listener`; connections are accepted with its own options, or
    /// with `opts` ([`Listener::accept_with`](crate::Listener::accept_with)).
    pub fn new(listener: crate::Listener, opts: Option<crate::Options>) -> Self {
        AsyncListener {
            inner: std::sync::Arc::new(listener),
            opts,
            pending: None,
        }
    }

    /// The next connection.
    pub async fn accept(&mut self) -> Result<Connection> {
        let h = self.pending.get_or_insert_with(|| {
            let (l, o) = (self.inner.clone(), self.opts.clone());
            ::tokio::task::spawn_blocking(move || loop {
                // In slices, so that a listener dropped meanwhile frees
                // the blocking thread within a second.
                let got = match &o {
                    Some(o) => l.accept_with(o, Some(std::time::Duration::from_secs(1))),
                    None => l.accept_timeout(std::time::Duration::from_secs(1)),
                };
                match got {
                    Err(Error::Timeout) if std::sync::Arc::strong_count(&l) > 1 => continue,
                    r => return r,
                }
            })
        });
        let r = h.await;
        self.pending = None;
        r.map_err(|_| Error::Unsupported("the accepting task panicked or was cancelled"))?
    }
}
