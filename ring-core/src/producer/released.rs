//! Reading the consumer's released position, and validating it: the one
//! value the producer takes from the consumer's side of the region.

use super::Producer;
use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::sync::Ordering::*;
use crate::wait::Wait;

impl<'a, W: Wait> Producer<'a, W> {
    /// Read and validate the consumer's released position.
    fn refresh_released(&mut self) -> Result<(), Error> {
        // SYNC POINT: Acquire; pairs with the consumer's Release store in
        // `Consumer::store_release`, so its reads of the released records
        // happen before we overwrite them.
        let r = self.sh.cons.hot.released.load(Acquire);
        self.accept_released(r)
    }

    /// [`refresh_released`](Self::refresh_released), timed for the distance
    /// rule (`distance.rs`): a read that finds the position moved fetched
    /// its line from the consumer's core.
    #[cold]
    #[inline(never)]
    pub(super) fn refresh_released_timed(&mut self) -> Result<(), Error> {
        let t0 = crate::copy::ticks_fenced();
        // SYNC POINT: Acquire; as in `refresh_released`.
        let r = self.sh.cons.hot.released.load(Acquire);
        let t1 = crate::copy::ticks_fenced();
        let moved = r != self.cached_released;
        self.accept_released(r)?;
        if moved {
            self.note_distance(t1.wrapping_sub(t0));
        }
        Ok(())
    }

    /// Validate a released position read from the consumer's line, and
    /// take it.
    #[inline(always)]
    fn accept_released(&mut self, r: u32) -> Result<(), Error> {
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
    pub(super) fn room_for(&mut self, need: u32) -> Result<bool, Error> {
        if self.fits(need) {
            return Ok(true);
        }
        self.room_after_refresh(need)
    }

    #[inline(never)]
    fn room_after_refresh(&mut self, need: u32) -> Result<bool, Error> {
        // The distance rule times these reads too when a sample is due: in
        // a stream that fills its ring they are the ones that see the
        // consumer's releases (the timed read before a copy then finds
        // nothing moved, and the sample stays due).
        if self.distance_times_full_read(need) {
            self.refresh_released_timed()?;
        } else {
            self.refresh_released()?;
        }
        Ok(self.fits(need))
    }

    /// See `refresh_from`. A corrupt released position poisons the handle
    /// (the next call reports it).
    #[cold]
    #[inline(never)]
    pub(super) fn refresh_for_wrap(&mut self) {
        let _ = self.refresh_released();
        self.refresh_from = (self.head & self.mask).saturating_add(self.wrap_from);
    }
}
