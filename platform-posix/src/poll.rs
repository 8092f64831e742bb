//! [`PollSet`]: one wait across many connections' rings.
//!
//! A poll set owns handles (receivers, senders or connections) and waits
//! until some of them are ready: a message to read, room to write, or the
//! peer gone. While its owner keeps pace it enters the kernel only for one
//! liveness check of every peer each 50 ms: it looks at the rings, first at those that were ready lately ("hot"), then,
//! one per look, at the others. When nothing comes within its spin budget it
//! announces sleep on every ring (each ring's own sleep/wake protocol, so the
//! peers need nothing new), re-checks all of them after one fence, and
//! sleeps once for all of them (Linux `futex_waitv`; elsewhere, or beyond
//! 128 rings, in slices of at most a millisecond). Between sleep slices of
//! [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) it asks the kernel about every
//! peer with one `poll`, so a dead peer is reported within the same bound as
//! for a single blocking call.

use crate::conn::{Connection, Receiver, Sender};
use crate::error::{Error, Result};
use crate::liveness::{probe_all, Link, PeerState};
use crate::Os;
use memtube_ring::{prepare_sleep, sleep_many, SleepPlan, SleepWord, Wait};
use rustix::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

/// What a handle in a [`PollSet`] is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest {
    readable: bool,
    /// Room for a message of this many payload bytes, when `Some`.
    writable: Option<usize>,
}

impl Interest {
    /// A message to receive (or the end of the ring).
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: None,
    };

    /// Room to send a message of `len` payload bytes (or the end of the ring).
    pub const fn writable(len: usize) -> Interest {
        Interest {
            readable: false,
            writable: Some(len),
        }
    }

    /// Both: a message to receive, and room for a `len`-byte message.
    pub const fn both(len: usize) -> Interest {
        Interest {
            readable: true,
            writable: Some(len),
        }
    }

    /// Whether this interest includes [`READABLE`](Self::READABLE).
    pub const fn is_readable(&self) -> bool {
        self.readable
    }

    /// The message length a writable interest asks room for.
    pub const fn writable_len(&self) -> Option<usize> {
        self.writable
    }
}

/// One ready handle, as [`PollSet::wait`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    key: usize,
    readable: bool,
    writable: bool,
    closed: bool,
}

impl Event {
    /// The handle's key (what [`PollSet::insert`] returned).
    pub fn key(&self) -> usize {
        self.key
    }

    /// A receive would not find the ring empty: a message is there, or the
    /// ring is over (the receive returns [`Error::Closed`] or
    /// [`Error::PeerGone`] once every message was received).
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// A send of the interest's length would not find the ring full: there
    /// is room, or the ring is over (the send returns the error).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The peer closed this ring (or one of the connection's rings), closed
    /// its connection or died: after the messages it left are read, remove
    /// the handle ([`PollSet::remove`]), or every wait reports it again.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// The events of one [`PollSet::wait`], reused from wait to wait.
#[derive(Clone, Debug, Default)]
pub struct Events {
    list: Vec<Event>,
}

impl Events {
    /// An empty list.
    pub fn new() -> Self {
        Events::default()
    }

    /// An empty list with room for `n` events without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Events {
            list: Vec::with_capacity(n),
        }
    }

    /// The events, in the order the set found them.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// How many handles are ready.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no handle is ready.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl<'e> IntoIterator for &'e Events {
    type Item = &'e Event;
    type IntoIter = std::slice::Iter<'e, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

mod private {
    use super::*;

