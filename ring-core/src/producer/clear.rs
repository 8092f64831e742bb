//! Clear-ahead: zeroing the commit words of the free space ahead of `head`
//! before they are needed, and forgetting them when a grant hands them out.

use super::Producer;
use crate::layout::*;
use crate::wait::Wait;

/// `clear_ahead` runs (after records smaller than a cache line) when fewer
/// than this many bytes ahead of `head` are cleared...
const CLEAR_LOW_WATER: u32 = 64;
/// ...and clears up to this far ahead (rounded down to a cache line), within free space.
const CLEAR_AHEAD: u32 = 256;

impl<'a, W: Wait> Producer<'a, W> {
    /// Only the slots in `[head, head + dist)` stay known-clear when a grant's
    /// payload (which the user may fill with anything) reached beyond `dist`.
    #[inline]
    pub(super) fn forget_cleared_after(&mut self, dist: u32) {
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
    pub(super) fn clear_ahead(&mut self) {
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
}
