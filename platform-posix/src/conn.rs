//! A connection and its handles: [`Sender`], [`Receiver`], request/reply.

use crate::error::{Error, Result};
use crate::liveness::{Link, PeerState};
use crate::peer::PeerCred;
use crate::rings::RingMaps;
use crate::wake::ConnWait;
use crate::Os;
use memtube_ring::{Consumer, Producer, SleepWord};
use rustix::fd::OwnedFd;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reservation in a [`Sender`]'s ring: write in place, then `commit`.
pub type Grant<'s, O> = memtube_ring::Grant<'s, 'static, ConnWait<O>>;
/// A message in place in a [`Receiver`]'s ring; released when dropped.
pub type Message<'r, O> = memtube_ring::Message<'r, 'static, ConnWait<O>>;

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
        if link.is_cancelled() {
            return Err(Error::Cancelled);
        }
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

/// A non-blocking call probes the peer's socket (one system call) once per
/// this many `Full` or `Empty` results, so that a caller polling with
/// `try_send` / `try_recv` learns of a dead peer without paying a system
/// call on every poll.
pub const PROBE_EVERY: u32 = 1024;

/// The error of a non-blocking call that could not proceed: `Full` and
/// `Empty` become `PeerGone` or `Closed` when the peer is known (or, every
/// [`PROBE_EVERY`] calls, found) to be finished; the rest map as usual.
#[cold]
#[inline(never)]
fn no_progress(link: &Link, idle: &mut u32, e: memtube_ring::Error) -> Error {
    if !matches!(e, memtube_ring::Error::Full | memtube_ring::Error::Empty) {
        return e.into();
    }
    *idle = idle.wrapping_add(1);
    let state = if *idle % PROBE_EVERY == 0 {
        link.probe()
    } else {
        link.state()
    };
    match state {
        PeerState::Alive => e.into(),
        s => peer_error(s),
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
/// fn check<O: memtube_posix::Os>() {
///     is_sync::<memtube_posix::Sender<O>>();
/// }
/// ```
pub struct Sender<O: Os> {
    // Field order matters: the producer borrows `maps` and drops first.
    // `ManuallyDrop`: a handle dropped while its thread panics leaves its
    // role attached (see `Drop`); otherwise dropped first, in `Drop`.
    tx: ManuallyDrop<Producer<'static, ConnWait<O>>>,
    /// With readiness: the readable end of this handle's wake channel.
    ready: Option<OwnedFd>,
    link: Arc<Link>,
    /// `Full` results since the last probe of the peer's socket.
    idle: u32,
    _maps: RingMaps,
}

/// See [`Sender::set_early_wrap`].
const DEFAULT_EARLY_WRAP: u32 = 4096;

impl<O: Os> Sender<O> {
    pub(crate) fn new(mut maps: RingMaps, link: Arc<Link>) -> Result<Self> {
        let (ready, wake_tx) = maps.wake.take().unzip();
        Ok(Sender {
            tx: ManuallyDrop::new(maps.producer::<O>(wake_tx)?),
            ready,
            link,
            idle: 0,
            _maps: maps,
        })
    }

    /// Fails at once, without a system call, when the peer is already known
    /// to be finished: its receiver closed the ring ([`Error::Closed`], as
    /// `std::sync::mpsc` does) or a probe found it closed or gone. One load
    /// of the consumer's rarely written line (the line the wake-up check
    /// reads after every publication) and one of the local cached state.
    #[inline(always)]
    fn check_peer(&self) -> Result<()> {
        if self.tx.is_consumer_closed() {
            return Err(Error::Closed);
        }
        match self.link.state() {
            PeerState::Alive => Ok(()),
            s => Err(peer_error(s)),
        }
    }

    /// Copy `payload` in as one message of type `type_id` and publish it,
    /// without blocking: [`Error::Full`] if there is no room now. A peer
    /// that closed or died is reported ([`Error::Closed`],
    /// [`Error::PeerGone`]) instead of `Full`: at once when already known,
    /// else by a probe of its socket every [`PROBE_EVERY`] `Full` results.
    #[inline]
    pub fn try_send(&mut self, payload: &[u8], type_id: u32) -> Result<()> {
        self.check_peer()?;
        match self.tx.try_send(payload, type_id) {
            Ok(()) => Ok(()),
            Err(e) => Err(no_progress(&self.link, &mut self.idle, e)),
        }
    }

    /// Reserve `len` bytes in place without blocking (errors as for
    /// [`try_send`](Self::try_send)). Write the grant, then
    /// [`commit`](memtube_ring::Grant::commit) it.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_, O>> {
        self.check_peer()?;
        match self.tx.try_reserve(len) {
            Ok(g) => Ok(g),
            Err(e) => Err(no_progress(&self.link, &mut self.idle, e)),
        }
    }

    /// Reserve `len` bytes in place, blocking until there is room, the peer
    /// closes ([`Error::Closed`]) or dies ([`Error::PeerGone`], noticed
    /// within [`LIVENESS_SLICE`] plus a system call).
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, O>> {
        self.reserve_within(len, None)
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout` ([`Error::Timeout`]).
    #[inline]
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<Grant<'_, O>> {
        self.reserve_within(len, Some(timeout))
    }

    /// [`reserve`](Self::reserve) with an optional time limit.
    #[inline]
    pub(crate) fn reserve_within(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<Grant<'_, O>> {
        self.make_room(len, timeout)?;
        self.tx.try_reserve(len).map_err(Error::from)
    }

    /// Fast path: room now (no deadline, no slicing); else the sliced wait.
    #[inline]
    fn make_room(&mut self, len: usize, timeout: Option<Duration>) -> Result<()> {
        self.check_peer()?;
        if !self.tx.has_room(len)? {
            self.wait_for_room(len, timeout)?;
        }
        Ok(())
    }

    /// Block until a [`try_reserve`](Self::try_reserve) of `len` bytes would
    /// succeed, without reserving, for at most `timeout` (`None`: no limit);
    /// errors as for [`reserve`](Self::reserve).
    pub fn wait_for_room(&mut self, len: usize, timeout: Option<Duration>) -> Result<()> {
        let tx = &mut self.tx;
        wait_sliced(&self.link, timeout, false, |t| {
            tx.wait_for_room(len, Some(t))
        })
    }

    /// Copy `payload` in as one message of type `type_id` and publish it,
    /// blocking while the ring is full; errors as for [`reserve`](Self::reserve).
    #[inline]
    pub fn send(&mut self, payload: &[u8], type_id: u32) -> Result<()> {
        self.send_within(payload, type_id, None)
    }

    /// [`send`](Self::send), waiting at most `timeout` for room
    /// ([`Error::Timeout`]; nothing was sent).
    #[inline]
    pub fn send_timeout(&mut self, payload: &[u8], type_id: u32, timeout: Duration) -> Result<()> {
        self.send_within(payload, type_id, Some(timeout))
    }

    #[inline(always)]
    fn send_within(
        &mut self,
        payload: &[u8],
        type_id: u32,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.check_peer()?;
        // The first liveness slice through ring-core's own blocking send,
        // inline (it copies without a `Grant` value, which would cost a
        // store-forwarding stall; see docs/design.md). Only when that slice
        // times out (the ring stayed full) does the sliced wait take over.
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

    /// Commit a reservation detached from a grant of this sender
    /// ([`Grant::detach`](memtube_ring::Grant::detach)) and publish it; for
    /// bindings that hold a reservation across calls.
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    ///
    /// # Safety
    /// As [`memtube_ring::Producer::commit_detached`]: `g` was detached from
    /// a grant of this sender, and no `&mut self` method of this sender was
    /// called since.
    #[inline]
    pub unsafe fn commit_detached(
        &mut self,
        g: memtube_ring::DetachedGrant,
        used: usize,
        type_id: u32,
    ) {
        // SAFETY: the caller's contract is the producer's.
        unsafe { self.tx.commit_detached(g, used, type_id) }
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
    /// ([`send`](Self::send), [`try_send`](Self::try_send),
    /// [`Grant::commit`](memtube_ring::Grant::commit)) is followed by padding to
    /// the end of its cache line when the rest of the line is shorter than
    /// its record, so that the next one, if alike, starts a line instead of
    /// straddling two ([`memtube_ring::Producer::set_line_padding`]).
    ///
    /// On by default with isolation and in duplex connections, where it makes
    /// small round trips faster; off in one-way connections without
    /// isolation, where streams go: padded, small messages sent one by one
    /// take a line each (staged messages, [`send_staged`](Self::send_staged),
    /// are never padded). Measurements: docs/design.md, "Line padding".
    pub fn set_line_padding(&mut self, on: bool) {
        self.tx.set_line_padding(on)
    }

    /// Copying sends ([`send`](Self::send), [`try_send`](Self::try_send),
    /// [`send_staged`](Self::send_staged), [`memtube_ring::Grant::copy_from`],
    /// which `call` and `serve_one` use) of payloads of at least `bytes`
    /// bytes bypass the cache with non-temporal stores (x86-64; the default
    /// depends on the processor: 16 KiB on AMD, off elsewhere,
    /// [`memtube_ring::default_nontemporal_threshold`]; on AMD the copying
    /// sends, not `copy_from`, `call` or `serve_one`, also write 2 KiB or
    /// more non-temporally when they follow each other back to back,
    /// [`memtube_ring::default_stream_nontemporal_threshold`]; `u32::MAX`
    /// turns it off; a threshold set here applies to every send). They make large messages much faster between cores that share
    /// no cache level closely and can be slower between cores that do: the
    /// best setting depends on the machine, the ring and the traffic
    /// (docs/design.md, "Non-temporal copies for large messages"; see
    /// [`memtube_ring::Producer::set_nontemporal_threshold`]).
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
    /// it makes round trips of hundreds of bytes to a few KiB faster; the
    /// price is some of the rate of one-way streams of small messages. Off
    /// otherwise (with isolation it measured mixed). Measurements:
    /// docs/design.md, "Early wrap".
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
/// fn check<O: memtube_posix::Os>() {
///     is_sync::<memtube_posix::Receiver<O>>();
/// }
/// ```
pub struct Receiver<O: Os> {
    // As in `Sender`.
    rx: ManuallyDrop<Consumer<'static, ConnWait<O>>>,
    /// With readiness: the readable end of this handle's wake channel.
    ready: Option<OwnedFd>,
    link: Arc<Link>,
    /// `Empty` results since the last probe of the peer's socket.
    idle: u32,
    _maps: RingMaps,
}

impl<O: Os> Receiver<O> {
    pub(crate) fn new(mut maps: RingMaps, link: Arc<Link>) -> Result<Self> {
        let (ready, wake_tx) = maps.wake.take().unzip();
        Ok(Receiver {
            rx: ManuallyDrop::new(maps.consumer::<O>(wake_tx)?),
            ready,
            link,
            idle: 0,
            _maps: maps,
        })
    }

    /// The next message if there is one, without blocking: [`Error::Empty`]
    /// if not. A producer that closed is reported ([`Error::Closed`]) once
    /// every message it sent was received; one that died
    /// ([`Error::PeerGone`]) once known, by a probe of its socket every
    /// [`PROBE_EVERY`] `Empty` results.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<'_, O>> {
        match self.rx.try_recv() {
            Ok(m) => Ok(m),
            Err(e) => Err(no_progress(&self.link, &mut self.idle, e)),
        }
    }

    /// Look at the next message without receiving it, without blocking
    /// (errors as for [`try_recv`](Self::try_recv)): a later `peek` or
    /// receive returns the same message. Its bytes stay in place until it is
    /// received and released; for bindings that hand out a view of a
    /// message across calls, releasing it with `try_recv` then.
    #[inline]
    pub fn peek(&mut self) -> Result<memtube_ring::Peek<'_>> {
        match self.rx.peek() {
            Ok(m) => Ok(m),
            Err(e) => Err(no_progress(&self.link, &mut self.idle, e)),
        }
    }

    /// The next message, blocking until one arrives, the peer closes after
    /// its last message ([`Error::Closed`]) or dies ([`Error::PeerGone`],
    /// after every message it committed was delivered, noticed within
    /// [`LIVENESS_SLICE`] plus a system call).
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_, O>> {
        self.recv_within(None)
    }

    /// [`recv`](Self::recv), waiting at most `timeout` ([`Error::Timeout`]).
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_, O>> {
        self.recv_within(Some(timeout))
    }

    #[inline(always)]
    pub(crate) fn recv_within(&mut self, timeout: Option<Duration>) -> Result<Message<'_, O>> {
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

    /// Block until [`try_recv`](Self::try_recv) would return a message,
    /// without receiving it, for at most `timeout` (`None`: no limit);
    /// errors as for [`recv`](Self::recv).
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

// Readiness descriptors (`Options::readiness`): the event-loop protocol.
impl<O: Os> Receiver<O> {
    /// The descriptor that becomes readable when this receiver may have a
    /// message (or its peer closed or died), for epoll, kqueue or an async
    /// runtime; `None` unless the connection was made with
    /// [`Options::readiness`](crate::Options::readiness).
    ///
    /// It is signalled only while [armed](Self::arm_readiness): a busy
    /// ring never costs its producer a system call for it. The protocol:
    ///
    /// 1. [`arm_readiness`](Self::arm_readiness); on
    ///    [`SleepPlan::Ready`](memtube_ring::SleepPlan::Ready) receive now.
    /// 2. Otherwise wait until the descriptor is readable (or the plan's
    ///    time cap, or [`LIVENESS_SLICE`], passes), then call
    ///    [`disarm_readiness`](Self::disarm_readiness) and go back to 1.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// // In the `memtube` crate, `tokio::AsyncReceiver` does this for tokio.
    /// # }
    /// ```
    pub fn readiness_fd(&self) -> Option<rustix::fd::BorrowedFd<'_>> {
        crate::wake::fd(&self.ready)
    }

    /// Step 1 of the [readiness protocol](Self::readiness_fd): spin the
    /// handle's spin budget looking for a message, then, if none came,
    /// announce that this receiver waits on its descriptor (so the
    /// producer's next publication or close signals it) and look once
    /// more. [`Error::NoSuchHandle`] without readiness.
    pub fn arm_readiness(&mut self) -> Result<memtube_ring::SleepPlan> {
        use memtube_ring::SleepPlan;
        if self.ready.is_none() {
            return Err(Error::NoSuchHandle);
        }
        match self.rx.wait_message(Some(Duration::ZERO)) {
            Err(memtube_ring::Error::Timeout) => {}
            // A message, the end, or corruption: the receive says which.
            _ => return Ok(SleepPlan::Ready),
        }
        if self.poll_readable() {
            return Ok(SleepPlan::Ready);
        }
        let Some(word) = self.rx.announce_sleep() else {
            // Pure spin: nobody signals; look again soon.
            return Ok(SleepPlan::Sleep(Some(memtube_ring::WAIT_ANY_SLICE)));
        };
        let plan =
            memtube_ring::prepare_sleep(&O::Wait::default(), &[word], || self.poll_readable());
        if plan == SleepPlan::Ready {
            self.rx.withdraw_sleep();
        }
        Ok(plan)
    }

    /// Step 2 of the [readiness protocol](Self::readiness_fd), after the
    /// descriptor became readable (or the wait timed out): read what the
    /// descriptor holds and take back the announcement. If the peer's end
    /// of the channel is closed, the peer is probed at once, so the next
    /// receive reports its end.
    pub fn disarm_readiness(&mut self) {
        self.disarm_channel();
    }

    /// [`disarm_readiness`](Self::disarm_readiness); `true` when the wake
    /// channel is closed while the peer lives (it will never signal again:
    /// a peer that broke docs/PROTOCOL.md 3.7).
    pub(crate) fn disarm_channel(&mut self) -> bool {
        let dead = crate::wake::drain_end(&self.ready, &self.link);
        self.rx.withdraw_sleep();
        dead
    }
}

impl<O: Os> Sender<O> {
    /// The descriptor that becomes readable when this sender may have room
    /// (or its peer closed or died); `None` unless the connection was made
    /// with [`Options::readiness`](crate::Options::readiness). The protocol
    /// is the receiver's ([`Receiver::readiness_fd`]), with
    /// [`arm_readiness`](Self::arm_readiness) taking the length of the
    /// message to make room for.
    pub fn readiness_fd(&self) -> Option<rustix::fd::BorrowedFd<'_>> {
        crate::wake::fd(&self.ready)
    }

    /// Step 1 of the readiness protocol: publish staged messages, spin
    /// looking for room for a `len`-byte message, then, if there is none,
    /// announce that this sender waits on its descriptor and look once more.
    /// [`Error::NoSuchHandle`] without readiness; [`Error::Ring`] (`TooLarge`) if
    /// `len` never fits.
    pub fn arm_readiness(&mut self, len: usize) -> Result<memtube_ring::SleepPlan> {
        use memtube_ring::SleepPlan;
        if self.ready.is_none() {
            return Err(Error::NoSuchHandle);
        }
        match self.tx.wait_for_room(len, Some(Duration::ZERO)) {
            Err(memtube_ring::Error::Timeout) => {}
            Err(memtube_ring::Error::TooLarge { len, max }) => {
                return Err(memtube_ring::Error::TooLarge { len, max }.into())
            }
            _ => return Ok(SleepPlan::Ready),
        }
        if self.poll_writable(len) {
            return Ok(SleepPlan::Ready);
        }
        let Some(word) = self.tx.announce_sleep() else {
            return Ok(SleepPlan::Sleep(Some(memtube_ring::WAIT_ANY_SLICE)));
        };
        let plan =
            memtube_ring::prepare_sleep(&O::Wait::default(), &[word], || self.poll_writable(len));
        if plan == SleepPlan::Ready {
            self.tx.withdraw_sleep();
        }
        Ok(plan)
    }

    /// Step 2 of the readiness protocol ([`Receiver::disarm_readiness`]).
    pub fn disarm_readiness(&mut self) {
        self.disarm_channel();
    }

    /// [`disarm_readiness`](Self::disarm_readiness); `true` when the wake
    /// channel is closed while the peer lives (it will never signal again:
    /// a peer that broke docs/PROTOCOL.md 3.7).
    pub(crate) fn disarm_channel(&mut self) -> bool {
        let dead = crate::wake::drain_end(&self.ready, &self.link);
        self.tx.withdraw_sleep();
        dead
    }
}

