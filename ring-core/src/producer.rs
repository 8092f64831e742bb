//! The producer handle: reserve, commit, publish, and wake the consumer.

use crate::copy::copy_in;
use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::ring::{read_stats, Shared, Stats};
use crate::sync::{fence, spin_hint, Ordering::*};
use crate::wait::Wait;
use core::ops::{Deref, DerefMut};
use core::time::Duration;

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
    /// Our own sleep-episode counter (announced on our wait line).
    episode: u32,
    /// The consumer sleep episode we last woke (also the value of our `seq`).
    woken_episode: u32,
    messages: u64,
    bytes: u64,
    full: u64,
    wakes: u64,
    poison: Option<Corruption>,
}

// SAFETY: the producer role is exclusive (claimed in the region): only this
// handle writes the producer block and unpublished parts of the data area, and
// everything it shares with the consumer is reached through atomics or
// through bytes the protocol hands to exactly one side at a time. Moving the
// handle to another thread moves that exclusive role with it.
unsafe impl<W: Wait + Send> Send for Producer<'_, W> {}

/// Where a reservation goes.
#[derive(Clone, Copy)]
struct Plan {
    /// Offset of the record header in the data area.
    off: u32,
    /// Bytes of padding before it (at the end of the data area), or 0.
    pad: u32,
    /// Payload bytes reserved.
    len: u32,
    /// Line padding a publishing commit of the whole reservation puts
    /// after the record (see [`Producer::line_pad`]), or 0.
    line_pad: u32,
    /// Free bytes needed: padding + record + line padding + the next
    /// record's header.
    need: u32,
}

pub(crate) const DEFAULT_SPIN_BUDGET: u32 = 4096;
/// `clear_ahead` runs (after records smaller than a cache line) when fewer
/// than this many bytes ahead of `head` are cleared...
const CLEAR_LOW_WATER: u32 = 64;
/// ...and clears up to this far ahead (rounded down to a cache line), within free space.
const CLEAR_AHEAD: u32 = 256;
/// See [`Producer::set_nontemporal_threshold`].
const DEFAULT_NONTEMPORAL_FROM: u32 = 16 * 1024;

