//! The producer handle: its state, its public methods, and the blocking wait
//! for room. How a record is placed, written, cleared ahead and granted, and
//! how the consumer's released position is read, live in the submodules.

use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::ring::{read_stats, Shared, Stats};
use crate::sleep::DEFAULT_SPIN_BUDGET;
use crate::sleep::{announce, sleep_until, wake_peer, withdraw, Side, Sleep, SleepWord};
use crate::sync::{spin_hint, AtomicU64, Ordering::*};
use crate::wait::Wait;
use core::time::Duration;

mod clear;
mod commit;
mod distance;
mod grant;
mod place;
mod released;
mod resume;

pub use grant::{DetachedGrant, Grant};
use place::Plan;

/// The writing end of a ring. `Send`, not `Sync`: one thread at a time.
///
/// Dropping it publishes staged messages and marks the producer role closed;
/// the consumer then receives every published message and afterwards
/// [`Error::Closed`].
pub struct Producer<'a, W: Wait> {
    sh: Shared<'a>,
    wait: W,
    /// Position (bytes, wrapping) where the next record goes. Producer-local.
    head: u32,
    /// The consumer's released position as last read and validated; may be
    /// stale (behind), never ahead. Invariant: `head - cached_released <= capacity - 8`.
    cached_released: u32,
    mask: u32,
    /// Position just past the last published record (and its line padding):
    /// `cached_released <= published <= head`.
    published: u32,
    /// Every 8-byte slot in `[head, zeroed)` has a zero commit word (cleared by
    /// us after the consumer released it, or by `init`) that no grant has
    /// handed out since. Invariant: `8 <= zeroed - head <= capacity`, and
    /// `zeroed <= cached_released + capacity`.
    zeroed: u32,
    /// The last committed record was smaller than a cache line (see
    /// `clear_ahead`).
    small_last: bool,
    /// Records smaller than this get line padding (`line_pad`): a cache
    /// line when it is on, else 0.
    pad_below: u32,
    /// Copying sends of payloads at least this long use non-temporal stores.
    nontemporal_from: u32,
    /// So do copying sends of payloads at least this long that start within
    /// `STREAM_GAP_TICKS` of the end of the previous such send (a stream);
    /// `u32::MAX`: off. The default's traffic rule; a caller's threshold
    /// replaces it.
    stream_nontemporal_from: u32,
    /// `min(nontemporal_from, stream_nontemporal_from)`: below it, a copying
    /// send neither writes non-temporally nor reads the clock.
    nontemporal_low: u32,
    /// The stream rule's end: from this many bytes on, a copying send below
    /// `nontemporal_from` uses ordinary stores whatever its gap. `u32::MAX`
    /// unless the distance rule's verdict is "close" (`distance.rs`).
    stream_nontemporal_below: u32,
    /// Time-stamp counter when the last copying send of at least
    /// `stream_nontemporal_from` bytes returned (after its commit and
    /// publication, or its staging).
    stream_last_end: u64,
    /// The distance rule (`distance.rs`): over rings larger than the L2
    /// cache, ordinary stores while the consumer's core is close.
    distance: distance::Distance,
    /// A record that would start at this data-area offset or later goes to
    /// offset 0 instead when the ring is nearly empty (`place`);
    /// `u32::MAX`: never early.
    wrap_from: u32,
    /// `publish` refreshes the released position when the head's offset
    /// is at least this (once per `wrap_from` bytes of a lap), so that
    /// `place` can see that the start of the lap is free.
    refresh_from: u32,
    /// First committed record whose commit word is not yet stored: its
    /// offset and word. Later staged records' words are already stored; the
    /// consumer cannot get past this one, so storing it publishes them all.
    pending: Option<(u32, u32)>,
    spin_budget: u32,
    /// Our sleep episodes, and the consumer's we woke.
    sleep: Sleep,
    messages: u64,
    bytes: u64,
    full: u64,
    poison: Option<Corruption>,
}