// The poll set's view of the handles (`crate::poll`).
impl<O: Os> Receiver<O> {
    /// Whether a `try_recv` would return something other than `Empty`: a
    /// message, or the end (closed ring, dead peer, corruption).
    pub(crate) fn poll_readable(&mut self) -> bool {
        match self.rx.has_message() {
            Ok(false) => {}
            _ => return true,
        }
        // Nothing there: publish the space released so far, as an empty
        // `try_recv` does (a producer may wait for it), without taking a
        // message that has just come.
        match self.rx.peek() {
            Err(memtube_ring::Error::Empty) => {
                self.rx.is_producer_closed() || self.link.state() != PeerState::Alive
            }
            _ => true,
        }
    }
    pub(crate) fn announce_sleep(&mut self) -> Option<SleepWord<'static>> {
        self.rx.announce_sleep()
    }
    pub(crate) fn withdraw_sleep(&mut self) {
        self.rx.withdraw_sleep()
    }
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }
    /// Whether the ring is over: the producer closed (messages may remain).
    pub(crate) fn ring_closed(&self) -> bool {
        self.rx.is_producer_closed()
    }
}

impl<O: Os> Sender<O> {
    /// Whether a `try_reserve(len)` would return something other than
    /// `Full`: room, or the end (closed ring, dead peer, an error).
    pub(crate) fn poll_writable(&mut self, len: usize) -> bool {
        match self.tx.has_room(len) {
            Ok(false) => {
                // No room: make staged messages visible (the consumer may be
                // waiting for them to free any).
                self.tx.publish();
                self.check_peer().is_err()
            }
            _ => true,
        }
    }
    pub(crate) fn announce_sleep(&mut self) -> Option<SleepWord<'static>> {
        self.tx.announce_sleep()
    }
    pub(crate) fn withdraw_sleep(&mut self) {
        self.tx.withdraw_sleep()
    }
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }
    /// Whether the ring is over: the consumer closed.
    pub(crate) fn ring_closed(&self) -> bool {
        self.tx.is_consumer_closed()
    }
}

