//! Writing records: copying a payload in, handing one out to a grant, and
//! committing it (its commit word, padding records, the cleared successor
//! header), staged or for the next publication.

use super::{Plan, Producer};
use crate::copy::copy_in;
use crate::layout::*;
use crate::sync::Ordering::*;
use crate::wait::Wait;

impl<'a, W: Wait> Producer<'a, W> {
    /// Copy a whole message in and commit it (staged), without a [`Grant`](super::Grant)
    /// value: the copying sends keep the plan in registers (see "Store
    /// forwarding" in `producer/place.rs`).
    #[inline(always)]
    pub(super) fn write_message(
        &mut self,
        plan: Plan,
        payload: &[u8],
        type_id: u32,
        nontemporal: bool,
        publishing: bool,
    ) {
        debug_assert_eq!(plan.len as usize, payload.len());
        let cleared = self.open(plan);
        let dst = self.sh.data.bytes(plan.off + RECORD_HEADER, plan.len);
        // SAFETY: `plan` placed `8 + len` bytes at `off` inside the data area
        // and inside free space (`room_for(need)` held), which only the
        // producer touches until it publishes; `payload` is caller memory,
        // so the ranges do not overlap.
        unsafe { copy_in(dst, payload, nontemporal) };
        self.commit_record(plan, cleared, plan.len, type_id, publishing);
    }

    /// Set the non-temporal thresholds (the stream rule's from
    /// `stream_from` up to `stream_below`), and `nontemporal_low` with them
    /// (the one place that keeps it their minimum).
    pub(super) fn set_thresholds(
        &mut self,
        nontemporal_from: u32,
        stream_from: u32,
        stream_below: u32,
    ) {
        self.nontemporal_from = nontemporal_from;
        self.stream_nontemporal_from = stream_from;
        self.stream_nontemporal_below = stream_below;
        self.nontemporal_low = nontemporal_from.min(stream_from);
    }

    /// Whether a copying send of `len` bytes writes with non-temporal
    /// stores (`Some`), or `None` for a payload below both thresholds (no
    /// stamp either: one compare on the small messages' path). From the
    /// threshold on, and from the stream threshold on when the send starts
    /// right after the previous such send ended (a stream; see
    /// `stream_nontemporal_from`). Called before any wait for room.
    #[inline(always)]
    pub(super) fn nontemporal_for(&self, len: u32) -> Option<bool> {
        self.nontemporal_at(len, crate::copy::ticks)
    }

    /// [`nontemporal_for`](Self::nontemporal_for) with the clock given
    /// (read only for the stream rule's sizes).
    #[inline(always)]
    pub(super) fn nontemporal_at(&self, len: u32, now: impl FnOnce() -> u64) -> Option<bool> {
        if len < self.nontemporal_low {
            return None;
        }
        if len >= self.nontemporal_from {
            return Some(true);
        }
        if len >= self.stream_nontemporal_below {
            return Some(false);
        }
        // Where the clock is a stub (0), the rule is never on: the stream
        // threshold is `u32::MAX` wherever the non-temporal default is.
        let gap = now().wrapping_sub(self.stream_last_end);
        Some(gap <= crate::copy::STREAM_GAP_TICKS)
    }

    /// After a copying send of `len` bytes, `mode` what
    /// [`nontemporal_for`](Self::nontemporal_for) said: note the end of a
    /// send of the stream rule's sizes (after its commit and publication,
    /// whose stores may wait for lines the consumer holds).
    #[inline(always)]
    pub(super) fn stamp_stream(&mut self, mode: Option<bool>, len: u32) {
        if mode.is_some() && len >= self.stream_nontemporal_from {
            self.stream_last_end = crate::copy::ticks();
        }
    }

