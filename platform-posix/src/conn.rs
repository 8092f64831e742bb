//! A connection and its handles: [`Sender`], [`Receiver`], request/reply.

use crate::error::{Error, Result};
use crate::liveness::{Link, PeerState};
use crate::peer::PeerCred;
use crate::rings::RingMaps;
use crate::OsWait;
use memtube_ring::{Consumer, Producer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reservation in a [`Sender`]'s ring: write in place, then `commit`.
pub type Grant<'s, W> = memtube_ring::Grant<'s, 'static, W>;
/// A message in place in a [`Receiver`]'s ring; released when dropped.
pub type Message<'r, W> = memtube_ring::Message<'r, 'static, W>;

/// Blocking calls wait in slices of at most this long and check the peer's
/// socket between slices, so a dead peer is noticed within about this long.
pub const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// The time budget of a blocking call, spent in slices of at most
/// [`LIVENESS_SLICE`]. No clock is read on the fast path: ring-core returns
/// `Timeout` only after a whole slice has passed, so each timed-out slice is
/// subtracted from what is left.
#[derive(Clone, Copy)]
struct Budget {
    left: Option<Duration>,
}

impl Budget {
    fn new(timeout: Option<Duration>) -> Self {
        Budget { left: timeout }
    }

    fn slice(&self) -> Duration {
        self.left.map_or(LIVENESS_SLICE, |l| l.min(LIVENESS_SLICE))
    }

    /// A slice timed out: charge it; false when nothing is left.
    fn spend(&mut self) -> bool {
        match &mut self.left {
            None => true,
            Some(l) => {
                let s = (*l).min(LIVENESS_SLICE);
                *l -= s;
                !l.is_zero()
            }
        }
    }
}

/// Wait through `wait` (ring-core's own blocking wait, given a slice of at
/// most [`LIVENESS_SLICE`]), probing the peer's socket between slices.
/// When the peer is gone and `last_look` is set, one more zero-length wait
/// decides, so a receiver gets every message committed before the death
/// (which happened before its socket closed, which we have now seen).
fn wait_sliced(
    link: &Link,
    timeout: Option<Duration>,
    last_look: bool,
    mut wait: impl FnMut(Duration) -> std::result::Result<(), memtube_ring::Error>,
) -> Result<()> {
    let budget = Budget::new(timeout);
    match wait(budget.slice()) {
        Ok(()) => Ok(()),
        Err(memtube_ring::Error::Timeout) => wait_sliced_rest(link, budget, last_look, wait),
        Err(e) => Err(e.into()),
    }
}

/// The rest of [`wait_sliced`] after a first slice (of `budget.slice()`)
/// timed out. The blocking calls run their first slice inline, through
/// ring-core's blocking call, so that a message or room that comes while
/// they spin goes straight on (the sliced wait around a closure cost
/// 10-15 ns per round trip); only a slice that times out comes here.
#[cold]
#[inline(never)]
fn wait_sliced_rest(
    link: &Link,
    mut budget: Budget,
    last_look: bool,
    mut wait: impl FnMut(Duration) -> std::result::Result<(), memtube_ring::Error>,
) -> Result<()> {
    loop {
        let s = link.probe();
        if s != PeerState::Alive {
            return match last_look.then(|| wait(Duration::ZERO)) {
                Some(Ok(())) => Ok(()),
                None | Some(Err(memtube_ring::Error::Timeout)) => Err(peer_error(s)),
                Some(Err(e)) => Err(e.into()),
            };
        }
        if !budget.spend() {
            return Err(Error::Timeout);
        }
        match wait(budget.slice()) {
            Ok(()) => return Ok(()),
            Err(memtube_ring::Error::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn peer_error(s: PeerState) -> Error {
    match s {
        PeerState::Closed => Error::Closed,
        _ => Error::PeerGone,
    }
}

/// The writing end of a ring to the peer. `Send`, not `Sync`.
///
/// Owns its mappings: it lives as long as you keep it, independent of the
/// [`Connection`] it came from. Dropping it publishes staged messages and
/// closes the ring cleanly (the peer's receiver gets [`Error::Closed`]
/// after the last message).
///
/// Handles move between threads but are not shared:
///
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<memtube_posix::Sender<memtube_ring::SpinWait>>();
/// ```
pub struct Sender<W: OsWait> {
    // Field order matters: the producer borrows `maps` and drops first.
    tx: Producer<'static, W>,
    link: Arc<Link>,
    _maps: RingMaps,
}

/// See [`Sender::set_early_wrap`].
const DEFAULT_EARLY_WRAP: u32 = 4096;

impl<W: OsWait> Sender<W> {
    pub(crate) fn new(maps: RingMaps, link: Arc<Link>) -> Result<Self> {
        Ok(Sender {
            tx: maps.producer()?,
            link,
            _maps: maps,
        })
    }

    /// Copy `payload` in as one message of type `type_id`, without blocking
    /// ([`Error::Full`] if there is no room now).
    #[inline]
    pub fn send(&mut self, payload: &[u8], type_id: u32) -> Result<()> {
        self.tx.try_send(payload, type_id).map_err(Error::from)
    }

    /// Reserve `len` bytes in place without blocking.
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, W>> {
        self.tx.try_reserve(len).map_err(Error::from)
    }

    /// Reserve `len` bytes, blocking until there is room, the timeout passes
    /// ([`Error::Timeout`]; `None`: no limit), the consumer closes
    /// ([`Error::Closed`]) or the peer dies ([`Error::PeerGone`], noticed
    /// within [`LIVENESS_SLICE`] plus a system call).
    #[inline]
    pub fn reserve_blocking(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<Grant<'_, W>> {
        self.make_room(len, timeout)?;
        self.tx.try_reserve(len).map_err(Error::from)
    }

    /// Fast path: room now (no deadline, no slicing); else the sliced wait.
    #[inline]
    fn make_room(&mut self, len: usize, timeout: Option<Duration>) -> Result<()> {
        if !self.tx.has_room(len)? {
            self.wait_for_room(len, timeout)?;
        }
        Ok(())
    }

    /// Block until a [`reserve`](Self::reserve) of `len` bytes would succeed,
    /// without reserving; errors as for [`reserve_blocking`](Self::reserve_blocking).
    pub fn wait_for_room(&mut self, len: usize, timeout: Option<Duration>) -> Result<()> {
        let tx = &mut self.tx;
        wait_sliced(&self.link, timeout, false, |t| {
            tx.wait_for_room(len, Some(t))
        })
    }

    /// Blocking [`send`](Self::send); errors as for [`reserve_blocking`](Self::reserve_blocking).
    #[inline]
    pub fn send_blocking(
        &mut self,
        payload: &[u8],
        type_id: u32,
        timeout: Option<Duration>,
    ) -> Result<()> {
        // The first liveness slice through ring-core's own blocking send,
        // inline (it copies without a `Grant` value: a grant returned
        // through `reserve_blocking` cost store-forwarding stalls, about
        // 40 ns per round trip). Only when that slice times out (the ring
        // stayed full) does the sliced wait take over.
        let budget = Budget::new(timeout);
        match self.tx.send_timeout(payload, type_id, budget.slice()) {
            Ok(()) => Ok(()),
            Err(memtube_ring::Error::Timeout) => {
                let (tx, len) = (&mut self.tx, payload.len());
                wait_sliced_rest(&self.link, budget, false, |t| {
                    tx.wait_for_room(len, Some(t))
                })?;
                self.tx.try_send(payload, type_id).map_err(Error::from)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stage a message without publishing it (see [`publish`](Self::publish)).
    pub fn send_staged(&mut self, payload: &[u8], type_id: u32) -> Result<()> {
        self.tx.send_staged(payload, type_id).map_err(Error::from)
    }

    /// Publish staged messages.
    #[inline]
    pub fn publish(&mut self) {
        self.tx.publish()
    }

    /// Whether a message of at most 48 bytes sent with a publishing call
    /// ([`send`](Self::send), [`send_blocking`](Self::send_blocking),
    /// [`Grant::commit`](memtube_ring::Grant::commit)) is followed by padding to
    /// the end of its cache line when the rest of the line is shorter than
    /// its record, so that the next one, if alike, starts a line instead of
    /// straddling two ([`memtube_ring::Producer::set_line_padding`]). On by
    /// default with isolation, where the peer reads the ring through a
    /// read-only mapping (measured: the 32-byte round trip went from 1.24x
    /// to 1.06-1.12x the ring floor), and in duplex connections without
    /// isolation (32-byte round trips 160-170 -> 150 ns; in full benchmark
    /// runs 1.01-1.06x -> 0.94x the ring floor); off in one-way connections without isolation, where
    /// streams are the likely use. Payloads of 25 to 48 bytes then take a cache line each: to
    /// stream them one by one at full rate, turn it off (measured at 32
    /// bytes: 37% more messages per second), or stage them with
    /// [`send_staged`](Self::send_staged) and [`publish`](Self::publish),
    /// which never pads.
    pub fn set_line_padding(&mut self, on: bool) {
        self.tx.set_line_padding(on)
    }

    /// Copying sends ([`send`](Self::send), [`send_blocking`](Self::send_blocking),
    /// [`send_staged`](Self::send_staged), [`memtube_ring::Grant::copy_from`],
    /// which a duplex connection's `call` and `serve_one` use) of payloads
    /// of at least `bytes` bytes bypass the cache with non-temporal stores
    /// (x86-64; default 16 KiB, `u32::MAX` turns it off). Measured on a VM
    /// whose cores' distance changes: 64 KiB streams 2-9x and round trips
    /// 1.3-3x faster, except where the two cores share a cache closely,
    /// where they are 2-3x slower (there, turn it off); see
    /// [`memtube_ring::Producer::set_nontemporal_threshold`].
    pub fn set_nontemporal_threshold(&mut self, bytes: u32) {
        self.tx.set_nontemporal_threshold(bytes)
    }

    /// Early wrap ([`memtube_ring::Producer::set_early_wrap`]): while the ring
    /// is nearly empty, go back to its start once the next message would
    /// start at offset `bytes` or later, so that request-response traffic
    /// keeps reusing the same cache lines instead of moving through the
    /// whole ring. `u32::MAX` turns it off.
    ///
    /// On (4096) by default in duplex connections without isolation, where
    /// it measured (2-vCPU AMD EPYC VM, 16 KiB rings, pure spin, three full
    /// benchmark runs) round trips of 256 bytes 250 -> 200 ns and of 1 KiB
    /// 300-330 -> 200-226 ns (as fast as a ring of four payloads at 1 KiB;
    /// at 256 B that ring measured 160 ns), with no measurable change at
    /// 32 bytes; the price is 13-14% of the rate of one-way streams of
    /// 8-byte copied messages on such a ring. It works at any capacity
    /// because the receiver publishes its released position whenever it
    /// finds the ring empty (on the default 64 KiB rings it was lost until
    /// it did: 1 KiB round trips 2.25 -> 1.28x the ring floor). Off
    /// otherwise: with isolation it measured mixed (256 B and 1 KiB 0-30 ns
    /// faster, 8 and 32 bytes 171 -> 180 ns).
    pub fn set_early_wrap(&mut self, bytes: u32) {
        self.tx.set_early_wrap(bytes)
    }

    /// The largest payload this ring takes.
    pub fn max_payload(&self) -> u32 {
        self.tx.max_payload()
    }

    /// The ring's data-area bytes.
    pub fn capacity(&self) -> u32 {
        self.tx.capacity()
    }

    /// Whether the peer was alive at the last liveness probe (no system
    /// call: a cached flag that blocking calls refresh). May be stale.
    #[inline]
    pub fn is_peer_alive(&self) -> bool {
        self.link.state() == PeerState::Alive
    }

    /// Probe the peer's socket now (one system call) and return its state.
    pub fn probe_peer(&self) -> PeerState {
        self.link.probe()
    }

    /// Ring counters (may be stale).
    pub fn stats(&self) -> memtube_ring::Stats {
        self.tx.stats()
    }
}

/// The reading end of a ring from the peer. `Send`, not `Sync`.
///
/// Owns its mappings. Delivers every message the peer committed, then
/// [`Error::Closed`] (clean close) or [`Error::PeerGone`] (the peer died).
/// A message whose writer died before committing it is never delivered.
///
/// ```compile_fail
/// fn is_sync<T: Sync>() {}
/// is_sync::<memtube_posix::Receiver<memtube_ring::SpinWait>>();
/// ```
pub struct Receiver<W: OsWait> {
    rx: Consumer<'static, W>,
    link: Arc<Link>,
    _maps: RingMaps,
}

impl<W: OsWait> Receiver<W> {
    pub(crate) fn new(maps: RingMaps, link: Arc<Link>) -> Result<Self> {
        Ok(Receiver {
            rx: maps.consumer()?,
            link,
            _maps: maps,
        })
    }

    /// The next message if there is one ([`Error::Empty`] if not; this
    /// non-blocking call does not check liveness: use
    /// [`recv_blocking`](Self::recv_blocking) or [`probe_peer`](Self::probe_peer)).
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_, W>> {
        self.rx.try_recv().map_err(Error::from)
    }

    /// The next message, blocking until one arrives, the timeout passes
    /// ([`Error::Timeout`]; `None`: no limit), the peer closes after its last
    /// message ([`Error::Closed`]) or dies ([`Error::PeerGone`], after every
    /// message it committed was delivered, noticed within [`LIVENESS_SLICE`]
    /// plus a system call).
    #[inline]
    pub fn recv_blocking(&mut self, timeout: Option<Duration>) -> Result<Message<'_, W>> {
        // The first liveness slice through ring-core's own wait, inline: its
        // spin runs here, and the record it finds stays validated for `recv`.
        let budget = Budget::new(timeout);
        match self.rx.wait_message(Some(budget.slice())) {
            Ok(()) => {}
            Err(memtube_ring::Error::Timeout) => {
                let rx = &mut self.rx;
                wait_sliced_rest(&self.link, budget, true, |t| rx.wait_message(Some(t)))?;
            }
            Err(e) => return Err(e.into()),
        }
        self.rx.try_recv().map_err(Error::from)
    }

    /// Block until [`recv`](Self::recv) would return a message, without
    /// receiving it; errors as for [`recv_blocking`](Self::recv_blocking).
    pub fn wait_message(&mut self, timeout: Option<Duration>) -> Result<()> {
        let rx = &mut self.rx;
        wait_sliced(&self.link, timeout, true, |t| rx.wait_message(Some(t)))
    }

    /// The largest payload this ring carries.
    pub fn max_payload(&self) -> u32 {
        self.rx.max_payload()
    }

    /// Whether the peer was alive at the last probe (no system call). May be stale.
    #[inline]
    pub fn is_peer_alive(&self) -> bool {
        self.link.state() == PeerState::Alive
    }

    /// Probe the peer's socket now (one system call).
    pub fn probe_peer(&self) -> PeerState {
        self.link.probe()
    }

    /// Ring counters (may be stale).
    pub fn stats(&self) -> memtube_ring::Stats {
        self.rx.stats()
    }
}

// The handles are `Send` (checked at compile time; `Sync` is not, see the
// compile_fail doc tests).
const _: () = {
    fn send<T: Send>() {}
    fn check() {
        send::<Sender<memtube_ring::SpinWait>>();
        send::<Receiver<memtube_ring::SpinWait>>();
        send::<Connection<memtube_ring::SpinWait>>();
    }
    let _ = check;
};

/// A reply to [`Connection::call`], in place in the ring.
///
/// Wire format of `call`/`serve` messages: the first 8 bytes of every
/// payload are the correlation id (`u64`, little-endian; `call` numbers its
/// requests 1, 2, 3, ... per connection) and the rest is the body; the
/// message's type id is the request's (or the reply's) type. A reply carries
/// its request's id; `call` skips replies to earlier calls that timed out.
pub struct Reply<'r, W: OsWait> {
    msg: Message<'r, W>,
}

impl<W: OsWait> Reply<'_, W> {
    /// The reply's type id (chosen by the server's handler).
    pub fn type_id(&self) -> u32 {
        self.msg.type_id()
    }
    /// The reply body (after the correlation id).
    pub fn payload(&self) -> &[u8] {
        // `call` checked the length, but the bytes are in shared memory a
        // hostile peer may still rewrite: never panic on them.
        self.msg.payload().get(8..).unwrap_or(&[])
    }
    /// The correlation id.
    pub fn id(&self) -> u64 {
        read_id(self.msg.payload()).unwrap_or(0)
    }
}

fn read_id(p: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(p.get(..8)?.try_into().ok()?))
}

/// A connection: one ring (one-way) or two (duplex), the socket that watches
/// the peer, and its credentials.
///
/// Take the handles out with [`sender`](Self::sender) /
/// [`receiver`](Self::receiver) (by reference) or
/// [`into_split`](Self::into_split); use [`call`](Self::call) /
/// [`serve`](Self::serve) in duplex mode.
pub struct Connection<W: OsWait> {
    sender: Option<Sender<W>>,
    receiver: Option<Receiver<W>>,
    link: Arc<Link>,
    peer: PeerCred,
    next_id: u64,
    scratch: Vec<u8>,
}

impl<W: OsWait> std::fmt::Debug for Connection<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("sender", &self.sender.is_some())
            .field("receiver", &self.receiver.is_some())
            .field("peer", &self.peer)
            .finish()
    }
}

impl<W: OsWait> Connection<W> {
    pub(crate) fn new(rings: Vec<(RingMaps, bool)>, link: Link, peer: PeerCred) -> Result<Self> {
        let link = Arc::new(link);
        let duplex = rings.len() == 2;
        let mut sender = None;
        let mut receiver = None;
        for (maps, produce) in rings {
            if produce {
                let isolated = maps.cons.is_some();
                let mut tx = Sender::new(maps, link.clone())?;
                // This layer's defaults (see the setters' docs): line
                // padding with isolation (a read-only mapping of the ring)
                // and in duplex connections; early wrap in duplex
                // connections without isolation. ring-core's are off.
                if isolated || duplex {
                    tx.set_line_padding(true);
                }
                if duplex && !isolated {
                    tx.set_early_wrap(DEFAULT_EARLY_WRAP);
                }
                sender = Some(tx);
            } else {
                receiver = Some(Receiver::new(maps, link.clone())?);
            }
        }
        Ok(Connection {
            sender,
            receiver,
            link,
            peer,
            next_id: 1,
            scratch: Vec::new(),
        })
    }

    pub(crate) fn link_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.link.fd()
    }

    /// This side's sender ([`Error::NoSuchHandle`] if this side only receives).
    pub fn sender(&mut self) -> Result<&mut Sender<W>> {
        self.sender.as_mut().ok_or(Error::NoSuchHandle)
    }

    /// This side's receiver ([`Error::NoSuchHandle`] if this side only sends).
    pub fn receiver(&mut self) -> Result<&mut Receiver<W>> {
        self.receiver.as_mut().ok_or(Error::NoSuchHandle)
    }

    /// The handles, to move to other threads. The liveness socket stays open
    /// until the last of them (and the connection) is dropped.
    pub fn into_split(self) -> (Option<Sender<W>>, Option<Receiver<W>>) {
        (self.sender, self.receiver)
    }

    /// The peer's credentials (`SO_PEERCRED`).
    pub fn peer_cred(&self) -> PeerCred {
        self.peer
    }

    /// Whether the peer was alive at the last probe (no system call).
    pub fn is_peer_alive(&self) -> bool {
        self.link.state() == PeerState::Alive
    }

    /// Probe the peer's socket now (one system call).
    pub fn probe_peer(&self) -> PeerState {
        self.link.probe()
    }

    /// Send a request (duplex mode) and wait for its reply, for at most
    /// `timeout` overall. See [`Reply`] for the wire format.
    pub fn call(
        &mut self,
        type_id: u32,
        request: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Reply<'_, W>> {
        let deadline = crate::sock::deadline(timeout);
        let id = self.next_id;
        self.next_id += 1;
        let tx = self.sender.as_mut().ok_or(Error::NoSuchHandle)?;
        let mut g = tx.reserve_blocking(8 + request.len(), timeout)?;
        g[..8].copy_from_slice(&id.to_le_bytes());
        g.copy_from(8, request);
        g.commit(8 + request.len(), type_id);
        let rx = self.receiver.as_mut().ok_or(Error::NoSuchHandle)?;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            rx.wait_message(left)?;
            let got = read_id(rx.rx.peek()?.payload());
            match got {
                // A late reply to an earlier call that timed out: skip it.
                Some(got) if got < id => drop(rx.rx.try_recv()?),
                Some(got) if got == id => break,
                Some(_) => return Err(Error::Protocol("reply to a request not yet sent")),
                None => return Err(Error::Protocol("reply shorter than its 8-byte id")),
            }
        }
        // The peek above was a hint: a hostile peer may rewrite the record
        // between two reads, so check the message actually taken.
        let msg = rx.recv()?;
        match read_id(msg.payload()) {
            Some(got) if got == id => Ok(Reply { msg }),
            _ => Err(Error::Protocol("reply changed while it was read")),
        }
    }

    /// Serve one request (duplex mode): wait up to `timeout` for it, call
    /// `handler(type_id, body, reply)` with the body in place and an empty
    /// `reply` buffer to fill, and send `reply` back with the type id the
    /// handler returns and the request's correlation id.
    pub fn serve_one<F>(&mut self, timeout: Option<Duration>, mut handler: F) -> Result<()>
    where
        F: FnMut(u32, &[u8], &mut Vec<u8>) -> u32,
    {
        let (Some(tx), Some(rx)) = (self.sender.as_mut(), self.receiver.as_mut()) else {
            return Err(Error::NoSuchHandle);
        };
        let m = rx.recv_blocking(timeout)?;
        let id =
            read_id(m.payload()).ok_or(Error::Protocol("request shorter than its 8-byte id"))?;
        self.scratch.clear();
        let ty = handler(m.type_id(), &m.payload()[8..], &mut self.scratch);
        let n = 8 + self.scratch.len();
        let mut g = tx.reserve_blocking(n, timeout)?;
        g[..8].copy_from_slice(&id.to_le_bytes());
        g.copy_from(8, &self.scratch);
        g.commit(n, ty);
        Ok(())
    }

    /// Serve requests until the peer closes (then `Ok(())`) or an error
    /// (for example [`Error::PeerGone`]).
    pub fn serve<F>(&mut self, mut handler: F) -> Result<()>
    where
        F: FnMut(u32, &[u8], &mut Vec<u8>) -> u32,
    {
        loop {
            match self.serve_one(None, &mut handler) {
                Ok(()) => {}
                Err(Error::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
