//! The distance rule: on AMD, copying sends use ordinary stores while the
//! consumer's core is close, non-temporal ones (the default thresholds)
//! otherwise. On Zen 4 and other processors it runs over rings larger than
//! the producer's L2 cache and takes sends of 8 KiB and more; on Zen 3
//! ([`close_ordinary_everywhere`](crate::copy::close_ordinary_everywhere))
//! over every ring, and from 2 KiB.
//!
//! Why: a large ring's lines leave the producer's L2 for the L3 before the
//! consumer reads them. Between cores that share that L3, the consumer then
//! finds them there, faster than in memory where non-temporal stores put
//! them (64 KiB streams over a 4 MiB ring on the AMD EPYC Zen 4 guest:
//! 29–35 GB/s against 18–23). Between farther cores, ordinary stores fall
//! to 2–4 GB/s and non-temporal ones keep 20–25. Over rings the L2 holds,
//! the consumer's lines are still in its own cache when the producer comes
//! back to them, and non-temporal stores win at both distances on Zen 4.
//! On the Zen 3 guest, whose non-temporal stores reach memory at half that
//! rate, ordinary stores win between close cores over every ring.
//!
//! How far the consumer's core is: the producer times its reads of the
//! consumer's released position (`refresh_released_timed`); a read that
//! finds it moved fetched a line the consumer's core wrote. One such read
//! is taken per budget of [`FIRST_SAMPLE_BYTES`] until the first verdict,
//! then of [`SAMPLE_BYTES`], spent by copying sends of 2 KiB or more (their
//! bytes) and by reads made when the ring looks full (the bytes that did
//! not fit, per read): the read before the copy of the send that reaches
//! the budget, and, until one finds the position moved, the next reads
//! before copies and those made when the ring looks full (in a stream that
//! fills its ring, these are the ones that see the consumer's releases;
//! round trips never fill their ring).
//! The read in a publication with early wrap is not timed: the consumer's
//! core is then reading the new message, and its answer waits behind that
//! traffic. A window of [`WINDOW`] moved reads gives a verdict: close if
//! at least three in four took at most
//! [`CLOSE_TICKS`](crate::copy::CLOSE_TICKS) (a wrong "far" costs less
//! than a wrong "close"); before the first verdict, the first
//! [`FIRST_WINDOW`] reads decide "close" at once if all were fast. The guest's cores change distance every few
//! seconds to minutes; the verdict follows within a window. A caller's
//! threshold turns the rule off.

use super::Producer;
use crate::error::Error;
use crate::wait::Wait;

/// Timed reads per verdict.
pub(super) const WINDOW: u8 = 4;

/// Before the first verdict, this many fast reads in a row decide "close"
/// at once. A new sender starts far (non-temporal stores), and a one-way
/// stream's moved reads come only with the consumer's lazy releases (one
/// per quarter ring): over a 4 MiB ring a full window of 64 KiB messages
/// ended at message 110, about 7 MiB copied the slow way between close
/// cores; two reads end it at about message 75. A read between far cores
/// takes 224 ticks or more but for a few in a thousand, so two fast ones
/// there are about a one-in-100 000 event, and a wrong "close" lasts one
/// window.
pub(super) const FIRST_WINDOW: u8 = 2;

/// While close (but on Zen 3: see `close_ordinary_from`), copying sends
/// of at least this many bytes use ordinary stores; below it the stream
/// rule stays (4 KiB streams over a 4 MiB ring
/// between close cores: 11–13 GB/s non-temporal, 7–9 ordinary; 8 KiB: 17
/// against 32).
pub(super) const CLOSE_ORDINARY_FROM: u32 = 8 * 1024;

/// While close, copying sends of at least this many bytes use ordinary
/// stores: [`CLOSE_ORDINARY_FROM`], or on Zen 3 every send of the stream
/// rule's sizes (the stream rule is then off: 4 KiB streams between close
/// cores on the Zen 3 guest, 9.7 GB/s ordinary against 8.2 non-temporal).
/// Sends of these sizes still read the position when a sample is due.
fn close_ordinary_from() -> u32 {
    if crate::copy::close_ordinary_everywhere() {
        crate::copy::default_stream_nontemporal_threshold()
    } else {
        CLOSE_ORDINARY_FROM
    }
}