impl<'a, W: Wait> Producer<'a, W> {
    pub(crate) fn new(sh: Shared<'a>, wait: W) -> Self {
        let mask = sh.capacity - 1;
        let pad_below = if sh.split { CACHE_LINE } else { 0 };
        Producer {
            sh,
            wait,
            head: 0,
            cached_released: 0,
            published: 0,
            mask,
            zeroed: RECORD_HEADER,
            small_last: true,
            pad_below,
            nontemporal_from: DEFAULT_NONTEMPORAL_FROM,
            wrap_from: u32::MAX,
            refresh_from: u32::MAX,
            pending: None,
            spin_budget: DEFAULT_SPIN_BUDGET,
            episode: 0,
            woken_episode: 0,
            messages: 0,
            bytes: 0,
            full: 0,
            wakes: 0,
            poison: None,
        }
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
    /// On by default in the split layout, where the consumer may map the
    /// data area read-only: with a read-only mapping, a message across two
    /// lines costs the round trip more than the second line's transfer
    /// (measured on an AMD EPYC KVM guest: the 32-byte round trip went from
    /// 1.24x to 1.06-1.12x a ring that advances one cache line per message,
    /// about 20 ns). Off by default otherwise. With a read-write mapping it
    /// measured no faster at first, and later faster in round trips
    /// between processes (memtube, 32 bytes: 160-170 -> 150 ns, which is
    /// why memtube's duplex connections turn it on without isolation too).
    /// Its price is space: a stream of small messages
    /// published one by one moves more cache lines per message (32-byte
    /// messages: about 37% fewer per second). Staged commits
    /// ([`send_staged`](Self::send_staged), [`Grant::commit_staged`]) never
    /// pad, so batches ending in [`publish`](Self::publish) keep their
    /// rate.
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
    /// what it copies. Default 16 KiB; `u32::MAX` turns it off. Grants the
    /// caller fills itself: see the end of this text.
    ///
    /// A large message is read once, by another core. With ordinary stores
    /// its lines stay modified in the producer's cache and the consumer
    /// fetches each from there, at a speed that depends on where the two
    /// cores are; non-temporal stores put them in memory, where the
    /// consumer's prefetches find them at about the same speed wherever the
    /// cores are. Measured on a 2-vCPU AMD EPYC (Zen 4) KVM guest whose
    /// cross-core latency switches between levels (one-line round trip
    /// about 70, 140 or 370 ns; 3%, 88% and 10% of one full benchmark
    /// run), A/B at the same level:
    ///
    /// | at level | 64 KiB stream | 64 KiB round trip | 16 KiB round trip |
    /// |---|---|---|---|
    /// | 140 ns | 6-8 -> 17-19 GB/s | 9.4-11.8 -> 6.5-7.2 us | 2.46 -> 2.3 us |
    /// | 270-370 ns | 2.1 -> 19 GB/s | 22 -> 6.9 us | 6.0 -> 2.3 us |
    /// | 70 ns | 36 -> 17 GB/s | 2.5 -> 7.2 us | 0.92 -> 2.4 us |
    ///
    /// At 140 ns, 4 and 8 KiB round trips were slower with it (4 KiB: 0.83
    /// -> 1.4-1.6 us) while 4 KiB streams were 1.85x faster. So the default
    /// trades the fast placement (cores that share a cache closely: there
    /// it costs 2-3x from 16 KiB up; set `u32::MAX`) for the others (up to
    /// 10x), and no round trip below 16 KiB changes. Streams of 4-8 KiB
    /// messages between distant cores gain from 4096.
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
        self.nontemporal_from = bytes;
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

    #[cold]
    #[inline(never)]
    fn poisoned(&mut self, c: Corruption) -> Error {
        self.poison = Some(c);
        Error::Corrupt(c)
    }

    /// Where a `len`-byte payload goes, or why it cannot: poison or
    /// `TooLarge`. The placement itself is infallible arithmetic kept out of
    /// the `Result`: a `Result<Plan, Error>` compiled to byte-shuffled spills
    /// of the plan, reloaded by wider loads that x86 cannot forward from the
    /// store buffer (each such reload waits for every older store to drain,
    /// including stores to lines the consumer is reading).
    ///
    /// `padded`: the commit may publish, so the plan counts line padding.
    #[inline(always)]
    fn plan(&self, len: usize, padded: bool) -> Result<Plan, Error> {
        if self.poison.is_some() || len > self.sh.max_payload as usize {
            return Err(self.plan_error(len));
        }
        Ok(self.place(len as u32, padded))
    }

    #[cold]
    fn plan_error(&self, len: usize) -> Error {
        match self.poison {
            Some(c) => Error::Corrupt(c),
            None => Error::TooLarge {
                len,
                max: self.sh.max_payload,
            },
        }
    }

    /// The placement of a record with a `len`-byte payload at `head`.
    ///
    /// An empty ring always has room for the plan of any payload up to
    /// `max_payload` (a record of at most `capacity / 2`): with line padding,
    /// `rec < 64` and the padding is shorter than the record, so without an
    /// end pad `rec + line_pad + 8 <= 2 * rec <= capacity`; after an end pad
    /// (shorter than the record) the record starts at offset 0, where it is
    /// padded only if `rec > 32`, to offset 64: `need <= (rec - 8) + 64 + 8
    /// <= 120` in a ring of at least 128 bytes (a ring of 64 has `rec <= 32`).
    #[inline(always)]
    fn place(&self, len: u32, padded: bool) -> Plan {
        let rec = record_size(len);
        let off = self.head & self.mask;
        let room = self.sh.capacity - off;
        let (off, pad) = if rec <= room && !(off >= self.wrap_from && self.wraps_early(off, rec)) {
            (off, 0)
        } else {
            (0, room)
        };
        let line_pad = if padded {
            self.line_pad(off + rec, rec)
        } else {
            0
        };
        Plan {
            off,
            pad,
            len,
            line_pad,
            need: pad + rec + line_pad + RECORD_HEADER,
        }
    }

    /// Whether a `rec`-byte record that would go at `off` (nonzero, at least
    /// `wrap_from`) goes to offset 0 early: by the cached released position,
    /// at most half the lap before `off` is unreleased and the record
    /// (with its line padding and the next header) fits after the end pad.
    #[inline(never)]
    fn wraps_early(&self, off: u32, rec: u32) -> bool {
        let used = self.head.wrapping_sub(self.cached_released);
        let need = (self.sh.capacity - off) + rec + self.line_pad(rec, rec) + RECORD_HEADER;
        used <= off / 2 && self.fits(need)
    }

    #[inline(always)]
    fn fits(&self, need: u32) -> bool {
        let used = self.head.wrapping_sub(self.cached_released) as u64;
        used + need as u64 <= self.sh.capacity as u64
    }

    /// Read and validate the consumer's released position.
    fn refresh_released(&mut self) -> Result<(), Error> {
        // SYNC POINT: Acquire; pairs with the consumer's Release store in
        // `Consumer::store_release`, so its reads of the released records
        // happen before we overwrite them.
        let r = self.sh.cons.hot.released.load(Acquire);
        // A released position only moves forward, never passes what we
        // published (staged records are invisible to the consumer), and is
        // a record boundary, so 8-aligned (free space is counted in 8-byte
        // slots: `clear_ahead` and the `zeroed` frontier rely on it).
        let advance = r.wrapping_sub(self.cached_released);
        let limit = self.published.wrapping_sub(self.cached_released);
        if advance > limit || r % RECORD_ALIGN != 0 {
            return Err(self.poisoned(Corruption::BadReleasedPosition));
        }
        self.cached_released = r;
        Ok(())
    }

    #[inline(always)]
    fn room_for(&mut self, need: u32) -> Result<bool, Error> {
        if self.fits(need) {
            return Ok(true);
        }
        self.room_after_refresh(need)
    }

    #[inline(never)]
    fn room_after_refresh(&mut self, need: u32) -> Result<bool, Error> {
        self.refresh_released()?;
        Ok(self.fits(need))
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
    /// that are not inlined may be stored piecewise and reloaded by wider
    /// loads, which x86 cannot forward from the store buffer; such a reload
    /// waits for the previous publication's stores to reach the consumer's
    /// core (measured: tens of ns per message across processes). To copy a
    /// ready payload, [`try_send`](Self::try_send) needs no grant at all.
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
    /// It caches nothing for the `reserve` that follows (recomputing the
    /// placement is a few register operations): a plan stored here and
    /// reloaded there compiled to loads spanning two stores, which x86
    /// cannot forward from the store buffer, so the reload waited for every
    /// older store to drain, including the last publication's stores to
    /// lines the consumer holds. That cost ~60 ns per message across processes.
    #[inline]
    pub fn has_room(&mut self, len: usize) -> Result<bool, Error> {
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
        let start = self.wait.now();
        loop {
            if self.room_for(plan.need)? {
                return Ok(());
            }
            if self.is_consumer_closed() {
                return Err(Error::Closed);
            }
            let remaining = remaining(self.wait.now(), start, timeout)?;
            if self.sh.pure_spin {
                for _ in 0..64 {
                    spin_hint();
                    if self.room_for(plan.need)? {
                        return Ok(());
                    }
                }
                continue;
            }
            let w = &self.sh.cons.wait;
            let seen = w.seq.load(Acquire);
            self.episode = next_episode(self.episode, seen);
            self.sh.prod.wait.sleeping.store(self.episode, Relaxed);
            // SYNC POINT (Dekker): orders our sleep announcement before the
            // re-check of the released position; pairs with the fence in
            // `Consumer::wake_peer` between its release and its load of our flag.
            fence(SeqCst);
            let room = self.room_for(plan.need);
            if !matches!(room, Ok(false)) || self.is_consumer_closed() {
                self.sh.prod.wait.sleeping.store(0, Relaxed);
                if room? {
                    return Ok(());
                }
                continue;
            }
            self.wait.wait(&self.sh.cons.wait.seq, seen, remaining);
            self.sh.prod.wait.sleeping.store(0, Relaxed);
        }
    }

    /// Copy `payload` into the ring as one message of type `type_id` and
    /// publish it, without blocking. Errors as for [`try_reserve`](Self::try_reserve).
    #[inline]
    pub fn try_send(&mut self, payload: &[u8], type_id: u32) -> Result<(), Error> {
        let plan = self.plan(payload.len(), true)?;
        if !self.room_for(plan.need)? {
            return Err(self.full());
        }
        self.write_message(plan, payload, type_id, true);
        self.publish();
        Ok(())
    }

    /// Like [`try_send`](Self::try_send), but leaves the message staged until the next
    /// [`publish`](Self::publish) (or any publishing commit).
    #[inline]
    pub fn send_staged(&mut self, payload: &[u8], type_id: u32) -> Result<(), Error> {
        let plan = self.plan(payload.len(), false)?;
        if !self.room_for(plan.need)? {
            return Err(self.full());
        }
        self.write_message(plan, payload, type_id, false);
        self.clear_ahead();
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
        // Room now: no call. Otherwise `wait_plan` checks once more before
        // it counts the ring full, publishes staged messages and waits.
        if !self.room_for(plan.need)? {
            self.wait_plan(plan, timeout)?;
        }
        self.write_message(plan, payload, type_id, true);
        self.publish();
        Ok(())
    }

    /// Copy a whole message in and commit it (staged), without a [`Grant`]
    /// value: the copying sends keep the plan in registers. (A `Grant`
    /// returned through a `Result` that is not inlined away is stored in
    /// byte-sized pieces and reloaded by wider loads, which x86 cannot
    /// forward from the store buffer: measured +20-40 ns per message across
    /// processes.)
    #[inline(always)]
    fn write_message(&mut self, plan: Plan, payload: &[u8], type_id: u32, publishing: bool) {
        debug_assert_eq!(plan.len as usize, payload.len());
        let cleared = self.open(plan);
        let dst = self.sh.data.bytes(plan.off + RECORD_HEADER, plan.len);
        // SAFETY: `plan` placed `8 + len` bytes at `off` inside the data area
        // and inside free space (`room_for(need)` held), which only the
        // producer touches until it publishes; `payload` is caller memory,
        // so the ranges do not overlap.
        unsafe { copy_in(dst, payload, plan.len >= self.nontemporal_from) };
        self.commit_record(plan, cleared, plan.len, type_id, publishing);
    }

    /// Hand out the payload bytes of `plan`; returns the `zeroed` frontier
    /// before that (the grant's `cleared`).
    #[inline(always)]
    fn open(&mut self, plan: Plan) -> u32 {
        // Model (under loom) that the user may fill the payload with anything,
        // including bytes that look like committed headers.
        self.sh.data.scribble(plan.off + RECORD_HEADER, plan.len);
        // The payload may be filled with anything: until a commit says how
        // much of it became a record, only the slots before it stay
        // known-clear. Dropping the grant leaves it so; no drop hook needed.
        let cleared = self.zeroed;
        self.forget_cleared_after(plan.pad + RECORD_HEADER);
        cleared
    }

    #[inline(always)]
    fn grant(&mut self, plan: Plan) -> Grant<'_, 'a, W> {
        let cleared = self.open(plan);
        Grant {
            p: self,
            plan,
            cleared,
        }
    }

    #[inline]
    fn stage(&mut self, off: u32, word: u32) {
        if self.pending.is_none() {
            self.pending = Some((off, word));
        } else {
            // The consumer stops at the pending record, so it cannot read this
            // word before the pending record's Release store, which orders it.
            self.sh.data.commit_word(off).store(word, Relaxed);
        }
    }

    #[inline(always)]
    fn commit_record(
        &mut self,
        plan: Plan,
        cleared: u32,
        used: u32,
        type_id: u32,
        publishing: bool,
    ) {
        debug_assert!(used <= plan.len);
        let rec = record_size(used);
        self.sh.data.write_type_id(plan.off, type_id);
        self.sh.data.track_write(plan.off, rec);
        let whole = rec == record_size(plan.len);
        let after = self.head.wrapping_add(plan.pad + rec);
        // Line padding after a publishing commit of the whole reservation
        // (the plan placed it; a partial commit ends elsewhere).
        let line_pad = if publishing && whole {
            plan.line_pad
        } else {
            0
        };
        let next_pos = after.wrapping_add(line_pad);
        let next_end = next_pos.wrapping_add(RECORD_HEADER);
        // A commit of the whole reservation (to the same 8-byte slot) leaves
        // every slot past the record as it was before the grant; past a
        // partial commit the user may have written anything, so those stay
        // forgotten (`grant` forgot them).
        if whole {
            self.zeroed = cleared;
        }
        // The next record's commit word must be zero before this record is
        // published, so stale bytes from an earlier lap never read as
        // committed. Usually `clear_ahead` has cleared it already; otherwise
        // clear it now. It lies in free space: `plan.need` counted it.
        if next_end.wrapping_sub(self.head) > self.zeroed.wrapping_sub(self.head) {
            self.sh
                .data
                .commit_word(next_pos & self.mask)
                .store(0, Relaxed);
            self.zeroed = next_end;
        }
        if plan.pad != 0 || next_pos & self.mask == 0 {
            // A new lap: read the released position again from `wrap_from`.
            self.refresh_from = self.wrap_from;
        }
        if plan.pad != 0 {
            let pad_off = self.head & self.mask;
            self.stage(
                pad_off,
                COMMITTED | PADDING | ((plan.pad - RECORD_HEADER) << LEN_SHIFT),
            );
        }
        self.stage(plan.off, COMMITTED | (used << LEN_SHIFT));
        if line_pad != 0 {
            // A record is pending now (this one or an earlier one), so the
            // consumer cannot reach this word before that record's Release
            // store, which orders it.
            self.sh.data.commit_word(after & self.mask).store(
                COMMITTED | PADDING | ((line_pad - RECORD_HEADER) << LEN_SHIFT),
                Relaxed,
            );
        }
        self.head = next_pos;
        self.small_last = rec < CACHE_LINE;
        self.messages += 1;
        self.bytes += used as u64;
    }

    /// The bytes of line padding a publishing commit puts after a record of
    /// `rec` bytes that ends at `after` (`place` counts them in the plan):
    /// up to the end of its cache line when line padding is on, the record
    /// is smaller than a line and the rest of the line is shorter than the
    /// record; else 0. See [`set_line_padding`](Self::set_line_padding).
    #[inline(always)]
    fn line_pad(&self, after: u32, rec: u32) -> u32 {
        if rec >= self.pad_below {
            return 0; // off, or a record of a line or more
        }
        let room = CACHE_LINE - (after & (CACHE_LINE - 1));
        if room < rec {
            room
        } else {
            0
        }
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
                self.wake_peer();
            }
            self.clear_ahead();
            if self.head & self.mask >= self.refresh_from {
                self.refresh_for_wrap();
            }
        }
    }

