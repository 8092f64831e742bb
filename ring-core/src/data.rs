//! Access to the data area.
//!
//! Normally the data area is raw bytes in the region and a record's commit
//! word is an `AtomicU32` at its 8-aligned offset. Under `--cfg loom` the bytes
//! live in a heap buffer and every 8-byte slot has a shadow loom atomic (the
//! commit word) and a loom `UnsafeCell` that records payload accesses, so loom
//! both explores the orderings of commit words and detects payload reads that
//! are not ordered after the writes (or payload writes not ordered after the
//! reads of the previous lap).

use crate::sync::AtomicU32;

#[cfg(not(loom))]
pub(crate) struct Data {
    /// Start of the data area: `capacity` bytes, 8-aligned (the region is 128-aligned).
    base: core::ptr::NonNull<u8>,
    capacity: u32,
}

#[cfg(not(loom))]
impl Data {
    /// # Safety
    /// `base` must be valid for reads and writes of `capacity` bytes, 8-aligned,
    /// for as long as the `Data` is used.
    pub(crate) unsafe fn new(base: core::ptr::NonNull<u8>, capacity: u32) -> Self {
        Data { base, capacity }
    }

    /// The commit word of the record header at `off`.
    #[inline(always)]
    pub(crate) fn commit_word(&self, off: u32) -> &AtomicU32 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.capacity);
        // SAFETY: `off + 8 <= capacity` (every caller derives `off` by masking a
        // position with `capacity - 1` and rounding to 8), so the 4 bytes are
        // inside the data area; `base` is 8-aligned and `off` a multiple of 8,
        // so the pointer is aligned for `AtomicU32`; any bit pattern is a valid
        // `u32`, and all concurrent accesses to commit words are atomic.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off as usize).cast()) }
    }

    #[inline(always)]
    pub(crate) fn write_type_id(&self, off: u32, type_id: u32) {
        debug_assert!(off % 8 == 0 && off + 8 <= self.capacity);
        // SAFETY: bytes off+4..off+8 lie in the data area (see `commit_word`) and
        // belong to the producer (a reserved, unpublished record), 4-aligned.
        unsafe {
            self.base
                .as_ptr()
                .add(off as usize + 4)
                .cast::<u32>()
                .write(type_id)
        }
    }

    #[inline(always)]
    pub(crate) fn read_type_id(&self, off: u32) -> u32 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.capacity);
        // SAFETY: in bounds and aligned as in `write_type_id`; the consumer
        // reads it after the Acquire load of the record's commit word and
        // before it releases the record.
        unsafe {
            self.base
                .as_ptr()
                .add(off as usize + 4)
                .cast::<u32>()
                .read()
        }
    }

    /// Pointer to `len` payload bytes at `off`.
    #[inline(always)]
    pub(crate) fn bytes(&self, off: u32, len: u32) -> *mut u8 {
        debug_assert!(off as u64 + len as u64 <= self.capacity as u64);
        // SAFETY: `off + len <= capacity`, checked by every caller before use.
        unsafe { self.base.as_ptr().add(off as usize) }
    }

    /// Zero `len` bytes at `off` (free space only the producer touches).
    #[inline(always)]
    pub(crate) fn clear(&self, off: u32, len: u32) {
        debug_assert!(
            off % 8 == 0 && len % 8 == 0 && off as u64 + len as u64 <= self.capacity as u64
        );
        // SAFETY: `off + len <= capacity` (the caller splits at the end of the
        // data area), so the bytes are inside it; they are free space, which
        // only the producer writes and nobody reads until a later publication
        // (Release) orders these writes before the reads.
        unsafe { core::ptr::write_bytes(self.base.as_ptr().add(off as usize), 0, len as usize) }
    }

    #[inline(always)]
    pub(crate) fn scribble(&self, _off: u32, _len: u32) {}
    #[inline(always)]
    pub(crate) fn track_write(&self, _off: u32, _len: u32) {}
    #[inline(always)]
    pub(crate) fn track_read(&self, _off: u32, _len: u32) {}
}