// SAFETY: the producer role is exclusive (claimed in the region): only this
// handle writes the producer block and unpublished parts of the data area, and
// everything it shares with the consumer is reached through atomics or
// through bytes the protocol hands to exactly one side at a time. Moving the
// handle to another thread moves that exclusive role with it.
unsafe impl<W: Wait + Send> Send for Producer<'_, W> {}

impl<'a, W: Wait> Producer<'a, W> {
    pub(crate) fn new(sh: Shared<'a>, wait: W) -> Self {
        let mask = sh.capacity - 1;
        let distance = distance::Distance::new(sh.capacity);
        let mut p = Producer {
            sh,
            wait,
            head: 0,
            cached_released: 0,
            published: 0,
            mask,
            zeroed: RECORD_HEADER,
            small_last: true,
            pad_below: 0,
            nontemporal_from: crate::copy::default_nontemporal_threshold(),
            stream_nontemporal_from: crate::copy::default_stream_nontemporal_threshold(),
            nontemporal_low: 0,
            stream_nontemporal_below: u32::MAX,
            stream_last_end: 0,
            distance,
            wrap_from: u32::MAX,
            refresh_from: u32::MAX,
            pending: None,
            spin_budget: DEFAULT_SPIN_BUDGET,
            sleep: Sleep::new(),
            messages: 0,
            bytes: 0,
            full: 0,
            poison: None,
        };
        p.set_thresholds(p.nontemporal_from, p.stream_nontemporal_from, u32::MAX);
        // Light wakes only in default mode (pure spin never wakes).
        let light = !p.sh.pure_spin && p.wait.light_wake();
        p.sleep.announce_waker(&p.sh.prod.wait, light);
        p
    }