    /// See `refresh_from`. A corrupt released position poisons the handle
    /// (the next call reports it).
    #[cold]
    #[inline(never)]
    fn refresh_for_wrap(&mut self) {
        let _ = self.refresh_released();
        self.refresh_from = (self.head & self.mask).saturating_add(self.wrap_from);
    }

    /// Only the slots in `[head, head + dist)` stay known-clear when a grant's
    /// payload (which the user may fill with anything) reached beyond `dist`.
    #[inline]
    fn forget_cleared_after(&mut self, dist: u32) {
        if self.zeroed.wrapping_sub(self.head) > dist {
            self.zeroed = self.head.wrapping_add(dist);
        }
    }

    /// After a publication or a staged commit whose last record was smaller
    /// than a cache line: clear the commit words of the next few cache lines
    /// of free space, so the next commits need not fetch a new line for
    /// their successor's header before their own Release store (on x86
    /// stores become visible in order, so that fetch would delay the
    /// publication). The stores also take ownership of
    /// those lines early, which is what makes small records fast: several
    /// share a line, and without it each line's first store waits for the
    /// consumer's copy to be invalidated (measured with 32 B messages:
    /// batched streaming +20-40%, and the round trip of the record floor).
    /// After a publication this is off the message's critical path; after a
    /// staged commit the stores precede the batch's Release store (x86 makes
    /// stores visible in order), which delays the batch, not a message.
    ///
    /// Larger records skip it: the next record overwrites the cleared lines
    /// whole, so clearing them only doubles the stores (measured with 256 B
    /// messages: streaming +30-60% without it, round trips unchanged within
    /// the noise). Their successor's header is cleared by `commit_record`.
    #[inline(always)]
    fn clear_ahead(&mut self) {
        if self.small_last && self.zeroed.wrapping_sub(self.head) < CLEAR_LOW_WATER {
            self.clear_ahead_now();
        }
    }

