//! The consumer handle: poll, receive in place, release, and wake the producer.

use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::producer::{next_episode, remaining, DEFAULT_SPIN_BUDGET};
use crate::ring::{read_stats, Shared, Stats};
use crate::sync::{fence, spin_hint, Ordering::*};
use crate::wait::Wait;
use core::ops::Deref;
use core::time::Duration;

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
    /// Our own sleep-episode counter.
    episode: u32,
    /// The producer sleep episode we last woke (also the value of our `seq`).
    woken_episode: u32,
    messages: u64,
    bytes: u64,
    wakes: u64,
    poison: Option<Corruption>,
}

// SAFETY: the consumer role is exclusive (claimed in the region): only this
// handle writes the consumer block and reads published records until it
// releases them; shared state is reached through atomics or through bytes
// the protocol hands to one side at a time. Moving the handle moves the role.
unsafe impl<W: Wait + Send> Send for Consumer<'_, W> {}

/// A validated record: its offset in the data area and its payload length,
/// packed in one word.
///
/// One word because every copy of it is then one 8-byte move. As a struct
/// of four `u32`s, the inlined receive paths stored it field by field and
/// LLVM reloaded pairs of fields with one 8-byte load, which x86 cannot
/// forward from two 4-byte stores: the load waited until every older store
/// had drained, including stores waiting for cache lines the peer holds
/// (measured: tens of ns per round trip across processes). The type id is
/// read from the header when asked for (the record is ours until released).
#[derive(Clone, Copy, Debug)]
struct Rec(u64);

