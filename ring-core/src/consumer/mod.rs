//! The consumer handle: its state, its public methods, and the blocking wait
//! for a record. Reading and validating records, releasing space, and the
//! received message types live in the submodules.

use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::ring::{read_stats, Shared, Stats};
use crate::sleep::DEFAULT_SPIN_BUDGET;
use crate::sleep::{announce, sleep_until, wake_peer, withdraw, Side, Sleep, SleepWord};
use crate::sync::{spin_hint, AtomicU64, Ordering::*};
use crate::wait::Wait;
use core::time::Duration;

mod message;
mod poll;
mod release;

pub use message::{Message, Peek};
use poll::Rec;

/// The reading end of a ring. `Send`, not `Sync`: one thread at a time.
///
/// Dropping it releases everything it consumed and marks the consumer role
/// closed; a producer blocked on a full ring then gets [`Error::Closed`].
pub struct Consumer<'a, W: Wait> {
    sh: Shared<'a>,
    wait: W,
    /// Position (bytes, wrapping) of the next record header to read. Consumer-local.
    tail: u32,
    /// The released position last stored in the consumer block. `published <= tail`.
    published: u32,
    /// The released position last stored *and* followed by the wake-up
    /// check (`publish_release`); `checked <= published`. A release stored
    /// while spinning (`store_release` alone) leaves it behind: the next
    /// `publish_release` owes the check, and the release threshold counts
    /// from here, so the producer is woken where it was before such stores.
    checked: u32,
    /// The record at `tail`, once validated (its offset and length, copied
    /// out of the commit word once): `poll` returns it without reading the
    /// commit word again. Cleared whenever `tail` moves.
    ready: Option<Rec>,
    mask: u32,
    release_threshold: u32,
    spin_budget: u32,
    /// Our sleep episodes, and the producer's we woke.
    sleep: Sleep,
    messages: u64,
    bytes: u64,
    poison: Option<Corruption>,
}

// SAFETY: the consumer role is exclusive (claimed in the region): only this
// handle writes the consumer block and reads published records until it
// releases them; shared state is reached through atomics or through bytes
// the protocol hands to one side at a time. Moving the handle moves the role.
unsafe impl<W: Wait + Send> Send for Consumer<'_, W> {}

impl<'a, W: Wait> Consumer<'a, W> {
    pub(crate) fn new(sh: Shared<'a>, wait: W) -> Self {
        let mask = sh.capacity - 1;
        let release_threshold = sh.capacity / 4;
        let mut c = Consumer {
            sh,
            wait,
            tail: 0,
            published: 0,
            checked: 0,
            ready: None,
            mask,
            release_threshold,
            spin_budget: DEFAULT_SPIN_BUDGET,
            sleep: Sleep::new(),
            messages: 0,
            bytes: 0,
            poison: None,
        };
        // Light wakes only in default mode (pure spin never wakes).
        let light = !c.sh.pure_spin && c.wait.light_wake();
        c.sleep.announce_waker(&c.sh.cons.wait, light);
        c
    }