    /// Data-area capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.sh.capacity
    }

    /// Largest payload this ring accepts ([`crate::max_payload`] of the capacity).
    pub fn max_payload(&self) -> u32 {
        self.sh.max_payload
    }

    /// How many times a blocking call polls before it announces sleep
    /// (default 4096). Ignored in pure-spin mode, which always spins.
    pub fn set_spin_budget(&mut self, spins: u32) {
        self.spin_budget = spins;
    }

    /// Whether a publishing commit (`try_send`, `send`, `send_timeout`,
    /// [`Grant::commit`]) of a whole reservation whose record is smaller
    /// than a cache line (payloads up to 48 bytes) puts padding after it up
    /// to the end of its line when the rest of the line is shorter than the
    /// record, so that the next message, if it is alike, starts a line
    /// instead of straddling two. Payloads of 25 to 48 bytes then take a
    /// line each; smaller ones still share lines.
    ///
    /// Off unless set, in every layout. The trade-off: request-response
    /// exchanges of small messages gain (most when the consumer maps the
    /// data area read-only, where a message across two lines costs more
    /// than the second line's transfer), while a stream of small messages
    /// published one by one moves more cache lines per message and loses
    /// rate. Staged commits ([`send_staged`](Self::send_staged),
    /// [`Grant::commit_staged`]) never pad, so batches ending in
    /// [`publish`](Self::publish) keep their rate.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap();
    /// tx.set_line_padding(true);
    /// tx.try_send(&[7; 32], 1).unwrap(); // 40 bytes, then 24 bytes of padding
    /// tx.try_send(&[8; 32], 2).unwrap(); // starts the next cache line
    /// assert_eq!(rx.try_recv().unwrap().payload(), &[7; 32]);
    /// assert_eq!(rx.try_recv().unwrap().payload(), &[8; 32]);
    /// ```
    pub fn set_line_padding(&mut self, on: bool) {
        self.pad_below = if on { CACHE_LINE } else { 0 };
    }

    /// Copying sends ([`try_send`](Self::try_send), [`send`](Self::send),
    /// [`send_staged`](Self::send_staged)) of payloads of at least `bytes`
    /// bytes write their whole cache lines with non-temporal stores, which
    /// bypass the producer's cache (x86-64 with SSE2 only; elsewhere, and
    /// under Miri, it changes nothing); so does [`Grant::copy_from`] for
    /// what it copies. `u32::MAX` turns it off. The default depends on the
    /// processor: [`default_nontemporal_threshold`](crate::default_nontemporal_threshold)
    /// (16 KiB on AMD, off elsewhere), and on AMD it adds a traffic rule:
    /// a copying send of 2 KiB or more that starts right after the previous
    /// one ended (96 time-stamp-counter ticks, a few tens of nanoseconds: a
    /// sending loop, not a request waiting for its reply) uses them too;
    /// and a distance rule: over a ring larger than the core's L2 cache
    /// (over any ring on AMD Zen 3), while timed reads of the consumer's
    /// released position say its core shares the producer's L3 (at least
    /// three of a window of four reads within 200 time-stamp-counter
    /// ticks), sends of 8 KiB or more use ordinary stores (grants' copies
    /// too; on Zen 3 every send of 2 KiB or more, streams included). Calling this method replaces all three
    /// with the one threshold given (for good: a new producer starts with
    /// the rules again).
    /// Grants the caller fills itself: see the end of this text.
    ///
    /// A message is read once, by another core. With ordinary stores its
    /// lines stay modified in the producer's cache and the consumer fetches
    /// each from there, at a speed that depends on the processor and on
    /// where the two cores are; non-temporal stores put them in memory,
    /// where the consumer's prefetches find them at about the same speed
    /// wherever the cores are. Which is faster depends on the machine, on
    /// where the two cores are, on the ring and on the traffic. On the AMD
    /// EPYC (Zen 4) measured: memory won for 64 KiB messages, except over
    /// rings larger than a core's L2 between close cores (4 MiB rings:
    /// streams 35 GB/s with ordinary stores, 21 with non-temporal ones;
    /// round trips 3.7 or 7.4 µs from one connection to the next, against
    /// 6.5), hence the distance rule; for 1–4 KiB
    /// messages it won streams (4 KiB: 1.6 times the
    /// rate between close cores, 5 times between far ones) and round trips
    /// between far cores (1.3 times faster) but lost round trips between
    /// close ones (twice as slow), hence the 16 KiB default there and the
    /// stream rule from 2 KiB. On the AMD EPYC (Zen 3) measured, whose
    /// non-temporal stores reach memory at half the Zen 4's rate, the
    /// caches won at every size between close cores (64 KiB round trips
    /// 6.8 against 10.0 µs) and memory as on Zen 4 between far ones, hence
    /// the distance rule over every ring there. On the
    /// Intel Xeon measured the caches won at every size measured. Measure
    /// yours with memtube-bench (its "non-temporal copy off/always" rows)
    /// before changing it.
    ///
    /// Grants are filled by the caller: one who writes a payload with
    /// non-temporal stores must issue a store fence (`_mm_sfence`) before
    /// the publishing Release store, that is before [`Grant::commit`], or
    /// before the [`publish`](Self::publish) after [`Grant::commit_staged`].
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1 << 16).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1 << 16), SpinWait::std()).unwrap();
    /// tx.set_nontemporal_threshold(1024);
    /// let frame = vec![7u8; 20_000];
    /// tx.try_send(&frame, 1).unwrap(); // its whole lines bypass the cache
    /// assert_eq!(rx.try_recv().unwrap().payload(), &frame[..]);
    /// ```
    pub fn set_nontemporal_threshold(&mut self, bytes: u32) {
        self.distance.on = false;
        self.set_thresholds(bytes, u32::MAX, u32::MAX);
    }

    /// Early wrap: a record that would start at data-area offset `bytes` or
    /// later goes back to offset 0 instead (after an end padding record,
    /// which the consumer skips) when the ring is nearly empty, so that a
    /// request-response exchange keeps reusing the first `bytes` or so of
    /// the ring, whose lines are still in both cores' caches, instead of
    /// moving through the whole ring. `u32::MAX` (the default) turns it off;
    /// values below 64 count as 64.
    ///
    /// "Nearly empty" is what the producer knows without waiting: the
    /// consumer's released position, read once per `bytes` of a lap after a
    /// publication (off the message's path), shows that at most half of
    /// the bytes before the record's offset are unreleased, and the new
    /// record fits at offset 0. Otherwise the record goes where it would
    /// have gone. Right after an early wrap the producer can only fill the
    /// part of the lap the consumer has released, until the consumer has
    /// passed the padding (which it does with its next look) and released
    /// it (at its release threshold, when it finds the ring empty, or
    /// before it sleeps): a burst then meets [`Error::Full`] after at least
    /// `bytes / 2 - 8` bytes of records.
    ///
    /// The consumer needs no setting: it skips end padding wherever it
    /// starts (the wire format is unchanged).
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1 << 16).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1 << 16), SpinWait::std()).unwrap();
    /// tx.set_early_wrap(4096);
    /// rx.set_release_threshold(1); // release each message (as an empty ring does)
    /// for i in 0..100u32 {
    ///     tx.try_send(&[i as u8; 1000], i).unwrap();
    ///     let m = rx.try_recv().unwrap();
    ///     assert_eq!((m.type_id(), m.payload()), (i, &[i as u8; 1000][..]));
    /// }
    /// ```
    pub fn set_early_wrap(&mut self, bytes: u32) {
        self.wrap_from = bytes.max(CACHE_LINE);
        self.refresh_from = self.wrap_from;
    }

    /// Whether the consumer has dropped its handle. May be stale.
    pub fn is_consumer_closed(&self) -> bool {
        self.sh.cons.wait.state.load(Acquire) == STATE_CLOSED
    }

    /// Counters and role states of this ring. May be stale.
    pub fn stats(&self) -> Stats {
        read_stats(self.sh.prod, self.sh.cons)
    }

    /// Who holds the consumer role, if the consumer recorded it
    /// ([`attach_consumer_as`](crate::attach_consumer_as)): ask whether it
    /// still exists when the ring stays full.
    pub fn consumer_holder(&self) -> Option<crate::Holder> {
        crate::Holder::read(&self.sh.cons.wait)
    }

    #[cold]
    #[inline(never)]
    fn poisoned(&mut self, c: Corruption) -> Error {
        self.poison = Some(c);
        Error::Corrupt(c)
    }

    #[cold]
    fn full(&mut self) -> Error {
        // Staged records must become visible, or the consumer could never free space.
        self.publish();
        if self.is_consumer_closed() {
            return Error::Closed;
        }
        self.note_full();
        Error::Full
    }

    #[cold]
    fn note_full(&mut self) {
        self.full += 1;
        self.sh.prod.hot.full.store(self.full, Relaxed);
    }

    /// Reserve room for a `len`-byte payload without blocking.
    ///
    /// The grant derefs to exactly `len` writable bytes, contiguous and
    /// 8-byte aligned, inside the shared region (their previous contents are
    /// unspecified). Commit it with [`Grant::commit`]; dropping it commits
    /// nothing.
    ///
    /// Errors: [`Error::Full`] (no room now; staged messages are published
    /// first), [`Error::TooLarge`] (`len > max_payload()`, never fits),
    /// [`Error::Closed`] (full and the consumer is gone), [`Error::Corrupt`].
    ///
    /// Performance: fill and commit the grant in the function that reserved
    /// it. A `Grant` (or the `Result` holding it) passed through functions
    /// that are not inlined can stall its reload on x86 until the previous
    /// publication's stores reach the consumer's core (tens of ns per
    /// message across processes). To copy a ready payload,
    /// [`try_send`](Self::try_send) needs no grant at all.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap();
    /// let mut grant = tx.try_reserve(16).unwrap();
    /// grant[..8].copy_from_slice(&42u64.to_ne_bytes());
    /// grant.commit(8, 1); // publish 8 of the 16 reserved bytes as type 1
    /// assert_eq!(rx.try_recv().unwrap().payload(), &42u64.to_ne_bytes());
    /// ```
    #[inline(always)]
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_, 'a, W>, Error> {
        let plan = self.plan(len, true)?;
        if !self.room_for(plan.need)? {
            return Err(self.full());
        }
        Ok(self.grant(plan))
    }

    /// Reserve room, blocking until there is some or the consumer closes
    /// ([`Error::Closed`]).
    ///
    /// Spins `spin_budget` polls, then (unless the ring is in pure-spin mode)
    /// announces sleep on its own line, re-checks, and sleeps through
    /// [`Wait::wait`] until the consumer releases space. Staged messages are
    /// published before waiting.
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, 'a, W>, Error> {
        let plan = self.plan(len, true)?;
        self.wait_plan(plan, None)?;
        Ok(self.grant(plan))
    }

    /// [`reserve`](Self::reserve) with a time limit: [`Error::Timeout`] when
    /// no room was released within `timeout`.
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Grant<'_, 'a, W>, Error> {
        let plan = self.plan(len, true)?;
        self.wait_plan(plan, Some(timeout))?;
        Ok(self.grant(plan))
    }

    /// Whether a [`try_reserve`](Self::try_reserve) of `len` bytes would succeed now,
    /// without reserving or blocking (reads the consumer's line only when the
    /// cached released position says the ring is full). Errors:
    /// [`Error::TooLarge`], [`Error::Corrupt`].
    ///
    /// It caches nothing for the `reserve` that follows: recomputing the
    /// placement is a few register operations, cheaper than reloading a
    /// cached one.
    #[inline]
    pub fn has_room(&mut self, len: usize) -> Result<bool, Error> {
        // Why reloading costs more: "Store forwarding" in `place.rs`.
        let plan = self.plan(len, true)?;
        self.room_for(plan.need)
    }

    /// Block until a [`try_reserve`](Self::try_reserve) of `len` bytes would succeed,
    /// without reserving: the same waiting, timeout and errors as
    /// [`reserve_timeout`](Self::reserve_timeout) (`None` waits without limit), but nothing is borrowed,
    /// so a caller can wait in slices (checking other conditions between
    /// them) and then call `try_reserve`, which then succeeds.
    pub fn wait_for_room(&mut self, len: usize, timeout: Option<Duration>) -> Result<(), Error> {
        let plan = self.plan(len, true)?;
        self.wait_plan(plan, timeout)
    }

    fn wait_plan(&mut self, plan: Plan, timeout: Option<Duration>) -> Result<(), Error> {
        if self.room_for(plan.need)? {
            return Ok(());
        }
        self.note_full();
        self.publish();
        for _ in 0..self.spin_budget {
            spin_hint();
            if self.room_for(plan.need)? {
                return Ok(());
            }
        }
        sleep_until(self, plan.need, timeout)
    }

    /// For a wait on several rings ([`sleep_many`](crate::sleep_many)),
    /// after [`has_room`](Self::has_room) said no: publish staged messages,
    /// then announce that this producer sleeps until the consumer releases
    /// space or closes. The returned word is what to wait on. `None` in
    /// pure-spin mode, where the consumer never wakes anyone: poll instead.
    ///
    /// Every announcement is taken back with
    /// [`withdraw_sleep`](Self::withdraw_sleep) once the wait is over.
    pub fn announce_sleep(&mut self) -> Option<SleepWord<'a>> {
        if self.sh.pure_spin {
            return None;
        }
        self.publish();
        Some(announce(self))
    }

    /// Take back [`announce_sleep`](Self::announce_sleep): the consumer
    /// stops waking this producer.
    pub fn withdraw_sleep(&mut self) {
        withdraw(self);
    }

    /// Copy `payload` into the ring as one message of type `type_id` and
    /// publish it, without blocking. Errors as for [`try_reserve`](Self::try_reserve).
    #[inline]
    pub fn try_send(&mut self, payload: &[u8], type_id: u32) -> Result<(), Error> {
        let plan = self.plan(payload.len(), true)?;
        let mode = self.nontemporal_for(plan.len);
        self.distance_before_copy(mode, plan.len)?;
        if !self.room_for(plan.need)? {
            return Err(self.full());
        }
        self.write_message(plan, payload, type_id, mode == Some(true), true);
        self.publish();
        self.stamp_stream(mode, plan.len);
        Ok(())
    }

    /// Like [`try_send`](Self::try_send), but leaves the message staged until the next
    /// [`publish`](Self::publish) (or any publishing commit).
    #[inline]
    pub fn send_staged(&mut self, payload: &[u8], type_id: u32) -> Result<(), Error> {
        let plan = self.plan(payload.len(), false)?;
        let mode = self.nontemporal_for(plan.len);
        self.distance_before_copy(mode, plan.len)?;
        if !self.room_for(plan.need)? {
            return Err(self.full());
        }
        self.write_message(plan, payload, type_id, mode == Some(true), false);
        self.clear_ahead();
        self.stamp_stream(mode, plan.len);
        Ok(())
    }

    /// Copy `payload` in as one message of type `type_id` and publish it,
    /// blocking while the ring is full; errors as for [`reserve`](Self::reserve).
    #[inline]
    pub fn send(&mut self, payload: &[u8], type_id: u32) -> Result<(), Error> {
        self.send_within(payload, type_id, None)
    }

    /// [`send`](Self::send) with a time limit: [`Error::Timeout`] when no
    /// room was released within `timeout` (nothing was sent).
    #[inline]
    pub fn send_timeout(
        &mut self,
        payload: &[u8],
        type_id: u32,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.send_within(payload, type_id, Some(timeout))
    }

    #[inline(always)]
    fn send_within(
        &mut self,
        payload: &[u8],
        type_id: u32,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        let plan = self.plan(payload.len(), true)?;
        // Decided before any wait for room: a stream's sends follow each
        // other in the caller's loop, whatever the wait inside them.
        let mode = self.nontemporal_for(plan.len);
        self.distance_before_copy(mode, plan.len)?;
        // Room now: no call. Otherwise `wait_plan` checks once more before
        // it counts the ring full, publishes staged messages and waits.
        if !self.room_for(plan.need)? {
            self.wait_plan(plan, timeout)?;
        }
        self.write_message(plan, payload, type_id, mode == Some(true), true);
        self.publish();
        self.stamp_stream(mode, plan.len);
        Ok(())
    }

    /// Make every staged message visible to the consumer (one Release store),
    /// then wake the consumer if it announced sleep. Cheap when nothing is staged.
    #[inline]
    pub fn publish(&mut self) {
        if let Some((off, word)) = self.pending.take() {
            self.published = self.head;
            // SYNC POINT: Release; pairs with the consumer's Acquire load of this
            // commit word in `Consumer::poll`. Payloads, type ids, cleared next
            // headers and the later staged commit words all happen before.
            self.sh.data.commit_word(off).store(word, Release);
            self.sh.prod.hot.messages.store(self.messages, Relaxed);
            self.sh.prod.hot.bytes.store(self.bytes, Relaxed);
            if !self.sh.pure_spin {
                wake_peer(self);
            }
            self.clear_ahead();
            if self.head & self.mask >= self.refresh_from {
                self.refresh_for_wrap();
            }
        }
    }
}