impl Rec {
    #[inline(always)]
    fn new(off: u32, len: u32) -> Rec {
        Rec(off as u64 | (len as u64) << 32)
    }
    #[inline(always)]
    fn off(self) -> u32 {
        self.0 as u32
    }
    #[inline(always)]
    fn len(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// Header, payload and padding to 8 bytes.
    #[inline(always)]
    fn size(self) -> u32 {
        record_size(self.len())
    }
}

impl<'a, W: Wait> Consumer<'a, W> {
    pub(crate) fn new(sh: Shared<'a>, wait: W) -> Self {
        let mask = sh.capacity - 1;
        let release_threshold = sh.capacity / 4;
        Consumer {
            sh,
            wait,
            tail: 0,
            published: 0,
            checked: 0,
            ready: None,
            mask,
            release_threshold,
            spin_budget: DEFAULT_SPIN_BUDGET,
            episode: 0,
            woken_episode: 0,
            messages: 0,
            bytes: 0,
            wakes: 0,
            poison: None,
        }
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

    #[cold]
    #[inline(never)]
    fn poisoned(&mut self, c: Corruption) -> Error {
        self.poison = Some(c);
        Error::Corrupt(c)
    }

    /// Look at the header at `tail`: a validated record, or `None` if nothing
    /// is committed there. Skips padding: line padding, then end padding.
    #[inline(always)]
    fn poll(&mut self) -> Result<Option<Rec>, Error> {
        if let Some(c) = self.poison {
            return Err(Error::Corrupt(c));
        }
        if self.ready.is_some() {
            return Ok(self.ready);
        }
        let mut off = self.tail & self.mask;
        // SYNC POINT: Acquire; pairs with the producer's Release store in
        // `Producer::publish` (directly, or through the first record of a
        // staged batch, which we read before this one).
        let mut word = self.sh.data.commit_word(off).load(Acquire);
        // Line padding (after most small messages when it is on): skipped
        // here, inline. The bit test comes first, so a record's word costs
        // one test; only the exact pad for this offset is taken here.
        let in_line = off & (CACHE_LINE - 1);
        if word & PADDING != 0 && word == line_pad_word(in_line) && in_line != 0 {
            let pad = CACHE_LINE - in_line;
            if self.span(pad) > self.sh.capacity as u64 {
                return Err(self.poisoned(Corruption::RecordOverrun));
            }
            self.tail = self.tail.wrapping_add(pad);
            off = self.tail & self.mask;
            // SYNC POINT: Acquire, as above.
            word = self.sh.data.commit_word(off).load(Acquire);
        }
        if word == 0 {
            return Ok(None);
        }
        let r = if word & PADDING != 0 {
            self.skip_padding(off, word)?
        } else {
            self.check(off, word)?
        };
        self.ready = r;
        Ok(r)
    }

    /// Whether [`try_recv`](Self::try_recv) would return a message now: one load of
    /// the next header when nothing changed, and the validated header is kept
    /// so that the `recv` or `peek` that follows does not read it again.
    /// Never blocks, never publishes.
    #[inline]
    pub fn has_message(&mut self) -> Result<bool, Error> {
        Ok(self.poll()?.is_some())
    }

    /// Skip the end padding at `off` (header `word`) and look at the header
    /// at offset 0. (Line padding is skipped in `poll`; whatever else has
    /// the padding bit is corrupt.)
    #[cold]
    #[inline(never)]
    fn skip_padding(&mut self, off: u32, word: u32) -> Result<Option<Rec>, Error> {
        if word & COMMITTED == 0 {
            return Err(self.poisoned(Corruption::BadCommitWord));
        }
        let len = word >> LEN_SHIFT;
        // End padding runs exactly to the end, and never fills a whole lap.
        if off == 0 || off as u64 + RECORD_HEADER as u64 + len as u64 != self.sh.capacity as u64 {
            return Err(self.poisoned(Corruption::BadPadding));
        }
        let pad = self.sh.capacity - off;
        if self.span(pad) > self.sh.capacity as u64 {
            return Err(self.poisoned(Corruption::RecordOverrun));
        }
        self.tail = self.tail.wrapping_add(pad);
        // SYNC POINT: Acquire, as in `poll`.
        let word = self.sh.data.commit_word(0).load(Acquire);
        if word == 0 {
            return Ok(None);
        }
        if word & PADDING != 0 {
            return Err(self.poisoned(Corruption::BadPadding));
        }
        self.check(0, word)
    }

    /// Bytes from the last published release to the end of a `size`-byte
    /// record at `tail` plus the next header: an honest producer keeps this
    /// within the capacity.
    #[inline(always)]
    fn span(&self, size: u32) -> u64 {
        self.tail.wrapping_sub(self.published) as u64 + size as u64 + RECORD_HEADER as u64
    }

    #[inline(always)]
    fn check(&mut self, off: u32, word: u32) -> Result<Option<Rec>, Error> {
        if word & COMMITTED == 0 {
            return Err(self.poisoned(Corruption::BadCommitWord));
        }
        let len = word >> LEN_SHIFT;
        if len > self.sh.max_payload {
            return Err(self.poisoned(Corruption::BadLength));
        }
        let size = record_size(len);
        if off + size > self.sh.capacity {
            return Err(self.poisoned(Corruption::BadLength));
        }
        if self.span(size) > self.sh.capacity as u64 {
            return Err(self.poisoned(Corruption::RecordOverrun));
        }
        Ok(Some(Rec::new(off, len)))
    }

    #[inline(always)]
    fn payload(&self, r: Rec) -> &[u8] {
        let ptr = self.sh.data.bytes(r.off() + RECORD_HEADER, r.len());
        // SAFETY: `check` proved `off + size <= capacity`, so the `len` bytes
        // after the header are in the data area; the record is published
        // (the Acquire load of its commit word in `poll`) and not released,
        // so the producer does not write it.
        // (A hostile peer may still write it: the bytes may change, but stay
        // in bounds.)
        unsafe { core::slice::from_raw_parts(ptr, r.len() as usize) }
    }

    /// The type id in the header of a record we hold (not yet released).
    #[inline(always)]
    fn type_id(&self, r: Rec) -> u32 {
        self.sh.data.read_type_id(r.off())
    }

    #[inline]
    fn consume(&mut self, r: Rec) {
        self.sh.data.track_read(r.off(), r.size());
        self.ready = None;
        self.tail = self.tail.wrapping_add(r.size());
        self.messages += 1;
        self.bytes += r.len() as u64;
        if self.tail.wrapping_sub(self.checked) >= self.release_threshold {
            self.publish_release();
        }
    }

    /// Store the released position if it moved, then, if anything was
    /// released since the last check (by this call or by a `store_release`
    /// alone), wake the producer if it announced sleep.
    #[inline]
    fn publish_release(&mut self) {
        self.store_release();
        if self.checked != self.published {
            self.checked = self.published;
            if !self.sh.pure_spin {
                self.wake_peer();
            }
        }
    }

    /// Store the released position if it moved, without the wake-up check
    /// (`checked` stays behind; the next `publish_release` makes it).
    #[inline]
    fn store_release(&mut self) {
        if self.tail == self.published {
            return;
        }
        self.published = self.tail;
        // SYNC POINT: Release; pairs with the producer's Acquire load in
        // `Producer::refresh_released`: our reads of the released records
        // happen before it overwrites them.
        self.sh.cons.hot.released.store(self.tail, Release);
        self.sh.cons.hot.messages.store(self.messages, Relaxed);
        self.sh.cons.hot.bytes.store(self.bytes, Relaxed);
    }

    #[inline]
    fn wake_peer(&mut self) {
        // SYNC POINT (Dekker): orders the release (or the closed state) before
        // the load of the producer's sleep flag; pairs with the fence in
        // `Producer::wait_plan` between its announcement and re-check.
        fence(SeqCst);
        let ep = self.sh.prod.wait.sleeping.load(Relaxed);
        if ep != 0 && ep != self.woken_episode {
            self.wake_slow(ep);
        }
    }

    #[cold]
    fn wake_slow(&mut self, ep: u32) {
        self.woken_episode = ep;
        self.sh.cons.wait.seq.store(ep, Release);
        self.wait.wake(&self.sh.cons.wait.seq);
        self.wakes += 1;
        self.sh.cons.hot.wakes.store(self.wakes, Relaxed);
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
    /// loaded whole). Returning `Result<Rec, Error>` through memory made
    /// the inline paths build their record in the same stack slot with
    /// 4-byte stores that an 8-byte load then read back, which x86 cannot
    /// forward from the store buffer: the load waited for every older store
    /// to drain, including stores still waiting for lines the peer holds.
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
        let start = self.wait.now();
        loop {
            if self.poll()?.is_some() {
                return Ok(());
            }
            if self.on_empty()?.is_some() {
                return Ok(());
            }
            let remaining = remaining(self.wait.now(), start, timeout)?;
            if self.sh.pure_spin {
                for _ in 0..64 {
                    spin_hint();
                    if self.poll()?.is_some() {
                        return Ok(());
                    }
                }
                continue;
            }
            let seen = self.sh.prod.wait.seq.load(Acquire);
            self.episode = next_episode(self.episode, seen);
            self.sh.cons.wait.sleeping.store(self.episode, Relaxed);
            // SYNC POINT (Dekker): orders our announcement before the re-check
            // of the header and of the producer's state; pairs with the fence in
            // `Producer::wake_peer`, which follows its publication / close.
            fence(SeqCst);
            let polled = self.poll();
            if !matches!(polled, Ok(None)) || self.is_producer_closed() {
                self.sh.cons.wait.sleeping.store(0, Relaxed);
                if polled?.is_some() {
                    return Ok(());
                }
                continue;
            }
            self.wait.wait(&self.sh.prod.wait.seq, seen, remaining);
            self.sh.cons.wait.sleeping.store(0, Relaxed);
        }
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
            self.wake_peer();
        }
    }
}

/// A received message, in place in the ring. Its space is released when it
/// is dropped. Derefs to the payload.
pub struct Message<'c, 'a, W: Wait> {
    c: &'c mut Consumer<'a, W>,
    r: Rec,
}

impl<W: Wait> Message<'_, '_, W> {
    /// The type id the producer committed with it.
    #[inline]
    pub fn type_id(&self) -> u32 {
        self.c.type_id(self.r)
    }