    /// Hand out the payload bytes of `plan`; returns the `zeroed` frontier
    /// before that (the grant's `cleared`).
    #[inline(always)]
    pub(super) fn open(&mut self, plan: Plan) -> u32 {
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
    pub(super) fn commit_record(
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
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::copy::{default_nontemporal_threshold, STREAM_GAP_TICKS};
    use crate::*;
    use std::boxed::Box;

    /// 32 KiB: room for five 5000-byte messages (a small region keeps the
    /// tests quick under Miri).
    const CAP: u32 = 1 << 15;
    type Buf = RegionBuf<{ region_size(CAP).unwrap() }>;

    /// The rule turned on whatever the vendor (what the AMD default does).
    fn rule_on(tx: &mut Producer<'_, SpinWait>) {
        tx.set_thresholds(16 * 1024, 4096, u32::MAX);
    }

    #[test]
    fn stream_rule_defaults_follow_the_processor() {
        let mut buf: Box<Buf> = Box::default();
        let (tx, _rx) = split(buf.as_mut_slice(), Config::new(CAP), SpinWait::std()).unwrap();
        let on = default_nontemporal_threshold() != u32::MAX;
        assert_eq!(tx.stream_nontemporal_from, if on { 2048 } else { u32::MAX });
        assert_eq!(
            tx.stream_nontemporal_from,
            default_stream_nontemporal_threshold()
        );
        assert_eq!(
            tx.nontemporal_low,
            tx.stream_nontemporal_from.min(tx.nontemporal_from)
        );
        if !on {
            assert_eq!(tx.nontemporal_for(1 << 20), None, "no rule, no threshold");
        }
    }

    #[test]
    fn stream_rule_follows_the_gap_between_sends() {
        let mut buf: Box<Buf> = Box::default();
        let (mut tx, _rx) = split(buf.as_mut_slice(), Config::new(CAP), SpinWait::std()).unwrap();
        rule_on(&mut tx);
        let never = || -> u64 { panic!("the clock is read only for the rule's sizes") };
        assert_eq!(tx.nontemporal_at(4095, never), None);
        assert_eq!(tx.nontemporal_at(16 * 1024, never), Some(true));
        tx.stream_last_end = 1_000;
        let gap = STREAM_GAP_TICKS;
        assert_eq!(tx.nontemporal_at(4096, || 1_000), Some(true));
        assert_eq!(tx.nontemporal_at(4096, || 1_000 + gap), Some(true));
        assert_eq!(tx.nontemporal_at(4096, || 1_000 + gap + 1), Some(false));
        assert_eq!(tx.nontemporal_at(16 * 1024 - 1, || 1_000 + gap), Some(true));
        // A counter behind the stamp (another core's, after a migration)
        // reads as a long gap, never as a stream.
        assert_eq!(tx.nontemporal_at(4096, || 999), Some(false));
        // A threshold of the caller's replaces the rule.
        tx.set_nontemporal_threshold(u32::MAX);
        assert_eq!(tx.nontemporal_at(4096, || 1_000), None);
        assert_eq!(tx.nontemporal_at(60_000, || 1_000), None);
        tx.set_nontemporal_threshold(1024);
        assert_eq!(tx.nontemporal_at(1023, never), None);
        assert_eq!(tx.nontemporal_at(1024, never), Some(true));
        assert_eq!(tx.nontemporal_at(4096, never), Some(true));
    }

    #[test]
    fn every_copying_send_stamps_and_streams_arrive_whole() {
        // The clock is real on x86-64 outside Miri, a stub (0) elsewhere.
        let clock = cfg!(all(target_arch = "x86_64", not(miri)));
        let mut buf: Box<Buf> = Box::default();
        let (mut tx, mut rx) =
            split(buf.as_mut_slice(), Config::new(CAP), SpinWait::std()).unwrap();
        rule_on(&mut tx);
        let m = [7u8; 4096];
        type Send = fn(&mut Producer<'_, SpinWait>, &[u8]);
        let sends: [(&str, Send); 4] = [
            ("try_send", |tx, m| tx.try_send(m, 1).unwrap()),
            ("send", |tx, m| tx.send(m, 1).unwrap()),
            ("send_timeout", |tx, m| {
                tx.send_timeout(m, 1, std::time::Duration::from_secs(1))
                    .unwrap()
            }),
            ("send_staged", |tx, m| {
                tx.send_staged(m, 1).unwrap();
                tx.publish();
            }),
        ];
        for (name, send) in sends {
            tx.stream_last_end = 0;
            send(&mut tx, &m);
            assert_eq!(tx.stream_last_end != 0, clock, "{name} stamps its end");
            assert_eq!(rx.try_recv().unwrap().payload(), &m[..], "{name}");
            // Below the rule's sizes: no stamp.
            tx.stream_last_end = 0;
            send(&mut tx, &m[..4095]);
            assert_eq!(tx.stream_last_end, 0, "{name} of 4095 bytes");
            assert_eq!(rx.try_recv().unwrap().payload(), &m[..4095]);
        }
        // Back to back, as a stream sends them (most of these after the
        // first take the non-temporal path where the clock is real), then
        // read: every byte arrives.
        let n: u8 = if cfg!(miri) { 3 } else { 5 }; // Miri: every byte is slow
        let msgs: std::vec::Vec<std::vec::Vec<u8>> = (0..n)
            .map(|i| {
                (0..5000u32)
                    .map(|j| (j as u8).wrapping_mul(31) ^ i)
                    .collect()
            })
            .collect();
        for (i, msg) in msgs.iter().enumerate() {
            tx.send(msg, i as u32).unwrap();
        }
        for (i, msg) in msgs.iter().enumerate() {
            let got = rx.try_recv().unwrap();
            assert_eq!((got.type_id(), got.payload()), (i as u32, &msg[..]));
        }
    }
}