    /// What the poll set needs of a handle; implemented only here.
    pub trait Sealed {
        type Sys: Os;
        /// (readable, writable, closed) under `interest`.
        fn readiness(&mut self, interest: Interest) -> (bool, bool, bool);
        /// Announce sleep on the rings of `interest`, pushing their words;
        /// `false` if one of them is in pure-spin mode (nobody wakes it).
        fn announce(&mut self, interest: Interest, words: &mut Vec<SleepWord<'static>>) -> bool;
        fn withdraw(&mut self, interest: Interest);
        fn link(&self) -> &Link;
        /// The readiness descriptors of the rings of `interest`
        /// ([`Options::readiness`](crate::Options::readiness)); `None` for a
        /// ring without one.
        fn readiness_fds(&self, interest: Interest) -> [Option<BorrowedFd<'_>>; 2];
        /// Drain the readiness descriptors of `interest` and withdraw their
        /// announcements (`disarm_readiness`); `true` if a wake channel is
        /// closed while its peer lives (it will never signal again).
        fn disarm(&mut self, interest: Interest) -> bool;
        /// Whether the connection's cancel token was cancelled.
        fn cancelled(&self) -> bool {
            self.link().is_cancelled()
        }
        /// The interest a plain [`PollSet::insert`] gives.
        fn default_interest(&self) -> Interest;
        /// Whether the handle can be watched for `interest`.
        fn supports(&self, interest: Interest) -> bool;
    }
}
use private::Sealed;

/// A handle a [`PollSet`] can watch: [`Receiver`] (readable),
/// [`Sender`] (writable) and [`Connection`] (either or both).
pub trait Pollable: Sealed {}

fn rx_ready<O: Os>(rx: &mut Receiver<O>) -> (bool, bool) {
    let r = rx.poll_readable();
    (
        r,
        r && (rx.ring_closed() || rx.link().state() != PeerState::Alive),
    )
}

fn tx_ready<O: Os>(tx: &mut Sender<O>, len: usize) -> (bool, bool) {
    let w = tx.poll_writable(len);
    (
        w,
        w && (tx.ring_closed() || tx.link().state() != PeerState::Alive),
    )
}

impl<O: Os> Sealed for Receiver<O> {
    type Sys = O;
    fn readiness_fds(&self, _: Interest) -> [Option<BorrowedFd<'_>>; 2] {
        [self.readiness_fd(), None]
    }
    fn disarm(&mut self, _: Interest) -> bool {
        self.disarm_channel()
    }
    fn readiness(&mut self, _: Interest) -> (bool, bool, bool) {
        let (r, c) = rx_ready(self);
        (r, false, c)
    }
    fn announce(&mut self, _: Interest, words: &mut Vec<SleepWord<'static>>) -> bool {
        self.announce_sleep().map(|w| words.push(w)).is_some()
    }
    fn withdraw(&mut self, _: Interest) {
        self.withdraw_sleep()
    }
    fn link(&self) -> &Link {
        Receiver::link(self)
    }
    fn default_interest(&self) -> Interest {
        Interest::READABLE
    }
    fn supports(&self, i: Interest) -> bool {
        i == Interest::READABLE
    }
}
impl<O: Os> Pollable for Receiver<O> {}

impl<O: Os> Sealed for Sender<O> {
    type Sys = O;
    fn readiness_fds(&self, _: Interest) -> [Option<BorrowedFd<'_>>; 2] {
        [self.readiness_fd(), None]
    }
    fn disarm(&mut self, _: Interest) -> bool {
        self.disarm_channel()
    }
    fn readiness(&mut self, i: Interest) -> (bool, bool, bool) {
        let (w, c) = tx_ready(self, i.writable.unwrap_or(0));
        (false, w, c)
    }
    fn announce(&mut self, _: Interest, words: &mut Vec<SleepWord<'static>>) -> bool {
        self.announce_sleep().map(|w| words.push(w)).is_some()
    }
    fn withdraw(&mut self, _: Interest) {
        self.withdraw_sleep()
    }
    fn link(&self) -> &Link {
        Sender::link(self)
    }
    fn default_interest(&self) -> Interest {
        Interest::writable(0)
    }
    fn supports(&self, i: Interest) -> bool {
        !i.readable && i.writable.is_some_and(|n| n <= self.max_payload() as usize)
    }
}
impl<O: Os> Pollable for Sender<O> {}

impl<O: Os> Sealed for Connection<O> {
    type Sys = O;
    fn readiness_fds(&self, i: Interest) -> [Option<BorrowedFd<'_>>; 2] {
        let (tx, rx) = self.halves();
        [
            rx.filter(|_| i.readable).and_then(|r| r.readiness_fd()),
            tx.filter(|_| i.writable.is_some())
                .and_then(|t| t.readiness_fd()),
        ]
    }
    fn disarm(&mut self, i: Interest) -> bool {
        let (tx, rx) = self.split_mut();
        let mut dead = false;
        if let (true, Some(rx)) = (i.readable, rx) {
            dead |= rx.disarm_channel();
        }
        if let (Some(_), Some(tx)) = (i.writable, tx) {
            dead |= tx.disarm_channel();
        }
        dead
    }
    fn readiness(&mut self, i: Interest) -> (bool, bool, bool) {
        let (tx, rx) = self.split_mut();
        let (mut r, mut w, mut c) = (false, false, false);
        if let (true, Some(rx)) = (i.readable, rx) {
            (r, c) = rx_ready(rx);
        }
        if let (Some(len), Some(tx)) = (i.writable, tx) {
            let (wr, wc) = tx_ready(tx, len);
            w = wr;
            c |= wc;
        }
        (r, w, c)
    }
    fn announce(&mut self, i: Interest, words: &mut Vec<SleepWord<'static>>) -> bool {
        let (tx, rx) = self.split_mut();
        let mut wakes = true;
        if let (true, Some(rx)) = (i.readable, rx) {
            wakes &= rx.announce_sleep().map(|w| words.push(w)).is_some();
        }
        if let (Some(_), Some(tx)) = (i.writable, tx) {
            wakes &= tx.announce_sleep().map(|w| words.push(w)).is_some();
        }
        wakes
    }
    fn withdraw(&mut self, i: Interest) {
        let (tx, rx) = self.split_mut();
        if let (true, Some(rx)) = (i.readable, rx) {
            rx.withdraw_sleep();
        }
        if let (Some(_), Some(tx)) = (i.writable, tx) {
            tx.withdraw_sleep();
        }
    }
    fn link(&self) -> &Link {
        Connection::link(self)
    }
    fn default_interest(&self) -> Interest {
        let mut me = Interest {
            readable: false,
            writable: None,
        };
        // `parts_mut` needs `&mut`; the handles' presence is all we need.
        me.readable = self.has_receiver();
        if !me.readable {
            me.writable = Some(0);
        }
        me
    }
    fn supports(&self, i: Interest) -> bool {
        (i.readable || i.writable.is_some())
            && (!i.readable || self.has_receiver())
            && i.writable.is_none_or(|n| self.sender_fits(n))
    }
}
impl<O: Os> Pollable for Connection<O> {}

struct Entry<T> {
    handle: T,
    interest: Interest,
    /// The set's round when this handle was last found ready.
    ready_round: u64,
    /// Listed in `PollSet::hot`.
    hot: bool,
    /// Its readiness descriptors are all in the set's epoll instance (see
    /// `Readiness::unsignalled`).
    signalled: bool,
}

/// A wait that returns without sleeping reads the clock (to ask about the
/// peers every [`LIVENESS_SLICE`](crate::LIVENESS_SLICE)) once in this many.
const BUSY_CLOCK_EVERY: u32 = 256;

/// A handle stays hot (looked at on every poll of a wait) for this many
/// waits after it was last found ready.
const HOT_ROUNDS: u64 = 64;

/// Looks at the rings before a wait announces sleep, unless set
/// ([`PollSet::set_spin_budget`]): each look polls every hot handle and one
/// other.
const DEFAULT_SPIN_BUDGET: u32 = 4096;

/// Many receivers, senders or connections, and one wait for whichever is
/// ready. `Send`, not `Sync`, like the handles it owns.
///
/// Insert handles ([`insert`](Self::insert), which returns a key), call
/// [`wait`](Self::wait), then act on each [`Event`] through
/// [`get_mut`](Self::get_mut): receive, send or serve without blocking (the
/// event says it will not find the ring empty, or full). Level-triggered: a
/// handle stays ready until its condition ends, so whatever is not read now
/// is reported again; a handle whose peer is gone is reported closed at
/// every wait until it is [removed](Self::remove).
///
/// The peers need nothing: a poll set uses each ring's own sleep protocol.
/// While some handle is ready it makes no system call but one liveness
/// check of every peer each [`LIVENESS_SLICE`](crate::LIVENESS_SLICE); a wait with
/// nothing ready spins for a while, then sleeps once for all rings and
/// wakes when any peer publishes, releases or closes.
///
/// Keys are the set's: the smallest free one is given to the next
/// insert, so a key kept after its handle was removed may name another.
/// A handle in pure-spin mode is never woken by its peer: a set holding one
/// polls (a CPU busy) instead of sleeping.
///
/// Fairness: every wait reports every ready hot handle (one ready in the
/// last 64 waits) and looks at one other handle per look, so a handle that
/// becomes ready is reported within as many waits as the set has handles,
/// whatever the others do.
///
/// An example runs in the `memtube` crate's documentation of its `PollSet`.
pub struct PollSet<T: Pollable> {
    slots: Vec<Option<Entry<T>>>,
    /// Free keys, smallest first.
    free: std::collections::BinaryHeap<std::cmp::Reverse<usize>>,
    len: usize,
    /// Keys of the hot handles (possibly stale: checked against the slot).
    hot: Vec<usize>,
    /// The next cold key to look at.
    cursor: usize,
    round: u64,
    spin_budget: u32,
    words: Vec<SleepWord<'static>>,
    waiter: <T::Sys as Os>::Wait,
    /// When every peer was last asked about (the waiter's clock).
    last_probe: Duration,
    /// Waits that returned without sleeping since the clock was last read.
    busy_waits: u32,
    /// With [`readiness_fd`](Self::readiness_fd): the descriptor over every
    /// handle's (Linux: epoll), and how many handles have none (they make
    /// an armed set look again within a millisecond).
    readiness: Option<Readiness>,
}

/// A poll set's readiness descriptor: an epoll instance over every
/// handle's readiness descriptors, each tagged with its handle's key.
struct Readiness {
    fd: OwnedFd,
    unsignalled: usize,
}

impl<T: Pollable> Default for PollSet<T> {
    fn default() -> Self {
        PollSet::new()
    }
}

impl<T: Pollable> std::fmt::Debug for PollSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollSet")
            .field("len", &self.len)
            .field("hot", &self.hot.len())
            .finish_non_exhaustive()
    }
}