    #[inline(never)]
    fn clear_ahead_now(&mut self) {
        let free = self
            .cached_released
            .wrapping_add(self.sh.capacity)
            .wrapping_sub(self.head);
        let want =
            (self.head.wrapping_add(CLEAR_AHEAD) & !(CACHE_LINE - 1)).wrapping_sub(self.head);
        let target = want.min(free);
        let start = self.zeroed.wrapping_sub(self.head);
        if target <= start {
            return;
        }
        // Clear `[zeroed, head + target)`, in at most two pieces (it may wrap).
        let n = target - start;
        let off = self.zeroed & self.mask;
        let first = n.min(self.sh.capacity - off);
        self.sh.data.clear(off, first);
        if n > first {
            self.sh.data.clear(0, n - first);
        }
        self.zeroed = self.head.wrapping_add(target);
    }

    #[inline]
    fn wake_peer(&mut self) {
        // SYNC POINT (Dekker): orders the publication (or the closed state)
        // before the load of the consumer's sleep flag; pairs with the fence in
        // `Consumer::wait_record_slow` between its announcement and its re-check.
        fence(SeqCst);
        let ep = self.sh.cons.wait.sleeping.load(Relaxed);
        if ep != 0 && ep != self.woken_episode {
            self.wake_slow(ep);
        }
    }

