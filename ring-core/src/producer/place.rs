//! Record placement: where a reservation goes (end padding, early wrap,
//! line padding) and whether it fits the free space the producer knows of.
//!
//! # Store forwarding
//!
//! The one explanation of a constraint on both handles' hot paths (the
//! places that obey it point here). On x86 a load is served from the store
//! buffer only when one older store covers it; a wider load over narrower
//! stores (two 4-byte stores read back by one 8-byte load, a value spilled
//! byte by byte and reloaded whole) waits until every older store has
//! drained, including the last publication's stores to lines the peer
//! holds. A value that passes through memory between functions that are
//! not inlined (a `Result` holding a plan, a grant or a record) is exposed
//! to that. Measured across processes: a plan cached by `has_room` and
//! reloaded by `reserve`, about 60 ns per message; a `Grant` returned
//! through a `Result`, 20-40 ns per message; the consumer's record as four
//! `u32`s, or returned from its out-of-line wait, tens of ns per round
//! trip. Hence: `plan` keeps the placement out of its `Result`;
//! `has_room` caches nothing; the copying sends use no `Grant` value
//! (`write_message`); the consumer's record is one `u64` (`Rec`), and its
//! out-of-line wait leaves it in `ready` (`wait_record`). Users get the
//! same advice in [`Producer::try_reserve`]: fill and commit a grant in the
//! function that reserved it.

use super::Producer;
use crate::error::Error;
use crate::layout::*;
use crate::wait::Wait;

/// Where a reservation goes.
#[derive(Clone, Copy)]
pub(super) struct Plan {
    /// Offset of the record header in the data area.
    pub(super) off: u32,
    /// Bytes of padding before it (at the end of the data area), or 0.
    pub(super) pad: u32,
    /// Payload bytes reserved.
    pub(super) len: u32,
    /// Line padding a publishing commit of the whole reservation puts
    /// after the record (see [`Producer::line_pad`]), or 0.
    pub(super) line_pad: u32,
    /// Free bytes needed: padding + record + line padding + the next
    /// record's header.
    pub(super) need: u32,
}

impl<'a, W: Wait> Producer<'a, W> {
    /// Where a `len`-byte payload goes, or why it cannot: poison or
    /// `TooLarge`. The placement itself is infallible arithmetic kept out of
    /// the `Result` (see "Store forwarding" in the module docs).
    ///
    /// `padded`: the commit may publish, so the plan counts line padding.
    #[inline(always)]
    pub(super) fn plan(&self, len: usize, padded: bool) -> Result<Plan, Error> {
        if self.poison.is_some() || len > self.sh.max_payload as usize {
            return Err(self.plan_error(len));
        }
        Ok(self.place(len as u32, padded))
    }

    #[cold]
    fn plan_error(&self, len: usize) -> Error {
        match self.poison {
            Some(c) => Error::Corrupt(c),
            None => Error::TooLarge {
                len,
                max: self.sh.max_payload,
            },
        }
    }

    /// The placement of a record with a `len`-byte payload at `head`.
    ///
    /// An empty ring always has room for the plan of any payload up to
    /// `max_payload` (a record of at most `capacity / 2`): with line padding,
    /// `rec < 64` and the padding is shorter than the record, so without an
    /// end pad `rec + line_pad + 8 <= 2 * rec <= capacity`; after an end pad
    /// (shorter than the record) the record starts at offset 0, where it is
    /// padded only if `rec > 32`, to offset 64: `need <= (rec - 8) + 64 + 8
    /// <= 120` in a ring of at least 128 bytes (a ring of 64 has `rec <= 32`).
    #[inline(always)]
    fn place(&self, len: u32, padded: bool) -> Plan {
        let rec = record_size(len);
        let off = self.head & self.mask;
        let room = self.sh.capacity - off;
        let (off, pad) = if rec <= room && !(off >= self.wrap_from && self.wraps_early(off, rec)) {
            (off, 0)
        } else {
            (0, room)
        };
        let line_pad = if padded {
            self.line_pad(off + rec, rec)
        } else {
            0
        };
        Plan {
            off,
            pad,
            len,
            line_pad,
            need: pad + rec + line_pad + RECORD_HEADER,
        }
    }

    /// Whether a `rec`-byte record that would go at `off` (nonzero, at least
    /// `wrap_from`) goes to offset 0 early: by the cached released position,
    /// at most half the lap before `off` is unreleased and the record
    /// (with its line padding and the next header) fits after the end pad.
    #[inline(never)]
    fn wraps_early(&self, off: u32, rec: u32) -> bool {
        let used = self.head.wrapping_sub(self.cached_released);
        let need = (self.sh.capacity - off) + rec + self.line_pad(rec, rec) + RECORD_HEADER;
        used <= off / 2 && self.fits(need)
    }

    #[inline(always)]
    pub(super) fn fits(&self, need: u32) -> bool {
        let used = self.head.wrapping_sub(self.cached_released) as u64;
        used + need as u64 <= self.sh.capacity as u64
    }

    /// The bytes of line padding a publishing commit puts after a record of
    /// `rec` bytes that ends at `after` (`place` counts them in the plan):
    /// up to the end of its cache line when line padding is on, the record
    /// is smaller than a line and the rest of the line is shorter than the
    /// record; else 0. See [`set_line_padding`](Self::set_line_padding).
    #[inline(always)]
    fn line_pad(&self, after: u32, rec: u32) -> u32 {
        if rec >= self.pad_below {
            return 0; // off, or a record of a line or more
        }
        let room = CACHE_LINE - (after & (CACHE_LINE - 1));
        if room < rec {
            room
        } else {
            0
        }
    }
}