impl<'a, W: Wait> Side<'a> for Producer<'a, W> {
    type W = W;
    #[inline(always)]
    fn lines(&self) -> (&'a WaitLine, &'a WaitLine) {
        (&self.sh.prod.wait, &self.sh.cons.wait)
    }
    #[inline(always)]
    fn wakes_counter(&self) -> &'a AtomicU64 {
        &self.sh.prod.hot.wakes
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
    /// The free bytes the plan needs.
    type Goal = u32;
    #[inline(always)]
    fn ready(&mut self, need: u32) -> Result<bool, Error> {
        self.room_for(need)
    }
    #[inline(always)]
    fn idle(&mut self) -> Result<bool, Error> {
        if self.is_consumer_closed() {
            return Err(Error::Closed);
        }
        Ok(false)
    }
}

impl<W: Wait> core::fmt::Debug for Producer<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("consumer_closed", &self.is_consumer_closed())
            .finish_non_exhaustive()
    }
}

impl<W: Wait> Drop for Producer<'_, W> {
    fn drop(&mut self) {
        self.publish();
        // SYNC POINT: Release; pairs with the consumer's Acquire load of our
        // state, after which it re-polls and sees every publication.
        self.sh.prod.wait.state.store(STATE_CLOSED, Release);
        if !self.sh.pure_spin {
            wake_peer(self);
        }
    }
}