impl<O: Os> Connection<O> {
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }
    pub(crate) fn halves(&self) -> (Option<&Sender<O>>, Option<&Receiver<O>>) {
        (self.sender.as_ref(), self.receiver.as_ref())
    }
    pub(crate) fn has_receiver(&self) -> bool {
        self.receiver.is_some()
    }
    /// Whether this side sends, messages of `len` bytes included.
    pub(crate) fn sender_fits(&self, len: usize) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|tx| len <= tx.max_payload() as usize)
    }
}

/// A handle dropped while its thread panics did not finish its work: it
/// does not close its ring (which the peer would read as a clean end) but
/// tells the peer through the socket that this side is gone, so the peer
/// gets [`Error::PeerGone`] (after every message committed before), as for
/// a crash. Otherwise the ring handle closes its role, as usual.
macro_rules! drop_handle {
    ($ty:ident, $field:ident) => {
        impl<O: Os> Drop for $ty<O> {
            fn drop(&mut self) {
                // A forked child's copy: the role and the rings are the
                // parent's (and not mapped here: `Mapping::dont_fork`).
                if self.link.is_inherited() {
                    return;
                }
                if std::thread::panicking() {
                    self.link.abort();
                    return;
                }
                // SAFETY: dropped exactly once, here, and never used after:
                // `drop` is the last use of `self`, and the mappings it
                // borrows (`_maps`, a later field) are dropped after it.
                unsafe { ManuallyDrop::drop(&mut self.$field) }
            }
        }

        impl<O: Os> std::fmt::Debug for $ty<O> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("capacity", &self.$field.capacity())
                    .field("peer", &self.link.state())
                    .finish_non_exhaustive()
            }
        }
    };
}
drop_handle!(Sender, tx);
drop_handle!(Receiver, rx);

