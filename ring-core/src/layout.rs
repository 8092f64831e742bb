//! The shared-memory layout: a wire format between processes.
//!
//! See the crate documentation ("Region layout") for the byte-level
//! specification; the `const` assertions at the bottom keep this file and that
//! text in agreement.

use crate::sync::{AtomicU32, AtomicU64};

/// `"MEMTUBE1"` read as a native-endian `u64` on a little-endian machine.
pub const MAGIC: u64 = u64::from_le_bytes(*b"MEMTUBE1");
/// Layout version. Changes on every change of the layout or the protocol.
pub const VERSION: u32 = 3;

/// Required alignment of a region (and of a separate consumer block).
pub const REGION_ALIGN: usize = 128;
/// Size of the control block at the start of a region.
pub const CONTROL_SIZE: usize = 640;
/// Offset of the data area from the start of the region.
pub const DATA_OFFSET: usize = CONTROL_SIZE;
/// Offset of the consumer block inside the region in the single-region layout.
pub const CONSUMER_BLOCK_OFFSET: usize = 384;
/// Size of the consumer block, also the minimum size of a separate consumer region.
pub const CONSUMER_BLOCK_SIZE: usize = 256;

/// Size of a record header in the data area; payloads follow it.
pub const RECORD_HEADER: u32 = 8;
/// Records start at multiples of this, so payloads are aligned to it too.
pub const RECORD_ALIGN: u32 = 8;

/// Smallest data-area capacity in bytes.
pub const MIN_CAPACITY: u32 = 64;
/// Largest data-area capacity in bytes.
pub const MAX_CAPACITY: u32 = 1 << 31;

/// Header flag: the ring runs in pure-spin mode (nobody sleeps, nobody wakes).
pub const FLAG_PURE_SPIN: u32 = 1 << 0;
/// Header flag: the consumer block lives in a separate region.
pub const FLAG_SPLIT: u32 = 1 << 1;
pub(crate) const KNOWN_FLAGS: u32 = FLAG_PURE_SPIN | FLAG_SPLIT;

/// Role state word: nobody has claimed the role.
pub const STATE_FREE: u32 = 0;
/// Role state word: a handle holds the role.
pub const STATE_ATTACHED: u32 = 1;
/// Role state word: the handle was dropped; the role cannot be claimed again.
pub const STATE_CLOSED: u32 = 2;

/// Commit-word bit: the record is committed.
pub const COMMITTED: u32 = 1 << 0;
/// Commit-word bit: the record is padding, up to the end of the data area
/// or (from inside a cache line) up to the end of that line.
pub const PADDING: u32 = 1 << 1;
/// The cache line size of the wire format: data areas are aligned to it and
/// line padding runs to a multiple of it.
pub const CACHE_LINE: u32 = 64;
/// The payload length is stored in the commit word shifted left by this.
pub const LEN_SHIFT: u32 = 2;

/// Whether `capacity` is a valid data-area size.
pub const fn capacity_is_valid(capacity: u32) -> bool {
    capacity.is_power_of_two() && capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY
}

/// Bytes a region needs for a ring whose data area holds `capacity` bytes, or
/// `None` if `capacity` is not a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
///
/// The same size serves the split layout (the consumer block then lives in a
/// separate region of [`CONSUMER_BLOCK_SIZE`] bytes and these 256 bytes of the
/// main region stay unused).
///
/// ```
/// const N: usize = memtube_ring::region_size(4096).unwrap();
/// assert_eq!(N, 640 + 4096);
/// assert_eq!(memtube_ring::region_size(1000), None);
/// ```
pub const fn region_size(capacity: u32) -> Option<usize> {
    if capacity_is_valid(capacity) {
        Some(DATA_OFFSET + capacity as usize)
    } else {
        None
    }
}

/// The largest payload a ring of `capacity` bytes accepts:
/// half the capacity minus one record header.
///
/// A record never straddles the end of the data area, so a record that does
/// not fit in the tail is preceded by a padding record; half the capacity is
/// the most that is always placeable whatever the write position.
///
/// ```
/// assert_eq!(memtube_ring::max_payload(4096), 2040);
/// ```
pub const fn max_payload(capacity: u32) -> u32 {
    capacity / 2 - RECORD_HEADER
}

/// Bytes a record with `len` payload bytes occupies in the data area.
#[inline(always)]
pub(crate) const fn record_size(len: u32) -> u32 {
    debug_assert!(len < (1 << 30));
    RECORD_HEADER + ((len + (RECORD_ALIGN - 1)) & !(RECORD_ALIGN - 1))
}

/// The read-mostly first line: written once by `init`, then only read.
#[repr(C, align(128))]
pub(crate) struct HeaderLine {
    /// [`MAGIC`]; stored last by `init` (Release) so a reader that sees it sees the rest.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// `FLAG_*` bits.
    pub flags: AtomicU32,
    /// Data-area size in bytes, a power of two.
    pub capacity: AtomicU32,
    /// Largest payload, always `max_payload(capacity)`.
    pub max_payload: AtomicU32,
    /// Always [`DATA_OFFSET`].
    pub data_offset: AtomicU32,
    /// [`CONSUMER_BLOCK_OFFSET`], or 0 when the consumer block is separate.
    pub consumer_offset: AtomicU32,
}