    /// Data-area capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.sh.capacity
    }

    /// Largest payload of this ring.
    pub fn max_payload(&self) -> u32 {
        self.sh.max_payload
    }

    /// How many times a blocking call polls before it announces sleep
    /// (default 4096). Ignored in pure-spin mode, which always spins.
    pub fn set_spin_budget(&mut self, spins: u32) {
        self.spin_budget = spins;
    }

    /// Publish the released position, and wake the producer if it sleeps
    /// for room, once this many bytes have been consumed since the last
    /// such publication (default: a quarter of the capacity; clamped to
    /// `1..=capacity`). Released space is also published so whenever the
    /// ring is found empty by [`try_recv`](Self::try_recv) or [`peek`](Self::peek),
    /// before sleeping, and on drop, so a waiting producer never stalls; a
    /// blocking receive that finds the ring empty stores it at once (so a
    /// producer that reads it sees it) and leaves the wake-up check to one
    /// of those points.
    pub fn set_release_threshold(&mut self, bytes: u32) {
        self.release_threshold = bytes.clamp(1, self.sh.capacity);
    }

    /// Whether the producer has dropped its handle. May be stale; messages it
    /// published before may still be waiting.
    pub fn is_producer_closed(&self) -> bool {
        self.sh.prod.wait.state.load(Acquire) == STATE_CLOSED
    }

    /// Counters and role states of this ring. May be stale.
    pub fn stats(&self) -> Stats {
        read_stats(self.sh.prod, self.sh.cons)
    }

    /// Who holds the producer role, if the producer recorded it
    /// ([`attach_producer_as`](crate::attach_producer_as)): ask whether it
    /// still exists when nothing arrives.
    pub fn producer_holder(&self) -> Option<crate::Holder> {
        crate::Holder::read(&self.sh.prod.wait)
    }

    /// A consumer that continues the stream of one that is gone (see
    /// `take_over_consumer`): from the released position it last stored.
    pub(crate) fn resume(sh: Shared<'a>, wait: W) -> Result<Self, Error> {
        // SYNC POINT: Acquire; pairs with the old consumer's Release store.
        let released = sh.cons.hot.released.load(Acquire);
        // A record boundary, so 8-aligned, unless someone else wrote it.
        // Whatever else is wrong with it, the records read from it are
        // validated as any others (and the producer refuses it if it is out
        // of its range).
        if released % RECORD_ALIGN != 0 {
            return Err(Error::Corrupt(Corruption::BadReleasedPosition));
        }
        let mut c = Consumer::new(sh, wait);
        c.tail = released;
        c.published = released;
        c.checked = released;
        c.messages = c.sh.cons.hot.messages.load(Relaxed);
        c.bytes = c.sh.cons.hot.bytes.load(Relaxed);
        let wakes = c.sh.cons.hot.wakes.load(Relaxed);
        c.sleep.resume(&c.sh.cons.wait, wakes);
        // The old consumer may have stored a release and died before the
        // wake-up check it owed (`store_release` alone, or inside
        // `publish_release`): make it (`Sleep::resume`).
        if !c.sh.pure_spin {
            wake_peer(&mut c);
        }
        Ok(c)
    }

    #[cold]
    #[inline(never)]
    fn poisoned(&mut self, c: Corruption) -> Error {
        self.poison = Some(c);
        Error::Corrupt(c)
    }

    /// Whether [`try_recv`](Self::try_recv) would return a message now: one load of
    /// the next header when nothing changed, and the validated header is kept
    /// so that the `recv` or `peek` that follows does not read it again.
    /// Never blocks, never publishes.
    #[inline]
    pub fn has_message(&mut self) -> Result<bool, Error> {
        Ok(self.poll()?.is_some())
    }

    /// Nothing at `tail`: publish released space; report `Closed` once the
    /// producer is gone and everything it published was delivered.
    fn on_empty(&mut self) -> Result<Option<Rec>, Error> {
        self.publish_release();
        // SYNC POINT: Acquire; pairs with the Release store of the closed state
        // in the producer's `Drop`, which follows its last publication.
        if self.sh.prod.wait.state.load(Acquire) == STATE_CLOSED {
            return match self.poll()? {
                Some(r) => Ok(Some(r)),
                None => Err(Error::Closed),
            };
        }
        Ok(None)
    }

    #[inline]
    fn message(&mut self, r: Rec) -> Message<'_, 'a, W> {
        self.sh.data.track_read(r.off(), r.size());
        Message { c: self, r }
    }

    /// Receive the next message in place, without blocking.
    ///
    /// The message borrows the consumer; its space is released when it is
    /// dropped (or by [`Message::release`]). Errors: [`Error::Empty`],
    /// [`Error::Closed`] (the producer closed and everything was delivered),
    /// [`Error::Corrupt`].
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap();
    /// assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    /// tx.try_send(&3.5f64.to_ne_bytes(), 9).unwrap();
    /// let m = rx.try_recv().unwrap();
    /// // Payloads are 8-byte aligned: read a value in place.
    /// assert_eq!(m.payload().as_ptr() as usize % 8, 0);
    /// assert_eq!(f64::from_ne_bytes(m.payload().try_into().unwrap()), 3.5);
    /// drop(m);
    /// drop(tx);
    /// assert_eq!(rx.try_recv().err(), Some(Error::Closed));
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<'_, 'a, W>, Error> {
        if let Some(r) = self.poll()? {
            return Ok(self.message(r));
        }
        match self.on_empty()? {
            Some(r) => Ok(self.message(r)),
            None => Err(Error::Empty),
        }
    }

    /// Look at the next message without consuming it: a later `peek` or
    /// `recv` returns the same message.
    #[inline]
    pub fn peek(&mut self) -> Result<Peek<'_>, Error> {
        let r = match self.poll()? {
            Some(r) => r,
            None => self.on_empty()?.ok_or(Error::Empty)?,
        };
        self.sh.data.track_read(r.off(), r.size());
        Ok(Peek {
            type_id: self.type_id(r),
            payload: self.payload(r),
        })
    }

    /// Receive, blocking until a message arrives or the producer closes
    /// ([`Error::Closed`], after every published message was delivered).
    ///
    /// When the ring is empty it stores its released position at once, spins
    /// `spin_budget` polls, then announces sleep on its own line, re-checks,
    /// and sleeps through [`Wait::wait`] until the producer publishes
    /// (unless the ring is in pure-spin mode, where it keeps spinning).
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_, 'a, W>, Error> {
        let r = self.wait_record(None)?;
        Ok(self.message(r))
    }

    /// [`recv`](Self::recv) with a time limit: [`Error::Timeout`] when no
    /// message arrived within `timeout`.
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_, 'a, W>, Error> {
        let r = self.wait_record(Some(timeout))?;
        Ok(self.message(r))
    }

    /// Block until a [`try_recv`](Self::try_recv) would return a message,
    /// without receiving it: the same waiting and errors as
    /// [`recv_timeout`](Self::recv_timeout) (`None` waits without limit), but
    /// nothing is borrowed, so a caller can wait in slices (checking other
    /// conditions between them) and then call `try_recv` or `peek`, which
    /// then return the message.
    #[inline]
    pub fn wait_message(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.wait_record(timeout).map(|_| ())
    }

    /// The spin phase runs inline, in the caller; the rest out of line.
    ///
    /// The out-of-line part returns no record: it leaves it cached in
    /// `ready`, where the final `poll` finds it (one word, stored and
    /// loaded whole; see "Store forwarding" in `producer/place.rs`).
    #[inline(always)]
    fn wait_record(&mut self, timeout: Option<Duration>) -> Result<Rec, Error> {
        if let Some(r) = self.poll()? {
            return Ok(r);
        }
        // Found empty: store the released position now, so that a producer
        // that reads it (early wrap, a full ring) sees everything consumed
        // so far. In a round trip this runs while the answer is on its way
        // back, off the message's path. Without it a spinning receiver
        // published only at its release threshold (a quarter of the
        // capacity), and early wrap from 4 KiB on 64 KiB rings was lost
        // (measured: 1 KiB round trips 2.25 -> 1.28x the ring floor with
        // this). The wake-up check (a SeqCst fence) is left to the next
        // `publish_release` (the slow path, the release threshold, which
        // counts from the last check, or drop), so a producer asleep for
        // room is woken where it was before, and streams whose consumer
        // often catches up do not pay a fence each time (256-byte copying
        // streams lost 8% with it).
        self.store_release();
        for _ in 0..self.spin_budget {
            spin_hint();
            if let Some(r) = self.poll()? {
                return Ok(r);
            }
        }
        self.wait_record_slow(timeout)?;
        match self.poll()? {
            Some(r) => Ok(r),
            // `wait_record_slow` returns Ok only with `ready` set.
            None => {
                debug_assert!(false, "wait_record_slow returned without a record");
                Err(Error::Empty)
            }
        }
    }

    /// Wait until `poll` finds a record (left in `ready`), the timeout, or an error.
    #[inline(never)]
    fn wait_record_slow(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        sleep_until(self, (), timeout)
    }

    /// For a wait on several rings ([`sleep_many`](crate::sleep_many)),
    /// after [`has_message`](Self::has_message) said no: publish the space
    /// released so far (waking a producer that waits for it), then announce
    /// that this consumer sleeps until the producer publishes or closes.
    /// The returned word is what to wait on. `None` in pure-spin mode,
    /// where the producer never wakes anyone: poll instead.
    ///
    /// Every announcement is taken back with
    /// [`withdraw_sleep`](Self::withdraw_sleep) once the wait is over.
    pub fn announce_sleep(&mut self) -> Option<SleepWord<'a>> {
        if self.sh.pure_spin {
            return None;
        }
        self.publish_release();
        Some(announce(self))
    }

    /// Take back [`announce_sleep`](Self::announce_sleep): the producer
    /// stops waking this consumer.
    pub fn withdraw_sleep(&mut self) {
        withdraw(self);
    }

    /// Drain up to `max` messages, calling `f(type_id, payload)` for each,
    /// and release their space with one publication at the end.
    ///
    /// Returns how many were delivered (at least one, unless `max` is 0), or
    /// [`Error::Empty`] / [`Error::Closed`] / [`Error::Corrupt`] when none was. Corruption found
    /// after some messages were delivered is reported by the next call.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap();
    /// for i in 0..5u8 { tx.send_staged(&[i], 0).unwrap(); }
    /// tx.publish();
    /// let mut seen = Vec::new();
    /// assert_eq!(rx.recv_batch(10, |_, p| seen.push(p[0])), Ok(5));
    /// assert_eq!(seen, [0, 1, 2, 3, 4]);
    /// ```
    pub fn recv_batch<F: FnMut(u32, &[u8])>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, Error> {
        if max == 0 {
            return match self.poison {
                Some(c) => Err(Error::Corrupt(c)),
                None => Ok(0),
            };
        }
        let mut n = 0;
        while n < max {
            let r = match self.poll() {
                Ok(Some(r)) => r,
                Ok(None) if n == 0 => match self.on_empty()? {
                    Some(r) => r,
                    None => return Err(Error::Empty),
                },
                Ok(None) => break,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            };
            self.sh.data.track_read(r.off(), r.size());
            f(self.type_id(r), self.payload(r));
            self.ready = None;
            self.tail = self.tail.wrapping_add(r.size());
            self.messages += 1;
            self.bytes += r.len() as u64;
            n += 1;
        }
        if n == 0 {
            return Err(Error::Empty);
        }
        self.publish_release();
        Ok(n)
    }
}