impl<T: Pollable> PollSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        PollSet {
            slots: Vec::new(),
            free: Default::default(),
            len: 0,
            hot: Vec::new(),
            cursor: 0,
            round: HOT_ROUNDS,
            spin_budget: DEFAULT_SPIN_BUDGET,
            words: Vec::new(),
            waiter: Default::default(),
            last_probe: Duration::ZERO,
            busy_waits: 0,
            readiness: None,
        }
    }

    /// Watch `handle` for what it does: a receiver (or a connection that
    /// receives) for messages, a sender (or a send-only connection) for
    /// room. Returns its key, the smallest unused one.
    pub fn insert(&mut self, handle: T) -> usize {
        let interest = handle.default_interest();
        self.put(handle, interest)
    }

    /// Watch `handle` for `interest`; [`Error::NoSuchHandle`] (and the
    /// handle back) when it cannot have it (readable on a sender, writable
    /// on a receive-only connection, room for more than the ring's largest
    /// message).
    pub fn insert_with(
        &mut self,
        handle: T,
        interest: Interest,
    ) -> std::result::Result<usize, (Error, T)> {
        if !handle.supports(interest) {
            return Err((Error::NoSuchHandle, handle));
        }
        Ok(self.put(handle, interest))
    }

    fn put(&mut self, handle: T, interest: Interest) -> usize {
        let key = self.free.peek().map_or(self.slots.len(), |r| r.0);
        let mut signalled = false;
        if let Some(r) = &mut self.readiness {
            signalled = register(&r.fd, key, &handle, interest);
            r.unsignalled += usize::from(!signalled);
        }
        let e = Entry {
            handle,
            interest,
            ready_round: 0,
            hot: false,
            signalled,
        };
        self.len += 1;
        match self.free.pop().map(|std::cmp::Reverse(k)| k) {
            Some(k) => {
                self.slots[k] = Some(e);
                k
            }
            None => {
                self.slots.push(Some(e));
                self.slots.len() - 1
            }
        }
    }

    /// Stop watching the handle at `key` and give it back (`None` if no
    /// handle has that key). Its key may be given to a later insert.
    pub fn remove(&mut self, key: usize) -> Option<T> {
        let e = self.slots.get_mut(key)?.take()?;
        if let Some(r) = &mut self.readiness {
            deregister(&r.fd, &e.handle, e.interest);
            r.unsignalled -= usize::from(!e.signalled);
        }
        self.len -= 1;
        self.free.push(std::cmp::Reverse(key));
        Some(e.handle)
    }

    /// The handle at `key`.
    pub fn get(&self, key: usize) -> Option<&T> {
        self.slots.get(key)?.as_ref().map(|e| &e.handle)
    }

    /// The handle at `key`, to receive, send or serve.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.slots.get_mut(key)?.as_mut().map(|e| &mut e.handle)
    }

    /// The interest the handle at `key` is watched for.
    pub fn interest(&self, key: usize) -> Option<Interest> {
        self.slots.get(key)?.as_ref().map(|e| e.interest)
    }

    /// How many handles the set watches.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set watches no handle.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys in use, in increasing order.
    pub fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(k, e)| e.as_ref().map(|_| k))
    }

    /// Looks at the rings a wait makes before it sleeps (default 4096; 0
    /// sleeps at once). Each look polls every hot handle and one other.
    pub fn set_spin_budget(&mut self, looks: u32) {
        self.spin_budget = looks;
    }

    /// A descriptor that becomes readable when some handle may be ready,
    /// for an event loop (Linux: an epoll instance over every handle's
    /// readiness descriptor, made on the first call and kept up to date by
    /// `insert` and `remove`). Handles need
    /// [`Options::readiness`](crate::Options::readiness); a handle without it
    /// (or in pure-spin mode) is still watched, by looking again at least
    /// every millisecond while armed. The protocol is the handles' own
    /// ([`Receiver::readiness_fd`]): [`arm_readiness`](Self::arm_readiness);
    /// unless it says ready, wait for the descriptor (or the plan's time
    /// cap, or [`LIVENESS_SLICE`](crate::LIVENESS_SLICE)), then
    /// [`disarm_readiness`](Self::disarm_readiness), and again.
    /// [`Error::Unsupported`] outside Linux.
    pub fn readiness_fd(&mut self) -> Result<BorrowedFd<'_>> {
        let r = match self.readiness.take() {
            Some(r) => r,
            None => {
                let fd = epoll_create()?;
                let mut unsignalled = 0;
                for (key, e) in self.slots.iter_mut().enumerate() {
                    if let Some(e) = e {
                        e.signalled = register(&fd, key, &e.handle, e.interest);
                        unsignalled += usize::from(!e.signalled);
                    }
                }
                Readiness { fd, unsignalled }
            }
        };
        Ok(rustix::fd::AsFd::as_fd(&self.readiness.insert(r).fd))
    }

    /// Step 1 of the readiness protocol: look at the handles (spinning the
    /// set's spin budget) and, if none is ready, announce sleep on every
    /// ring and look once more. [`SleepPlan::Ready`]: `events` lists the
    /// ready handles, as [`wait`](Self::wait) would. Otherwise wait for the
    /// descriptor. Errors as for `wait` ([`Error::Cancelled`]); call
    /// [`readiness_fd`](Self::readiness_fd) first.
    pub fn arm_readiness(&mut self, events: &mut Events) -> Result<SleepPlan> {
        events.list.clear();
        self.round += 1;
        self.probe_if_due()?;
        if self.look(events) {
            return Ok(SleepPlan::Ready);
        }
        for _ in 0..self.spin_budget {
            std::hint::spin_loop();
            if self.look(events) {
                return Ok(SleepPlan::Ready);
            }
        }
        if self.look_all(events) {
            return Ok(SleepPlan::Ready);
        }
        let mut words = std::mem::take(&mut self.words);
        words.clear();
        let mut wakes = true;
        for e in self.slots.iter_mut().flatten() {
            wakes &= e.handle.announce(e.interest, &mut words);
        }
        let round = self.round;
        let slots = &mut self.slots;
        let mut plan = prepare_sleep(&self.waiter, &words, || {
            slots
                .iter_mut()
                .flatten()
                .any(|e| check(0, e, round).is_some())
        });
        self.words = words;
        if plan == SleepPlan::Ready {
            for e in self.slots.iter_mut().flatten() {
                e.handle.withdraw(e.interest);
            }
            self.look_all(events);
            return Ok(SleepPlan::Ready);
        }
        let unsignalled = self
            .readiness
            .as_ref()
            .map_or(usize::MAX, |r| r.unsignalled);
        if !wakes || unsignalled > 0 {
            plan = SleepPlan::Sleep(Some(memtube_ring::WAIT_ANY_SLICE));
        }
        Ok(plan)
    }

    /// Step 2 of the readiness protocol: drain the readiness descriptors
    /// that fired (finding a dead peer's at once) and take back every
    /// announcement.
    pub fn disarm_readiness(&mut self) {
        let mut fired = Vec::new();
        if let Some(r) = &self.readiness {
            // Each handle has at most two descriptors in it.
            epoll_fired(&r.fd, 2 * self.len, &mut fired);
        }
        fired.sort_unstable();
        fired.dedup();
        for key in fired {
            let Some(Some(e)) = self.slots.get_mut(key) else {
                continue;
            };
            if e.handle.disarm(e.interest) && e.signalled {
                // A wake channel that will never signal (its peer closed
                // it but lives on): out of the epoll instance, or it would
                // stay readable; the handle is looked at every millisecond.
                if let Some(r) = &mut self.readiness {
                    deregister(&r.fd, &e.handle, e.interest);
                    r.unsignalled += 1;
                }
                e.signalled = false;
            }
        }
        for e in self.slots.iter_mut().flatten() {
            e.handle.withdraw(e.interest);
        }
    }

    /// Wait until at least one handle is ready, for at most `timeout`
    /// (`None`: no limit), and list the ready ones in `events` (cleared
    /// first). [`Error::Timeout`] when none became ready in time (an empty
    /// set just waits out its timeout).
    ///
    /// A handle whose peer died is reported (readable or writable, and
    /// [closed](Event::is_closed)) within about
    /// [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) of the death, whether the
    /// set sleeps or is kept busy by other handles. `Some(Duration::ZERO)`
    /// looks once at every handle and returns (no spin).
    /// [`Error::Cancelled`] once the cancel token of any handle's
    /// connection is cancelled.
    pub fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<()> {
        events.list.clear();
        self.round += 1;
        // A set kept busy never sleeps, so it asks about its peers from here
        // too: the clock is read every `BUSY_CLOCK_EVERY` waits.
        self.busy_waits += 1;
        if self.busy_waits >= BUSY_CLOCK_EVERY {
            self.busy_waits = 0;
            self.probe_if_due()?;
        }
        // The hot handles, and one other.
        if self.look(events) {
            return Ok(());
        }
        if timeout == Some(Duration::ZERO) {
            // A poll: no spin, no sleep.
            return if self.look_all(events) {
                Ok(())
            } else {
                Err(Error::Timeout)
            };
        }
        for _ in 0..self.spin_budget {
            std::hint::spin_loop();
            if self.look(events) {
                return Ok(());
            }
        }
        self.wait_slow(events, timeout)
    }

    /// Ask the kernel about every peer (one `poll`) if the last time was
    /// [`LIVENESS_SLICE`](crate::LIVENESS_SLICE) ago or more, and report a
    /// cancelled connection.
    fn probe_if_due(&mut self) -> Result<()> {
        if self.slots.iter().flatten().any(|e| e.handle.cancelled()) {
            return Err(Error::Cancelled);
        }
        let now = self.waiter.now();
        if now.saturating_sub(self.last_probe) >= crate::LIVENESS_SLICE {
            self.last_probe = now;
            probe_all(self.slots.iter().flatten().map(|e| e.handle.link()));
        }
        Ok(())
    }

    /// One look: every hot handle, and the next cold one.
    #[inline]
    fn look(&mut self, events: &mut Events) -> bool {
        let round = self.round;
        let mut i = 0;
        while i < self.hot.len() {
            let key = self.hot[i];
            let Some(e) = self.slots.get_mut(key).and_then(Option::as_mut) else {
                self.hot.swap_remove(i);
                continue;
            };
            if round - e.ready_round > HOT_ROUNDS {
                e.hot = false;
                self.hot.swap_remove(i);
                continue;
            }
            if let Some(ev) = check(key, e, round) {
                events.list.push(ev);
            }
            i += 1;
        }
        if self.slots.is_empty() {
            return !events.list.is_empty();
        }
        // One cold handle.
        let n = self.slots.len();
        for _ in 0..n {
            let key = self.cursor % n;
            self.cursor = key + 1;
            if let Some(e) = self.slots[key].as_mut() {
                if !e.hot {
                    if let Some(ev) = check(key, e, round) {
                        e.hot = true;
                        self.hot.push(key);
                        events.list.push(ev);
                    }
                    break;
                }
            }
        }
        !events.list.is_empty()
    }

    /// Every handle, hot or not.
    fn look_all(&mut self, events: &mut Events) -> bool {
        events.list.clear();
        let round = self.round;
        for (key, slot) in self.slots.iter_mut().enumerate() {
            if let Some(e) = slot.as_mut() {
                if let Some(ev) = check(key, e, round) {
                    if !e.hot {
                        e.hot = true;
                        self.hot.push(key);
                    }
                    events.list.push(ev);
                }
            }
        }
        !events.list.is_empty()
    }

    #[cold]
    #[inline(never)]
    fn wait_slow(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<()> {
        let start = self.waiter.now();
        self.probe_if_due()?;
        loop {
            if self.look_all(events) {
                return Ok(());
            }
            let left = match timeout {
                None => None,
                Some(t) => match t.checked_sub(self.waiter.now().saturating_sub(start)) {
                    Some(l) if !l.is_zero() => Some(l),
                    _ => return Err(Error::Timeout),
                },
            };
            let slice = left.map_or(crate::LIVENESS_SLICE, |l| l.min(crate::LIVENESS_SLICE));
            let slice_start = self.waiter.now();
            // Announce on every ring, then the sleeper's half of the
            // protocol once for all of them (memtube_ring::sleep_many).
            let mut words = std::mem::take(&mut self.words);
            words.clear();
            let mut wakes = true;
            for e in self.slots.iter_mut().flatten() {
                wakes &= e.handle.announce(e.interest, &mut words);
            }
            if wakes {
                let slots = &mut self.slots;
                let round = self.round;
                sleep_many(&self.waiter, &words, Some(slice), || {
                    slots
                        .iter_mut()
                        .flatten()
                        .any(|e| check(0, e, round).is_some())
                });
            }
            for e in self.slots.iter_mut().flatten() {
                e.handle.withdraw(e.interest);
            }
            words.clear();
            self.words = words;
            if !wakes {
                // A ring in pure-spin mode: nobody would wake the sleep.
                // Poll until the slice ends.
                while self.waiter.now().saturating_sub(slice_start) < slice {
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                    if self.look_all(events) {
                        return Ok(());
                    }
                }
            }
            // Every `LIVENESS_SLICE` without news, however the sleeps were
            // cut (a spurious return, the portable wait's 1 ms slices): ask
            // the kernel about every peer at once.
            self.probe_if_due()?;
            if self.look_all(events) {
                return Ok(());
            }
        }
    }
}