    #[cold]
    fn wake_slow(&mut self, ep: u32) {
        self.woken_episode = ep;
        // The consumer waits for `seq` to differ from the value it read before
        // announcing `ep`, and it never announces that value, so this changes it.
        self.sh.prod.wait.seq.store(ep, Release);
        self.wait.wake(&self.sh.prod.wait.seq);
        self.wakes += 1;
        self.sh.prod.hot.wakes.store(self.wakes, Relaxed);
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
            self.wake_peer();
        }
    }
}

/// A reservation of contiguous payload bytes in the ring.
///
/// Derefs to the reserved `&mut [u8]`. Nothing is visible to the consumer
/// until [`commit`](Grant::commit); dropping the grant commits nothing.
#[must_use = "dropping a grant commits nothing"]
pub struct Grant<'p, 'a, W: Wait> {
    p: &'p mut Producer<'a, W>,
    plan: Plan,
    /// The producer's `zeroed` before this grant handed out its payload.
    cleared: u32,
}

impl<W: Wait> Grant<'_, '_, W> {
    /// Copy `src` into the grant from byte `at`, as the copying sends copy a
    /// payload: with non-temporal stores when `src` is at least
    /// [`Producer::set_nontemporal_threshold`] long (x86-64), then a store
    /// fence, so a later commit publishes it whole. For a message put
    /// together from a header and a large body that already exists
    /// elsewhere.
    ///
    /// # Panics
    /// If `at + src.len()` exceeds the reserved length.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1 << 16).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1 << 16), SpinWait::std()).unwrap();
    /// let body = vec![9u8; 20_000]; // above the default threshold, 16 KiB
    /// let mut g = tx.try_reserve(8 + body.len()).unwrap();
    /// g[..8].copy_from_slice(&42u64.to_le_bytes());
    /// g.copy_from(8, &body);
    /// g.commit(8 + body.len(), 1);
    /// assert_eq!(&rx.try_recv().unwrap().payload()[8..], &body[..]);
    /// ```
    #[inline]
    pub fn copy_from(&mut self, at: usize, src: &[u8]) {
        let nontemporal = src.len() >= self.p.nontemporal_from as usize;
        let dst = &mut self[at..at + src.len()];
        // SAFETY: `dst` is `src.len()` bytes of the grant, valid for writes
        // (the grant borrows the producer mutably); `src` is a shared borrow,
        // so it cannot alias the grant's unique one.
        unsafe { copy_in(dst.as_mut_ptr(), src, nontemporal) };
    }