#[cfg(loom)]
pub(crate) struct Data {
    bytes: *mut u8,
    capacity: u32,
    words: &'static [AtomicU32],
    cells: &'static [loom::cell::UnsafeCell<()>],
}

#[cfg(loom)]
impl Data {
    /// A fresh, leaked data area for one loom execution.
    pub(crate) fn new_loom(capacity: u32) -> Self {
        extern crate std;
        use std::{boxed::Box, vec, vec::Vec};
        let slots = capacity as usize / 8;
        let bytes = Box::leak(vec![0u8; capacity as usize].into_boxed_slice()).as_mut_ptr();
        let words: Vec<AtomicU32> = (0..slots).map(|_| AtomicU32::new(0)).collect();
        let cells: Vec<loom::cell::UnsafeCell<()>> = (0..slots)
            .map(|_| loom::cell::UnsafeCell::new(()))
            .collect();
        Data {
            bytes,
            capacity,
            words: Box::leak(words.into_boxed_slice()),
            cells: Box::leak(cells.into_boxed_slice()),
        }
    }

    pub(crate) fn commit_word(&self, off: u32) -> &AtomicU32 {
        assert!(off % 8 == 0 && off + 8 <= self.capacity);
        &self.words[off as usize / 8]
    }

    pub(crate) fn write_type_id(&self, off: u32, type_id: u32) {
        self.cells[off as usize / 8].with_mut(|_| ());
        // SAFETY: in bounds (asserted); loom runs one thread at a time.
        unsafe {
            self.bytes
                .add(off as usize + 4)
                .cast::<u32>()
                .write_unaligned(type_id)
        }
    }

    pub(crate) fn read_type_id(&self, off: u32) -> u32 {
        self.cells[off as usize / 8].with(|_| ());
        // SAFETY: in bounds (asserted); loom runs one thread at a time.
        unsafe {
            self.bytes
                .add(off as usize + 4)
                .cast::<u32>()
                .read_unaligned()
        }
    }

    pub(crate) fn bytes(&self, off: u32, len: u32) -> *mut u8 {
        assert!(off as u64 + len as u64 <= self.capacity as u64);
        // SAFETY: in bounds (asserted).
        unsafe { self.bytes.add(off as usize) }
    }

    /// Zero the commit words of the slots in `off..off + len`.
    pub(crate) fn clear(&self, off: u32, len: u32) {
        for slot in (off / 8)..((off + len) / 8) {
            self.cells[slot as usize].with_mut(|_| ());
            self.words[slot as usize].store(0, crate::sync::Ordering::Relaxed);
        }
    }

    /// A grant over `off..off + len` was handed out: the user may write any
    /// bytes there, so every shadow commit word it covers now reads as a
    /// committed 8-byte record (the most misleading value).
    pub(crate) fn scribble(&self, off: u32, len: u32) {
        use crate::layout::{COMMITTED, LEN_SHIFT};
        for slot in (off / 8)..((off + len + 7) / 8) {
            self.cells[slot as usize].with_mut(|_| ());
            self.words[slot as usize]
                .store(COMMITTED | (8 << LEN_SHIFT), crate::sync::Ordering::Relaxed);
        }
    }

    pub(crate) fn track_write(&self, off: u32, len: u32) {
        for slot in (off / 8)..((off + len + 7) / 8) {
            self.cells[slot as usize].with_mut(|_| ());
        }
    }

    pub(crate) fn track_read(&self, off: u32, len: u32) {
        for slot in (off / 8)..((off + len + 7) / 8) {
            self.cells[slot as usize].with(|_| ());
        }
    }
}

#[cfg(loom)]
impl Data {
    pub(crate) fn clone_loom(&self) -> Self {
        Data {
            bytes: self.bytes,
            capacity: self.capacity,
            words: self.words,
            cells: self.cells,
        }
    }
}