// The handles are `Send` on every system (checked at compile time for any
// `O: Os`; `Sync` they are not, see the compile_fail doc tests).
const _: () = {
    fn send<T: Send>() {}
    // Type-checked for every `O` without being instantiated.
    #[allow(dead_code)]
    fn check<O: Os>() {
        send::<Sender<O>>();
        send::<Receiver<O>>();
        send::<Connection<O>>();
    }
};

/// A reply to [`Connection::call`], in place in the ring.
///
/// Wire format of `call`/`serve` messages: the first 8 bytes of every
/// payload are the correlation id (`u64`, little-endian; `call` numbers its
/// requests 1, 2, 3, ... per connection) and the rest is the body; the
/// message's type id is the request's (or the reply's) type. A reply carries
/// its request's id; `call` skips replies to earlier calls that timed out.
pub struct Reply<'r, O: Os> {
    msg: Message<'r, O>,
}

impl<O: Os> Reply<'_, O> {
    /// The reply's type id (chosen by the server's handler).
    pub fn type_id(&self) -> u32 {
        self.msg.type_id()
    }
    /// Leave the reply in the ring, not released (see
    /// [`Message::keep`](memtube_ring::Message::keep)): the receiver's next
    /// `peek` or receive returns it again, correlation id included; for
    /// bindings that hand out a view of it across calls.
    pub fn keep(self) {
        self.msg.keep()
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

/// Bytes of the correlation id at the start of every `call` / `serve` payload.
const ID_LEN: usize = 8;
/// The type id of an error reply from `serve` (reserved: handlers never send it).
pub const ERROR_REPLY: u32 = u32::MAX;
/// The type id of a ping request (reserved): `serve` answers it itself with
/// a reply of the same type and body, without calling the handler, so a
/// monitor can measure round trips to a running service (`memtube ping`).
pub const PING: u32 = 0xFFFF_FFFE;
/// Error reply code: the handler's reply did not fit in the ring.
/// Body after the id: code `u32`, ring maximum `u32`, reply length `u64` (LE).
const ERROR_REPLY_TOO_LARGE: u32 = 1;
/// Error reply code: the handler returned the reserved type id [`ERROR_REPLY`].
const ERROR_REPLY_RESERVED_TYPE: u32 = 2;

impl<O: Os> std::fmt::Debug for Reply<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("id", &self.id())
            .field("type_id", &self.type_id())
            .field("len", &self.payload().len())
            .finish()
    }
}