/// Bytes of copying sends between two timed reads once a verdict is in
/// (one read of a line per 256 KiB copied: under 1 % of a stream of 2 KiB
/// messages).
pub(super) const SAMPLE_BYTES: u32 = 256 * 1024;

/// The same before the first verdict: every send of 16 KiB or more, every
/// eighth of 2 KiB.
pub(super) const FIRST_SAMPLE_BYTES: u32 = 16 * 1024;

/// The rule's state.
pub(super) struct Distance {
    /// The rule runs: AMD's default thresholds, and a ring larger than the
    /// producer's L2 cache (any ring on Zen 3).
    pub(super) on: bool,
    /// Timed reads in the current window, and how many of them were fast.
    samples: u8,
    near: u8,
    /// The last verdict: the consumer's core is close (ordinary stores).
    /// A new producer starts with the default thresholds (false).
    pub(super) close: bool,
    /// A verdict is in.
    decided: bool,
    /// Bytes before the next timed read, spent by copying sends and by
    /// reads of a full ring; 0: a sample is due (the next reads are timed
    /// until one finds the position moved).
    due: u32,
}

impl Distance {
    pub(super) fn new(capacity: u32) -> Self {
        let l2 = crate::copy::l2_cache_bytes();
        Distance {
            on: crate::copy::default_nontemporal_threshold() != u32::MAX
                && l2 != 0
                && (capacity > l2 || crate::copy::close_ordinary_everywhere()),
            samples: 0,
            near: 0,
            close: false,
            decided: false,
            due: 0,
        }
    }

    /// One timed read of a line the consumer's core wrote, `ticks` long.
    /// The new verdict when a window ends with a different one.
    pub(super) fn sample(&mut self, ticks: u64) -> Option<bool> {
        self.samples += 1;
        if ticks <= crate::copy::CLOSE_TICKS {
            self.near += 1;
        }
        let early = !self.decided && self.samples == FIRST_WINDOW && self.near == FIRST_WINDOW;
        if self.samples < WINDOW && !early {
            return None;
        }
        let close = early || 4 * self.near >= 3 * WINDOW;
        self.samples = 0;
        self.near = 0;
        self.decided = true;
        if close == self.close {
            return None;
        }
        self.close = close;
        Some(close)
    }
}