/// Producer counters: written by the producer only, read by monitors.
#[repr(C, align(128))]
pub(crate) struct ProducerHot {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub full: AtomicU64,
    pub wakes: AtomicU64,
}

/// [`WaitLine::wflags`]: this side wakes its peer without a fence of its
/// own (a *light* waker); a peer about to sleep must make every thread of
/// this side's process run a memory barrier (Linux `membarrier`) between its
/// sleep announcement and its re-check, or sleep in short slices.
pub(crate) const WAKE_LIGHT: u32 = 1;

/// One side's rarely written line: its role state, its sleep announcement
/// and the word the *other* side futex-waits on.
#[repr(C, align(128))]
pub(crate) struct WaitLine {
    /// `STATE_*`; claimed with a compare-exchange at attach (never on the hot path).
    pub state: AtomicU32,
    /// 0 while awake; otherwise the episode number of the sleep this side announced.
    pub sleeping: AtomicU32,
    /// Wait word of the peer: set to the peer's announced episode when waking it.
    pub seq: AtomicU32,
    /// How this side's holder wakes the peer ([`WAKE_LIGHT`]), written when
    /// it takes the role.
    pub wflags: AtomicU32,
    /// Who holds the role (a [`Holder`](crate::Holder)), 0 if not recorded.
    /// Written at attach and at take-over, never on the hot path.
    pub holder: AtomicU64,
}

/// The consumer's frequently written line.
#[repr(C, align(128))]
pub(crate) struct ConsumerHot {
    /// Byte position (wrapping `u32`) up to which the consumer has released space.
    pub released: AtomicU32,
    pub _reserved: AtomicU32,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub wakes: AtomicU64,
}

#[repr(C)]
pub(crate) struct ProducerBlock {
    pub hot: ProducerHot,
    pub wait: WaitLine,
}

#[repr(C)]
pub(crate) struct ConsumerBlock {
    pub hot: ConsumerHot,
    pub wait: WaitLine,
}

#[repr(C)]
pub(crate) struct ControlBlock {
    pub header: HeaderLine,
    pub producer: ProducerBlock,
    pub consumer: ConsumerBlock,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ControlBlock>() == CONTROL_SIZE);
    assert!(align_of::<ControlBlock>() == REGION_ALIGN);
    assert!(size_of::<ConsumerBlock>() == CONSUMER_BLOCK_SIZE);
    assert!(offset_of!(ControlBlock, consumer) == CONSUMER_BLOCK_OFFSET);
    assert!(offset_of!(ControlBlock, producer) == 128);
    assert!(offset_of!(ProducerBlock, wait) == 128);
    assert!(offset_of!(ConsumerBlock, wait) == 128);
    assert!(offset_of!(HeaderLine, magic) == 0);
    assert!(offset_of!(HeaderLine, version) == 8);
    assert!(offset_of!(HeaderLine, flags) == 12);
    assert!(offset_of!(HeaderLine, capacity) == 16);
    assert!(offset_of!(HeaderLine, max_payload) == 20);
    assert!(offset_of!(HeaderLine, data_offset) == 24);
    assert!(offset_of!(HeaderLine, consumer_offset) == 28);
    assert!(offset_of!(ProducerHot, messages) == 0);
    assert!(offset_of!(ProducerHot, bytes) == 8);
    assert!(offset_of!(ProducerHot, full) == 16);
    assert!(offset_of!(ProducerHot, wakes) == 24);
    assert!(offset_of!(WaitLine, state) == 0);
    assert!(offset_of!(WaitLine, sleeping) == 4);
    assert!(offset_of!(WaitLine, seq) == 8);
    assert!(offset_of!(WaitLine, wflags) == 12);
    assert!(offset_of!(WaitLine, holder) == 16);
    assert!(offset_of!(ConsumerHot, released) == 0);
    assert!(offset_of!(ConsumerHot, messages) == 8);
    assert!(offset_of!(ConsumerHot, bytes) == 16);
    assert!(offset_of!(ConsumerHot, wakes) == 24);
    assert!(size_of::<AtomicU32>() == 4 && size_of::<AtomicU64>() == 8);
    assert!(align_of::<AtomicU64>() <= 8);
    assert!(max_payload(MIN_CAPACITY) >= 8);
    // The length field of a commit word (30 bits) holds any payload.
    assert!(max_payload(MAX_CAPACITY) < (1 << (32 - LEN_SHIFT)));
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
        assert_eq!(record_size(32), 40);
        assert!(
            record_size(32) <= 64,
            "a 32-byte message fits one cache line"
        );
    }

    #[test]
    fn capacities() {
        assert_eq!(region_size(63), None);
        assert_eq!(region_size(64), Some(704));
        assert_eq!(region_size(96), None);
        assert_eq!(region_size(1 << 31), Some(640 + (1usize << 31)));
        assert_eq!(region_size(0), None);
        assert_eq!(max_payload(64), 24);
        // The largest record fits even when the write position leaves the
        // largest tail that does not fit it: pad + record + next header <= capacity.
        for cap in [64u32, 128, 4096, 1 << 20] {
            let rec = record_size(max_payload(cap));
            assert!((rec - RECORD_HEADER) + rec + RECORD_HEADER <= cap);
        }
    }
}