    /// The payload: 8-byte aligned, in shared memory.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.c.payload(self.r)
    }

    /// Release the message's space now (the same as dropping it).
    #[inline]
    pub fn release(self) {}
}

impl<W: Wait> Deref for Message<'_, '_, W> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.payload()
    }
}

impl<W: Wait> Drop for Message<'_, '_, W> {
    #[inline]
    fn drop(&mut self) {
        let r = self.r;
        self.c.consume(r);
    }
}

impl<W: Wait> core::fmt::Debug for Message<'_, '_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("type_id", &self.type_id())
            .field("len", &self.r.len())
            .finish()
    }
}

/// A message looked at with [`Consumer::peek`]: not consumed.
#[derive(Debug, Clone, Copy)]
pub struct Peek<'c> {
    type_id: u32,
    payload: &'c [u8],
}

impl<'c> Peek<'c> {
    /// The type id.
    pub fn type_id(&self) -> u32 {
        self.type_id
    }
    /// The payload, in place.
    pub fn payload(&self) -> &'c [u8] {
        self.payload
    }
}

/// The commit word of line padding from `in_line` bytes into a cache line
/// (not 0) to the line's end.
#[inline(always)]
const fn line_pad_word(in_line: u32) -> u32 {
    COMMITTED | PADDING | ((CACHE_LINE - RECORD_HEADER - in_line) << LEN_SHIFT)
}
