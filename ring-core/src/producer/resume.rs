//! Resuming a ring whose producer is gone: finding where it stopped.

use super::Producer;
use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::ring::Shared;
use crate::sync::Ordering::*;
use crate::wait::Wait;

impl<'a, W: Wait> Producer<'a, W> {
    /// A producer that continues the stream of one that is gone (see
    /// `take_over_producer`): the write position is the first empty header
    /// after the published records, walked from the consumer's released
    /// position.
    pub(crate) fn resume(sh: Shared<'a>, wait: W) -> Result<Self, Error> {
        // SYNC POINT: Acquire; pairs with the consumer's Release store of its
        // released position: its reads of the records before it happen before
        // we overwrite them.
        let released = sh.cons.hot.released.load(Acquire);
        let head = walk_published(&sh, released).map_err(Error::Corrupt)?;
        let mut p = Producer::new(sh, wait);
        p.head = head;
        p.published = head;
        p.cached_released = released;
        // The header at `head` was read as zero; nothing past it is known.
        p.zeroed = head.wrapping_add(RECORD_HEADER);
        p.refresh_from = u32::MAX;
        // The counters go on from where the old producer left them.
        p.messages = p.sh.prod.hot.messages.load(Relaxed);
        p.bytes = p.sh.prod.hot.bytes.load(Relaxed);
        p.full = p.sh.prod.hot.full.load(Relaxed);
        let wakes = p.sh.prod.hot.wakes.load(Relaxed);
        p.sleep.resume(&p.sh.prod.wait, wakes);
        Ok(p)
    }
}

/// Walk the published records from `from` (a released position) to the
/// first header that is zero, and return its position. Every header is
/// validated as the consumer validates it, and the walk never goes further
/// than the producer may have written (`capacity - 8` bytes past `from`).
fn walk_published(sh: &Shared<'_>, from: u32) -> Result<u32, Corruption> {
    if from % RECORD_ALIGN != 0 {
        return Err(Corruption::BadReleasedPosition);
    }
    let (cap, mask) = (sh.capacity, sh.capacity - 1);
    let mut pos = from;
    loop {
        let off = pos & mask;
        // SYNC POINT: Acquire; pairs with the old producer's Release store
        // of this word (or of an earlier record of its batch).
        let word = sh.data.commit_word(off).load(Acquire);
        if word == 0 {
            return Ok(pos);
        }
        if word & COMMITTED == 0 {
            return Err(Corruption::BadCommitWord);
        }
        let len = word >> LEN_SHIFT;
        let in_line = off & (CACHE_LINE - 1);
        let size = if word & PADDING == 0 {
            if len > sh.max_payload || off + record_size(len) > cap {
                return Err(Corruption::BadLength);
            }
            record_size(len)
        } else if in_line != 0 && len == CACHE_LINE - RECORD_HEADER - in_line {
            CACHE_LINE - in_line
        } else if off != 0 && off as u64 + RECORD_HEADER as u64 + len as u64 == cap as u64 {
            cap - off
        } else {
            return Err(Corruption::BadPadding);
        };
        pos = pos.wrapping_add(size);
        // The header after the record must lie in space the producer owned.
        if pos.wrapping_sub(from) as u64 + RECORD_HEADER as u64 > cap as u64 {
            return Err(Corruption::RecordOverrun);
        }
    }
}
