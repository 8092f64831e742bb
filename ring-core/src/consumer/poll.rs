//! Reading records: polling the commit word at `tail`, skipping padding,
//! and validating what the producer published before anything is read
//! through it.

use super::Consumer;
use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::sync::Ordering::*;
use crate::wait::Wait;

/// A validated record: its offset in the data area and its payload length,
/// packed in one word.
///
/// One word because every copy of it is then one 8-byte move (see "Store
/// forwarding" in `producer/place.rs`). The type id is read from the
/// header when asked for (the record is ours until released).
#[derive(Clone, Copy, Debug)]
pub(super) struct Rec(u64);

impl Rec {
    #[inline(always)]
    fn new(off: u32, len: u32) -> Rec {
        Rec(off as u64 | (len as u64) << 32)
    }
    #[inline(always)]
    pub(super) fn off(self) -> u32 {
        self.0 as u32
    }
    #[inline(always)]
    pub(super) fn len(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// Header, payload and padding to 8 bytes.
    #[inline(always)]
    pub(super) fn size(self) -> u32 {
        record_size(self.len())
    }
}

impl<'a, W: Wait> Consumer<'a, W> {
    /// Look at the header at `tail`: a validated record, or `None` if nothing
    /// is committed there. Skips padding: line padding, then end padding.
    #[inline(always)]
    pub(super) fn poll(&mut self) -> Result<Option<Rec>, Error> {
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
    pub(super) fn payload(&self, r: Rec) -> &[u8] {
        let ptr = self.sh.data.bytes(r.off() + RECORD_HEADER, r.len());
        // SAFETY: `check` proved `off + size <= capacity`, so the `len` bytes
        // after the header are in the data area; the record is published
        // (the Acquire load of its commit word in `poll`) and not released,
        // so the producer does not write it.
        // (A hostile peer may still write it: the bytes may change, but stay
        // in bounds.)
        unsafe { core::slice::from_raw_parts(ptr, r.len() as usize) }
    }

    /// The payload of a record we hold, as a raw pointer: for copies that
    /// must not form a reference to memory the peer can write.
    #[inline(always)]
    pub(super) fn payload_ptr(&self, r: Rec) -> *const u8 {
        self.sh.data.bytes(r.off() + RECORD_HEADER, r.len())
    }

    /// The type id in the header of a record we hold (not yet released).
    #[inline(always)]
    pub(super) fn type_id(&self, r: Rec) -> u32 {
        self.sh.data.read_type_id(r.off())
    }
}

/// The commit word of line padding from `in_line` bytes into a cache line
/// (not 0) to the line's end.
#[inline(always)]
const fn line_pad_word(in_line: u32) -> u32 {
    COMMITTED | PADDING | ((CACHE_LINE - RECORD_HEADER - in_line) << LEN_SHIFT)
}