    /// Commit the first `used` bytes as one message of type `type_id` and
    /// publish it (with any staged messages before it).
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    #[inline(always)]
    pub fn commit(self, used: usize, type_id: u32) {
        assert!(
            used <= self.plan.len as usize,
            "commit of more bytes than reserved"
        );
        self.p
            .commit_record(self.plan, self.cleared, used as u32, type_id, true);
        self.p.publish();
    }

    /// Commit like [`commit`](Grant::commit) but do not publish yet: the
    /// message becomes visible at the producer's next
    /// [`publish`](Producer::publish) or publishing commit, together with the
    /// others staged, for one Release store and one wake check per batch.
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    #[inline(always)]
    pub fn commit_staged(self, used: usize, type_id: u32) {
        assert!(
            used <= self.plan.len as usize,
            "commit of more bytes than reserved"
        );
        self.p
            .commit_record(self.plan, self.cleared, used as u32, type_id, false);
        self.p.clear_ahead();
    }
}

impl<W: Wait> Deref for Grant<'_, '_, W> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let ptr = self
            .p
            .sh
            .data
            .bytes(self.plan.off + RECORD_HEADER, self.plan.len);
        // SAFETY: `plan` placed `8 + len` bytes at `off` inside the data area and
        // inside free space (`room_for(need)`), which only the producer touches
        // until it publishes; the grant borrows the producer mutably.
        unsafe { core::slice::from_raw_parts(ptr, self.plan.len as usize) }
    }
}

impl<W: Wait> DerefMut for Grant<'_, '_, W> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let ptr = self
            .p
            .sh
            .data
            .bytes(self.plan.off + RECORD_HEADER, self.plan.len);
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(ptr, self.plan.len as usize) }
    }
}

/// The next nonzero episode number after `cur` that differs from `avoid` (the
/// value of the wait word the sleeper will wait on).
#[inline]
pub(crate) fn next_episode(cur: u32, avoid: u32) -> u32 {
    let bump = |e: u32| if e == u32::MAX { 1 } else { e + 1 };
    let e = bump(cur);
    if e == avoid {
        bump(e)
    } else {
        e
    }
}

/// Time left before a deadline, or `Timeout`.
#[inline]
pub(crate) fn remaining(
    now: Duration,
    start: Duration,
    timeout: Option<Duration>,
) -> Result<Option<Duration>, Error> {
    match timeout {
        None => Ok(None),
        Some(t) => {
            let elapsed = now.saturating_sub(start);
            if elapsed >= t {
                Err(Error::Timeout)
            } else {
                Ok(Some(t - elapsed))
            }
        }
    }
}
