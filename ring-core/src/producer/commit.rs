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

    /// Whether a copying send of `len` bytes writes with non-temporal
    /// stores (`Some`), or `None` for a payload below both thresholds (no
    /// stamp either: one compare on the small messages' path). From the
    /// threshold on, and from the stream threshold on when the send starts
    /// right after the previous such send ended (a stream; see
    /// `stream_nontemporal_from`). Called before any wait for room.
    #[inline(always)]
    pub(super) fn nontemporal_for(&self, len: u32) -> Option<bool> {
        if len < self.nontemporal_low {
            return None;
        }
        if len >= self.nontemporal_from {
            return Some(true);
        }
        let gap = crate::copy::ticks().wrapping_sub(self.stream_last_end);
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
    use crate::copy::{default_nontemporal_threshold, ticks, STREAM_GAP_TICKS};
    use crate::*;
    use std::boxed::Box;

    type Buf = RegionBuf<{ region_size(1 << 16).unwrap() }>;

    #[test]
    fn stream_rule_follows_the_gap_between_sends() {
        let mut buf: Box<Buf> = Box::default();
        let (mut tx, mut rx) =
            split(buf.as_mut_slice(), Config::new(1 << 16), SpinWait::std()).unwrap();
        let on = default_nontemporal_threshold() != u32::MAX;
        assert_eq!(tx.stream_nontemporal_from, if on { 4096 } else { u32::MAX });
        // Below both thresholds: no decision to take, no clock read.
        assert_eq!(tx.nontemporal_for(4095), None);
        // At the stream threshold: ordinary stores for the first send.
        assert_ne!(tx.nontemporal_for(4096), Some(true));
        let big = [5u8; 4096];
        tx.try_send(&big, 1).unwrap();
        assert_eq!(rx.try_recv().unwrap().payload(), &big[..]);
        if on {
            assert_ne!(tx.stream_last_end, 0, "a stream-sized send stamps its end");
            tx.stream_last_end = ticks() - 1000 * STREAM_GAP_TICKS;
            assert_eq!(
                tx.nontemporal_for(4096),
                Some(false),
                "long after the last one"
            );
            // Right after the last one: a stream (a preemption between the
            // two reads of the counter can make one try miss).
            let hit = (0..1000).any(|_| {
                tx.stream_last_end = ticks();
                tx.nontemporal_for(4096) == Some(true)
            });
            assert!(hit, "a send right after the last one is part of a stream");
            assert_eq!(
                tx.nontemporal_for(4095),
                None,
                "but not below its threshold"
            );
            assert_eq!(tx.nontemporal_for(16 * 1024), Some(true));
        } else {
            assert_eq!(tx.stream_last_end, 0, "no clock read when the rule is off");
            assert_eq!(tx.nontemporal_for(1 << 20), None);
        }
        // A threshold of the caller's replaces the rule.
        tx.set_nontemporal_threshold(u32::MAX);
        tx.stream_last_end = ticks();
        assert_eq!(tx.nontemporal_for(4096), None);
        assert_eq!(tx.nontemporal_for(60_000), None);
        tx.set_nontemporal_threshold(1024);
        assert_eq!(tx.nontemporal_for(1023), None);
        assert_eq!(tx.nontemporal_for(1024), Some(true));
        assert_eq!(tx.nontemporal_for(4096), Some(true));
        // Messages sent back to back either way arrive whole.
        tx.set_nontemporal_threshold(default_nontemporal_threshold());
        tx.stream_nontemporal_from = if on { 4096 } else { u32::MAX };
        tx.nontemporal_low = tx.stream_nontemporal_from.min(tx.nontemporal_from);
        for i in 0..64u8 {
            let m = [i; 5000];
            tx.send(&m, u32::from(i)).unwrap();
            let got = rx.try_recv().unwrap();
            assert_eq!((got.type_id(), got.payload()), (u32::from(i), &m[..]));
        }
    }
}