/// The event of `e` if it is ready; marks it as ready in `round`.
#[inline]
fn check<T: Pollable>(key: usize, e: &mut Entry<T>, round: u64) -> Option<Event> {
    let (readable, writable, closed) = e.handle.readiness(e.interest);
    if readable || writable {
        e.ready_round = round;
        Some(Event {
            key,
            readable,
            writable,
            closed,
        })
    } else {
        None
    }
}

/// Add `handle`'s readiness descriptors (of `interest`) to the epoll
/// instance `ep`, tagged with `key`; `true` when every ring of `interest` has a
/// descriptor and each was added (else the set looks at it by time).
fn register<T: Pollable>(ep: &OwnedFd, key: usize, handle: &T, interest: Interest) -> bool {
    let fds = handle.readiness_fds(interest);
    let wanted = usize::from(interest.readable) + usize::from(interest.writable.is_some());
    let mut added = 0;
    for fd in fds.iter().flatten() {
        added += usize::from(epoll_add(ep, *fd, key));
    }
    added == wanted && added > 0
}

/// Remove `handle`'s descriptors from `ep` (those not in it are ignored).
fn deregister<T: Pollable>(ep: &OwnedFd, handle: &T, interest: Interest) {
    for fd in handle.readiness_fds(interest).iter().flatten() {
        epoll_delete(ep, *fd);
    }
}

