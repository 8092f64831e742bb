//! Releasing consumed space: the released position, stored lazily, and
//! the wake-up check that follows it.

use super::{Consumer, Rec};
use crate::sleep::wake_peer;
use crate::sync::Ordering::*;
use crate::wait::Wait;

impl<'a, W: Wait> Consumer<'a, W> {
    #[inline]
    pub(super) fn consume(&mut self, r: Rec) {
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
    pub(super) fn publish_release(&mut self) {
        self.store_release();
        if self.checked != self.published {
            self.checked = self.published;
            if !self.sh.pure_spin {
                wake_peer(self);
            }
        }
    }

    /// Store the released position if it moved, without the wake-up check
    /// (`checked` stays behind; the next `publish_release` makes it).
    #[inline]
    pub(super) fn store_release(&mut self) {
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
}
