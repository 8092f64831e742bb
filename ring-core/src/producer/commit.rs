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
        publishing: bool,
    ) {
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