impl<'a, W: Wait> Side<'a> for Consumer<'a, W> {
    type W = W;
    #[inline(always)]
    fn lines(&self) -> (&'a WaitLine, &'a WaitLine) {
        (&self.sh.cons.wait, &self.sh.prod.wait)
    }
    #[inline(always)]
    fn wakes_counter(&self) -> &'a AtomicU64 {
        &self.sh.cons.hot.wakes
    }
    #[inline(always)]
    fn waiter(&self) -> &W {
        &self.wait
    }
    #[inline(always)]
    fn sleep_state(&mut self) -> &mut Sleep {
        &mut self.sleep
    }
    #[inline(always)]
    fn pure_spin(&self) -> bool {
        self.sh.pure_spin
    }
    type Goal = ();
    #[inline(always)]
    fn ready(&mut self, _: ()) -> Result<bool, Error> {
        Ok(self.poll()?.is_some())
    }
    #[inline(always)]
    fn idle(&mut self) -> Result<bool, Error> {
        Ok(self.on_empty()?.is_some())
    }
}

impl<W: Wait> core::fmt::Debug for Consumer<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("producer_closed", &self.is_producer_closed())
            .finish_non_exhaustive()
    }
}

impl<W: Wait> Drop for Consumer<'_, W> {
    fn drop(&mut self) {
        self.publish_release();
        // SYNC POINT: Release; pairs with the producer's Acquire load of our state.
        self.sh.cons.wait.state.store(STATE_CLOSED, Release);
        if !self.sh.pure_spin {
            wake_peer(self);
        }
    }
}