impl<W: Wait> Producer<'_, W> {
    /// Before a copying send of `len` bytes, `mode` what
    /// [`nontemporal_for`](Self::nontemporal_for) said (`Some` from 2 KiB,
    /// the stream rule's sizes, in either verdict): the timed read when it
    /// is due. Before
    /// the copy, not after: in a round trip the consumer is then idle,
    /// waiting, while after the copy it reads the message and its core's
    /// answers to our read wait behind that traffic (64 KiB round trips:
    /// reads of 360 ns and more between close cores).
    #[inline(always)]
    pub(super) fn distance_before_copy(
        &mut self,
        mode: Option<bool>,
        len: u32,
    ) -> Result<(), Error> {
        if mode.is_none() || !self.distance.on {
            return Ok(());
        }
        if self.distance.due > len {
            self.distance.due -= len;
            return Ok(());
        }
        // A sample is due (`due` 0) until a timed read finds the position
        // moved (`note_distance`), here or while the ring looks full. A
        // corrupt released position poisons the handle: this send fails.
        self.distance.due = 0;
        self.refresh_released_timed()
    }

    /// Whether a read of the released position made because the ring looks
    /// full (`need` bytes did not fit) is timed: when a sample is due.
    /// Otherwise each such read spends `need` bytes of the budget (a
    /// producer polling a full ring spends it once per poll, and its timed
    /// polls cost nothing it was not already waiting for), so a producer of
    /// grants, which makes no copying sends, still samples (through these
    /// reads alone). Timing every such read cost 10 % of a 4 KiB round trip
    /// over a 16 KiB ring on the Zen 3 guest: the ring looks full every
    /// third send there.
    #[inline(always)]
    pub(super) fn distance_times_full_read(&mut self, need: u32) -> bool {
        if !self.distance.on {
            return false;
        }
        if self.distance.due == 0 {
            return true;
        }
        self.distance.due = self.distance.due.saturating_sub(need);
        false
    }

    /// A timed read of the released position found it moved after `ticks`:
    /// count it, and on a new verdict set the thresholds it calls for.
    #[cold]
    #[inline(never)]
    pub(super) fn note_distance(&mut self, ticks: u64) {
        if !self.distance.on {
            return; // a caller's threshold ended the rule
        }
        let (from, stream_from) = (
            crate::copy::default_nontemporal_threshold(),
            crate::copy::default_stream_nontemporal_threshold(),
        );
        let verdict = self.distance.sample(ticks);
        self.distance.due = if self.distance.decided {
            SAMPLE_BYTES
        } else {
            FIRST_SAMPLE_BYTES
        };
        match verdict {
            // From 8 KiB on, ordinary stores; the stream rule stays below
            // (non-temporal stores still win 4 KiB streams there). On Zen 3,
            // ordinary stores from the stream rule's sizes on: no stream rule.
            Some(true) => {
                self.set_thresholds(u32::MAX, stream_from, close_ordinary_from());
            }
            Some(false) => {
                self.set_thresholds(from, stream_from, u32::MAX);
            }
            None => {}
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::copy::{default_nontemporal_threshold, CLOSE_TICKS};
    use crate::*;

    /// 4 MiB: larger than any AMD core's L2.
    const BIG: u32 = 4 << 20;

    /// A region of `BIG` bytes, aligned, in `mem`.
    fn big(mem: &mut std::vec::Vec<u8>) -> &mut [u8] {
        let size = region_size(BIG).unwrap();
        *mem = std::vec![0u8; size + 128];
        let off = mem.as_ptr().align_offset(128);
        &mut mem[off..off + size]
    }

    fn window(d: &mut Distance, fast: u8) -> Option<bool> {
        let mut out = None;
        for i in 0..WINDOW {
            let t = if i < fast {
                CLOSE_TICKS
            } else {
                CLOSE_TICKS + 1
            };
            let v = d.sample(t);
            if i + 1 < WINDOW {
                assert_eq!(v, None, "no verdict before the window ends");
            }
            out = v;
        }
        out
    }

    fn fresh() -> Distance {
        Distance {
            on: true,
            samples: 0,
            near: 0,
            close: false,
            decided: false,
            due: 0,
        }
    }

    #[test]
    fn first_verdict_two_fast_reads_decide_close() {
        let (fast, slow) = (CLOSE_TICKS, CLOSE_TICKS + 1);
        // Two fast reads first: close at once, and a new window begins.
        let mut d = fresh();
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(fast), Some(true));
        assert!(d.decided && d.close);
        assert_eq!((d.samples, d.near), (0, 0));
        // A slow one among the first two: the whole window decides.
        let mut d = fresh();
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(slow), None);
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(fast), Some(true), "three fast in four");
        let mut d = fresh();
        assert_eq!(d.sample(slow), None);
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(slow), None, "two in four: far, unchanged");
        assert!(d.decided && !d.close);
        // Once decided, two fast reads are only half a window.
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(fast), None);
        assert_eq!(d.sample(slow), None);
        assert_eq!(d.sample(slow), None, "two in four: still far");
    }

    #[test]
    fn verdict_per_window_three_fast_in_four() {
        // After a first verdict (far): windows of four.
        let mut d = fresh();
        assert_eq!(window(&mut d, 0), None);
        assert!(d.decided && !d.close);
        // Two fast reads in four are not enough: still far, no change.
        assert_eq!(window(&mut d, 2), None);
        assert!(d.decided);
        assert_eq!(window(&mut d, 3), Some(true));
        assert!(d.close);
        // Unchanged verdicts say nothing.
        assert_eq!(window(&mut d, WINDOW), None);
        assert_eq!(window(&mut d, 2), Some(false));
        assert!(!d.close);
        assert_eq!(window(&mut d, 0), None);
    }

    #[test]
    fn on_over_rings_larger_than_l2_or_every_ring_on_zen3() {
        // A ring no larger than any L2 runs the rule only on Zen 3.
        let l2 = crate::copy::l2_cache_bytes();
        let on_here = crate::copy::default_nontemporal_threshold() != u32::MAX && l2 != 0;
        let everywhere = on_here && crate::copy::close_ordinary_everywhere();
        assert_eq!(Distance::new(64 * 1024).on, everywhere);
        assert_eq!(Distance::new(1 << 30).on, on_here);
        if l2 != 0 && l2 < u32::MAX / 2 {
            assert_eq!(Distance::new(l2).on, everywhere, "a ring the L2 holds");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "4 MiB region; the rule is off under Miri (no clock)")]
    fn timed_reads_of_a_moved_release_set_the_thresholds() {
        let mut mem = std::vec::Vec::new();
        let (mut tx, mut rx) = split(big(&mut mem), Config::new(BIG), SpinWait::std()).unwrap();
        let defaults = (
            default_nontemporal_threshold(),
            default_stream_nontemporal_threshold(),
        );
        let thresholds = |tx: &Producer<'_, SpinWait>| {
            assert_eq!(
                tx.nontemporal_low,
                tx.nontemporal_from.min(tx.stream_nontemporal_from)
            );
            (
                tx.nontemporal_from,
                tx.stream_nontemporal_from,
                tx.stream_nontemporal_below,
            )
        };
        let defaults = (defaults.0, defaults.1, u32::MAX);
        assert_eq!(thresholds(&tx), defaults, "a new producer starts far");
        let on = tx.distance.on;
        if on {
            // The clock runs (a stub returning 0 would read as close).
            let (a, b) = (crate::copy::ticks_fenced(), crate::copy::ticks_fenced());
            assert!(a > 0 && b > a);
        }
        assert_eq!(on, Distance::new(BIG).on);
        // Released by the consumer (it finds the ring empty), then read by
        // the producer: the line is in this core's cache, a fast read.
        let round = |tx: &mut Producer<'_, SpinWait>, rx: &mut Consumer<'_, SpinWait>| {
            tx.try_send(&[5u8; 64], 1).unwrap();
            assert_eq!(rx.try_recv().unwrap().payload(), &[5u8; 64][..]);
            assert!(rx.try_recv().is_err());
            tx.refresh_released_timed().unwrap();
        };
        for _ in 0..WINDOW {
            round(&mut tx, &mut rx);
        }
        if on {
            // Close (most reads fast; an interrupt may slow one or two).
            assert!(tx.distance.close);
            let from = close_ordinary_from();
            assert_eq!(thresholds(&tx), (u32::MAX, defaults.1, from));
            // From 8 KiB (Zen 3: from 2 KiB): ordinary stores, no clock.
            let never = || -> u64 { panic!("no clock from the stream rule's end on") };
            assert_eq!(tx.nontemporal_at(from, never), Some(false));
            assert_eq!(tx.nontemporal_at(defaults.0, never), Some(false));
            assert_eq!(tx.nontemporal_at(1 << 20, never), Some(false));
            tx.stream_last_end = 1_000;
            if from > defaults.1 {
                // Below: the stream rule, as before.
                assert_eq!(tx.nontemporal_at(from - 1, || 1_001), Some(true));
                assert_eq!(tx.nontemporal_at(defaults.1, || 1_001), Some(true));
                assert_eq!(tx.nontemporal_at(defaults.1, || 1_000_000), Some(false));
            } else {
                // Zen 3: no stream rule; still `Some`, so the sends of its
                // sizes keep sampling the distance.
                assert_eq!(tx.nontemporal_at(defaults.1, never), Some(false));
                assert_eq!(tx.nontemporal_at(defaults.1 - 1, never), None);
            }
            // A window of slow reads: far, the defaults again.
            for _ in 0..WINDOW {
                tx.note_distance(CLOSE_TICKS * 4);
            }
            assert!(!tx.distance.close);
            assert_eq!(thresholds(&tx), defaults);
        } else {
            assert_eq!(thresholds(&tx), defaults, "no rule, no change");
        }
        // A caller's threshold ends the rule: a timed read (which the send
        // paths no longer make) changes nothing.
        tx.set_nontemporal_threshold(4096);
        assert!(!tx.distance.on);
        for _ in 0..WINDOW {
            round(&mut tx, &mut rx);
        }
        assert_eq!(thresholds(&tx), (4096, u32::MAX, u32::MAX));
    }

    #[test]
    #[cfg_attr(miri, ignore = "4 MiB region; the rule is off under Miri (no clock)")]
    fn copying_sends_of_the_rules_sizes_reach_a_verdict() {
        let mut mem = std::vec::Vec::new();
        let (mut tx, mut rx) = split(big(&mut mem), Config::new(BIG), SpinWait::std()).unwrap();
        if !tx.distance.on {
            assert!(Distance::new(BIG).on == tx.distance.on);
            return; // no rule on this processor (the test above covers it)
        }
        // 16 KiB: until the first verdict, every such send reads the
        // position before its copy; after a release, the read finds it
        // moved. The first read finds nothing released yet; then two fast
        // moved reads decide at once (a slow one: the whole window).
        let m = std::vec![3u8; FIRST_SAMPLE_BYTES as usize];
        let mut round = |tx: &mut Producer<'_, SpinWait>, len: usize| {
            tx.send(&m[..len], 2).unwrap();
            assert_eq!(rx.try_recv().unwrap().payload(), &m[..len]);
            assert!(rx.try_recv().is_err()); // empty: releases
        };
        let mut rounds = 0u8;
        while !tx.distance.decided {
            assert!(rounds <= WINDOW, "a verdict within a window of moved reads");
            round(&mut tx, m.len());
            rounds += 1;
        }
        assert!(rounds > FIRST_WINDOW, "{rounds} rounds");
        assert!(tx.distance.close);
        // Then one read per 256 KiB sent: none for the first 256 KiB less
        // one send, one at the send that reaches it.
        let before = tx.distance.samples;
        for _ in 0..SAMPLE_BYTES / FIRST_SAMPLE_BYTES - 1 {
            round(&mut tx, m.len());
        }
        assert_eq!(tx.distance.samples, before, "no read before 256 KiB");
        round(&mut tx, m.len());
        assert_eq!(tx.distance.samples, before + 1, "one read at 256 KiB");
        assert_eq!(tx.nontemporal_from, u32::MAX);
        assert_eq!(tx.stream_nontemporal_below, close_ordinary_from());
    }

    #[test]
    #[cfg_attr(miri, ignore = "4 MiB region; the rule is off under Miri (no clock)")]
    fn reads_while_the_ring_looks_full_reach_a_verdict() {
        let mut mem = std::vec::Vec::new();
        let (mut tx, mut rx) = split(big(&mut mem), Config::new(BIG), SpinWait::std()).unwrap();
        if !tx.distance.on {
            return; // no rule on this processor (see the test above)
        }
        // Grants: no reads before copies, only those of a producer that
        // finds the ring full, timed while a sample is due.
        let len = 64 * 1024;
        let fill = |tx: &mut Producer<'_, SpinWait>| {
            let mut sent = 0;
            while let Ok(g) = tx.try_reserve(len) {
                g.commit(len, 1);
                sent += 1;
            }
            sent
        };
        let mut rounds = 0u8;
        while !tx.distance.decided {
            assert!(rounds <= WINDOW, "a verdict within a window of moved reads");
            // Fill (the failing reservation reads the position: not
            // moved), then drain (the consumer releases when it finds the
            // ring empty): the next fill's first full ring reads it moved.
            let sent = fill(&mut tx);
            assert!(sent > 0);
            for _ in 0..sent {
                assert_eq!(rx.try_recv().unwrap().payload().len(), len);
            }
            assert!(rx.try_recv().is_err());
            rounds += 1;
        }
        // The first fill reads nothing moved; two fast moved reads decide.
        assert!(rounds > FIRST_WINDOW, "{rounds} rounds");
        assert!(tx.distance.close);
        // Then reads of a full ring spend the budget untimed until a
        // sample is due, and the next one that finds the position moved
        // is timed.
        let samples = tx.distance.samples;
        fill(&mut tx);
        assert_eq!(tx.distance.samples, samples, "not due: untimed");
        for _ in 0..SAMPLE_BYTES {
            assert!(tx.try_reserve(len).is_err());
            if tx.distance.due == 0 {
                break;
            }
        }
        assert_eq!(tx.distance.due, 0, "spent by reads of a full ring");
        let samples = tx.distance.samples;
        assert!(tx.try_reserve(len).is_err()); // timed, not moved
        assert_eq!(tx.distance.samples, samples);
        while rx.try_recv().is_ok() {}
        fill(&mut tx);
        assert_eq!(tx.distance.samples, samples + 1, "timed, moved");
    }
}