fn read_id(p: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(p.get(..ID_LEN)?.try_into().ok()?))
}

/// The error an error reply stands for (its bytes are the peer's: checked).
fn error_reply(msg: &[u8]) -> Error {
    let body = msg.get(ID_LEN..).unwrap_or(&[]);
    let word = |at: usize, n: usize| body.get(at..at + n);
    let code = word(0, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match code {
        Some(ERROR_REPLY_TOO_LARGE) => match (word(4, 4), word(8, 8)) {
            (Some(m), Some(l)) => Error::ReplyTooLarge {
                max: u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
                len: u64::from_le_bytes([l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]]),
            },
            _ => Error::Protocol("error reply too short"),
        },
        Some(ERROR_REPLY_RESERVED_TYPE) => {
            Error::Protocol("the server's handler returned the reserved type id u32::MAX")
        }
        _ => Error::Protocol("unknown error reply"),
    }
}

/// A connection: one ring (one-way) or two (duplex), the socket that watches
/// the peer, and its credentials.
///
/// Take the handles out with [`sender`](Self::sender) /
/// [`receiver`](Self::receiver) (by reference) or
/// [`into_split`](Self::into_split); use [`call`](Self::call) /
/// [`serve`](Self::serve) in duplex mode.
pub struct Connection<O: Os> {
    sender: Option<Sender<O>>,
    receiver: Option<Receiver<O>>,
    link: Arc<Link>,
    peer: PeerCred,
    next_id: u64,
    /// The highest request id whose reply was taken or skipped.
    answered: u64,
    scratch: Vec<u8>,
}