#[cfg(target_os = "linux")]
fn epoll_create() -> Result<OwnedFd> {
    Ok(rustix::event::epoll::create(
        rustix::event::epoll::CreateFlags::CLOEXEC,
    )?)
}

#[cfg(target_os = "linux")]
fn epoll_add(ep: &OwnedFd, fd: BorrowedFd<'_>, key: usize) -> bool {
    use rustix::event::epoll;
    epoll::add(
        ep,
        fd,
        epoll::EventData::new_u64(key as u64),
        epoll::EventFlags::IN,
    )
    .is_ok()
}

#[cfg(target_os = "linux")]
fn epoll_delete(ep: &OwnedFd, fd: BorrowedFd<'_>) {
    let _ = rustix::event::epoll::delete(ep, fd);
}

/// The keys of the descriptors of `ep` that are readable now (no wait),
/// with room for `most` events: one `epoll_wait` (a level-triggered
/// instance reports a still-readable descriptor again at every call, so
/// calling until a short answer would never end).
#[cfg(target_os = "linux")]
fn epoll_fired(ep: &OwnedFd, most: usize, keys: &mut Vec<usize>) {
    use rustix::event::epoll;
    let mut buf = Vec::with_capacity(most.max(1));
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if epoll::wait(ep, rustix::buffer::spare_capacity(&mut buf), Some(&zero)).is_ok() {
        keys.extend(buf.iter().map(|e: &epoll::Event| e.data.u64() as usize));
    }
}

#[cfg(not(target_os = "linux"))]
fn epoll_create() -> Result<OwnedFd> {
    Err(Error::Unsupported(
        "a poll set's readiness descriptor (Linux epoll only)",
    ))
}

#[cfg(not(target_os = "linux"))]
fn epoll_add(_: &OwnedFd, _: BorrowedFd<'_>, _: usize) -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn epoll_delete(_: &OwnedFd, _: BorrowedFd<'_>) {}

#[cfg(not(target_os = "linux"))]
fn epoll_fired(_: &OwnedFd, _: usize, _: &mut Vec<usize>) {}