impl<O: Os> std::fmt::Debug for Connection<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("sender", &self.sender.is_some())
            .field("receiver", &self.receiver.is_some())
            .field("peer", &self.peer)
            .finish()
    }
}

impl<O: Os> Connection<O> {
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
            answered: 0,
            scratch: Vec::new(),
        })
    }

    pub(crate) fn link_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.link.fd()
    }

    /// This side's sender ([`Error::NoSuchHandle`] if this side only receives).
    pub fn sender(&mut self) -> Result<&mut Sender<O>> {
        self.sender.as_mut().ok_or(Error::NoSuchHandle)
    }

    /// This side's receiver ([`Error::NoSuchHandle`] if this side only sends).
    pub fn receiver(&mut self) -> Result<&mut Receiver<O>> {
        self.receiver.as_mut().ok_or(Error::NoSuchHandle)
    }

    /// Both handles at once, borrowed (each `None` if this side lacks it):
    /// to answer a message with the other ring while the message is held,
    /// for example an echo from a connection kept in a
    /// [`PollSet`](crate::PollSet).
    pub fn split_mut(&mut self) -> (Option<&mut Sender<O>>, Option<&mut Receiver<O>>) {
        (self.sender.as_mut(), self.receiver.as_mut())
    }

    /// The handles, to move to other threads. The liveness socket stays open
    /// until the last of them (and the connection) is dropped.
    ///
    /// The halves are independent: each owns the mappings of its own ring,
    /// and dropping one (in any thread, while the other is blocked or not)
    /// closes only that ring: the peer's opposite handle gets
    /// [`Error::Closed`], and the other half goes on working, a blocked call
    /// included, until its own ring ends (to stop it, use a
    /// [`CancelToken`](crate::CancelToken)). The peer sees its socket close
    /// cleanly ([`PeerState::Closed`]) when the last half is dropped, and
    /// gone ([`Error::PeerGone`]) if a half was dropped while its thread
    /// panicked.
    pub fn into_split(self) -> (Option<Sender<O>>, Option<Receiver<O>>) {
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

    /// Send a request (duplex mode) and wait for its reply. See [`Reply`]
    /// for the wire format. Errors: those of [`Sender::send`] and
    /// [`Receiver::recv`]; [`Error::Ring`] with `TooLarge` when the request
    /// body exceeds [`max_request`](Self::max_request) (the lengths in it are
    /// the body's, without the hidden 8-byte id); [`Error::ReplyTooLarge`]
    /// when the server's reply did not fit in the ring.
    pub fn call(&mut self, type_id: u32, request: &[u8]) -> Result<Reply<'_, O>> {
        self.call_within(type_id, request, None)
    }

    /// [`call`](Self::call), waiting at most `timeout` overall
    /// ([`Error::Timeout`]; a reply that comes later is skipped by the next call).
    pub fn call_timeout(
        &mut self,
        type_id: u32,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Reply<'_, O>> {
        self.call_within(type_id, request, Some(timeout))
    }

    /// The largest request body [`call`](Self::call) sends (the ring's
    /// maximum payload less the 8-byte correlation id); 0 without a sender.
    pub fn max_request(&self) -> u32 {
        self.sender
            .as_ref()
            .map_or(0, |tx| tx.max_payload().saturating_sub(ID_LEN as u32))
    }

    fn call_within(
        &mut self,
        type_id: u32,
        request: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Reply<'_, O>> {
        let deadline = crate::sock::deadline(timeout);
        let id = self.send_request(type_id, request, timeout)?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        self.recv_reply(id, left)
    }

    /// The first half of [`call`](Self::call): send a request, waiting at
    /// most `timeout` (`None`: no limit) for room, and return its
    /// correlation id without waiting for the reply; errors as for `call`.
    /// With [`recv_reply`](Self::recv_reply), for callers that wait for the
    /// reply in slices of their own (bindings that check for signals
    /// between them) or pipeline several requests (their replies awaited in
    /// order).
    pub fn send_request(
        &mut self,
        type_id: u32,
        request: &[u8],
        timeout: Option<Duration>,
    ) -> Result<u64> {
        let (Some(tx), Some(_)) = (self.sender.as_mut(), self.receiver.as_ref()) else {
            return Err(Error::NoSuchHandle);
        };
        let max = tx.max_payload().saturating_sub(ID_LEN as u32);
        if request.len() > max as usize {
            return Err(Error::Ring(memtube_ring::Error::TooLarge {
                len: request.len(),
                max,
            }));
        }
        let mut g = tx.reserve_within(ID_LEN + request.len(), timeout)?;
        let id = self.next_id;
        self.next_id += 1;
        g[..ID_LEN].copy_from_slice(&id.to_le_bytes());
        g.copy_from(ID_LEN, request);
        g.commit(ID_LEN + request.len(), type_id);
        Ok(id)
    }

    /// The second half of [`call`](Self::call): wait at most `timeout`
    /// (`None`: no limit) for the reply to request `id` (from
    /// [`send_request`](Self::send_request)). [`Error::Timeout`] leaves the
    /// request outstanding: a later `recv_reply(id, ..)` goes on waiting for
    /// the same reply.
    ///
    /// Replies come in the order of their requests, and waiting for one
    /// skips (drops) the replies to every earlier request still in the
    /// ring: with several requests outstanding, wait for them in order. A
    /// `recv_reply` for a request whose reply was already taken or skipped
    /// is refused with [`Error::Protocol`] at once instead of waiting for a
    /// reply that will not come.
    pub fn recv_reply(&mut self, id: u64, timeout: Option<Duration>) -> Result<Reply<'_, O>> {
        if id == 0 || id >= self.next_id {
            return Err(Error::Protocol("recv_reply: no such request was sent"));
        }
        if id <= self.answered {
            return Err(Error::Protocol(
                "recv_reply: this request's reply was already taken or skipped",
            ));
        }
        let deadline = crate::sock::deadline(timeout);
        let rx = self.receiver.as_mut().ok_or(Error::NoSuchHandle)?;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            rx.wait_message(left)?;
            let got = read_id(rx.rx.peek()?.payload());
            match got {
                // A late reply to an earlier call that timed out: skip it.
                Some(got) if got < id => {
                    drop(rx.rx.try_recv()?);
                    self.answered = self.answered.max(got);
                }
                Some(got) if got == id => break,
                Some(_) => return Err(Error::Protocol("reply to a request not yet sent")),
                None => return Err(Error::Protocol("reply shorter than its 8-byte id")),
            }
        }
        // The peek above was a hint: a hostile peer may rewrite the record
        // between two reads, so check the message actually taken.
        let msg = rx.rx.try_recv()?;
        self.answered = id;
        match read_id(msg.payload()) {
            Some(got) if got != id => Err(Error::Protocol("reply changed while it was read")),
            Some(_) if msg.type_id() == ERROR_REPLY => Err(error_reply(&msg)),
            Some(_) => Ok(Reply { msg }),
            None => Err(Error::Protocol("reply changed while it was read")),
        }
    }

    /// Whether [`recv_reply`](Self::recv_reply)`(id, ..)` would return now
    /// without waiting: skips (drops) the replies to earlier requests at
    /// the head of the ring, as `recv_reply` does, then looks at the next
    /// message without taking it. For event loops that wait for the
    /// receiver's [readiness descriptor](Receiver::readiness_fd) between
    /// looks. Errors as for `recv_reply` (a peer that closed or died once
    /// every reply was taken, a reply to a request not yet sent).
    pub fn poll_reply(&mut self, id: u64) -> Result<bool> {
        if id == 0 || id >= self.next_id {
            return Err(Error::Protocol("poll_reply: no such request was sent"));
        }
        if id <= self.answered {
            return Err(Error::Protocol(
                "poll_reply: this request's reply was already taken or skipped",
            ));
        }
        let rx = self.receiver.as_mut().ok_or(Error::NoSuchHandle)?;
        loop {
            let got = match rx.peek() {
                Ok(m) => read_id(m.payload()),
                Err(Error::Empty) => return Ok(false),
                Err(e) => return Err(e),
            };
            match got {
                Some(got) if got < id => {
                    drop(rx.rx.try_recv()?);
                    self.answered = self.answered.max(got);
                }
                Some(got) if got == id => return Ok(true),
                Some(_) => return Err(Error::Protocol("reply to a request not yet sent")),
                None => return Err(Error::Protocol("reply shorter than its 8-byte id")),
            }
        }
    }

    /// Serve one request (duplex mode): wait up to `timeout` (`None`: no
    /// limit) for it, call `handler(type_id, body, reply)` with the body in
    /// place and an empty `reply` buffer to fill, and send `reply` back with
    /// the type id the handler returns and the request's correlation id.
    ///
    /// A reply that does not fit in the ring is not sent: the caller gets
    /// [`Error::ReplyTooLarge`] instead and serving goes on. The type id
    /// `u32::MAX` is reserved for such error replies; a handler that returns
    /// it makes the caller's `call` fail with [`Error::Protocol`].
    /// A request of type [`PING`] is answered here (same type, same body)
    /// and never reaches the handler; it counts as the request served.
    ///
    /// The `timeout` (and a cancel) also bounds the wait for room for the
    /// reply: a request whose reply could not be sent in time stays
    /// unanswered (the caller's `call` waits on until its own timeout, or
    /// until this side closes).
    pub fn serve_one<F>(&mut self, timeout: Option<Duration>, mut handler: F) -> Result<()>
    where
        F: FnMut(u32, &[u8], &mut Vec<u8>) -> u32,
    {
        let (Some(tx), Some(rx)) = (self.sender.as_mut(), self.receiver.as_mut()) else {
            return Err(Error::NoSuchHandle);
        };
        let m = rx.recv_within(timeout)?;
        let id =
            read_id(m.payload()).ok_or(Error::Protocol("request shorter than its 8-byte id"))?;
        self.scratch.clear();
        let mut ty = if m.type_id() == PING {
            // A ping (`memtube ping`): echoed here, never shown to the handler.
            self.scratch.extend_from_slice(&m.payload()[ID_LEN..]);
            PING
        } else {
            handler(m.type_id(), &m.payload()[ID_LEN..], &mut self.scratch)
        };
        drop(m);
        let max = tx.max_payload().saturating_sub(ID_LEN as u32);
        if self.scratch.len() > max as usize {
            let len = self.scratch.len() as u64;
            self.scratch.clear();
            self.scratch
                .extend_from_slice(&ERROR_REPLY_TOO_LARGE.to_le_bytes());
            self.scratch.extend_from_slice(&max.to_le_bytes());
            self.scratch.extend_from_slice(&len.to_le_bytes());
            ty = ERROR_REPLY;
        } else if ty == ERROR_REPLY {
            self.scratch.clear();
            self.scratch
                .extend_from_slice(&ERROR_REPLY_RESERVED_TYPE.to_le_bytes());
            self.scratch.extend_from_slice(&[0; 12]);
        }
        let n = ID_LEN + self.scratch.len();
        let mut g = tx.reserve_within(n, timeout)?;
        g[..ID_LEN].copy_from_slice(&id.to_le_bytes());
        g.copy_from(ID_LEN, &self.scratch);
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
