//! The page both processes map: the command mailbox, the floor lines, the
//! futex words of the kernel baselines and the two ring-floor areas.
//!
//! It is a memfd created by the main process before it starts the peer, which
//! inherits the descriptor (no close-on-exec) and maps it too.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::MemfdFlags;
use rustix::mm::{MapFlags, ProtFlags};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::BoxError;

/// Bytes of the shared memfd.
pub const SIZE: usize = 512 * 1024;

// The mailbox: one command at a time, written by the main process.
/// `u32` futex word: the number of the last command posted.
pub const CMD_SEQ: usize = 0;
/// `u32` futex word: the number of the last command the peer finished.
pub const DONE_SEQ: usize = 128;
/// `u64`: the system code of the command.
pub const CMD_SYS: usize = 256;
/// `u64`: the payload length.
pub const CMD_LEN: usize = 264;
/// `u64`: how many messages or round trips.
pub const CMD_COUNT: usize = 272;
/// `u64`: the run number (names services, seeds random intervals).
pub const CMD_RUN: usize = 280;
/// `u64`: nonzero once the peer failed to pin itself.
pub const PEER_PIN_FAILED: usize = 384;
/// `u64`: the peer's status of its last command: 0 ok, 1 failed.
pub const PEER_FAILED: usize = 400;
/// `u64` each: readiness handshakes of the setups that need one (run number).
#[cfg_attr(not(any(feature = "iceoryx2", feature = "tachyon")), allow(dead_code))]
pub const MAIN_READY: usize = 1024;
/// See [`MAIN_READY`] (iceoryx2's only: Tachyon's connect waits for its listener).
#[cfg_attr(not(feature = "iceoryx2"), allow(dead_code))]
pub const PEER_READY: usize = 1152;

// The floor lines, each in a 128-byte block of its own.
/// The line of the level probe before and after each run.
pub const PROBE_LINE: usize = 4096;
/// The one-line floor.
pub const ONE_LINE: usize = 4096 + 128;
/// The two-line floor: the ping line (the pong line is 128 bytes further).
pub const TWO_PING: usize = 4096 + 256;
/// The two-line floor's pong line.
pub const TWO_PONG: usize = 4096 + 384;
/// Raw futex ping-pong: `u32` ping word.
pub const FUTEX_PING: usize = 4096 + 512;
/// Raw futex ping-pong: `u32` pong word.
pub const FUTEX_PONG: usize = 4096 + 640;
/// Futex wake-up: `u32` sequence word.
pub const WAKE_WORD: usize = 4096 + 768;
/// Futex wake-up: `u64` send time (CLOCK_MONOTONIC ns).
pub const WAKE_TIME: usize = 4096 + 896;
/// The 64 KiB ring-floor area (1024 lines of 64 bytes).
pub const RING64: usize = 64 * 1024;
/// The 1 KiB ring-floor area (16 lines).
pub const RING1K: usize = 192 * 1024;

/// ring-core's raw region for the ping ring (16 KiB data area), between processes.
pub const RAW_PING: usize = 256 * 1024;
/// The same for the pong ring.
pub const RAW_PONG: usize = 320 * 1024;
/// Bytes of each raw region (control block and 16 KiB data area).
pub const RAW_LEN: usize = 64 * 1024;

/// The two-area ring floor, mapped read-write by both processes: the main
/// process writes area A (its pings), the peer area B (its pongs).
pub const SPLIT_A: usize = 384 * 1024;
/// See [`SPLIT_A`].
pub const SPLIT_B: usize = 448 * 1024;
/// Bytes of each ring-floor area of 1024 lines.
pub const AREA: usize = 64 * 1024;
/// The read-only variant's areas lie past `SIZE`, outside the read-write
/// mapping: each process maps the area it writes read-write and the area it
/// reads read-only, and has no other mapping of them (as a memtube consumer
/// with isolation on). Area A (written by the main process) at `SIZE`, B at
/// `SIZE + AREA`.
pub const TRANSFER: usize = SIZE + 2 * AREA;
/// Bytes of the transfer floor's area: the largest of its variants.
pub const TRANSFER_LEN: usize = 4 * 1024 * 1024;
/// Bytes of the memfd: the transfer floor's area lies past the read-only
/// variant's, in a read-write mapping of its own.
pub const TOTAL: usize = TRANSFER + TRANSFER_LEN;
/// Transfer floor: `u64` count of blocks the writer (peer) published.
pub const TRANSFER_PUBLISHED: usize = 4096 + 1024;
/// Transfer floor: `u64` count of blocks the reader (main) released.
pub const TRANSFER_RELEASED: usize = 4096 + 1152;

/// The mappings of the shared memfd, never unmapped (they live as long as
/// the process): `SIZE` bytes read-write, plus this process's two
/// read-only-variant areas (its own read-write, the peer's read-only).
pub struct Shm {
    base: *mut u8,
    own: *mut u8,
    other: *const u8,
    transfer: *mut u8,
}

impl Shm {
    /// Create the memfd (inheritable) and map it.
    pub fn create() -> Result<(OwnedFd, Shm), BoxError> {
        let fd = rustix::fs::memfd_create("memtube-bench", MemfdFlags::empty())?;
        rustix::fs::ftruncate(&fd, TOTAL as u64)?;
        let shm = Shm::map(fd.as_fd(), true)?;
        Ok((fd, shm))
    }

    /// Map `fd`: `SIZE` bytes read-write; of the read-only variant's areas,
    /// the one this process writes (A for the main process, B for the peer)
    /// read-write and the other read-only.
    pub fn map(fd: rustix::fd::BorrowedFd<'_>, main: bool) -> Result<Shm, BoxError> {
        let map = |len: usize, off: usize, prot| {
            // SAFETY: a fresh mapping at an address the kernel picks (no
            // MAP_FIXED) aliases nothing in this process; it is never unmapped.
            unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    MapFlags::SHARED | MapFlags::POPULATE,
                    fd,
                    off as u64,
                )
            }
        };
        let rw = ProtFlags::READ | ProtFlags::WRITE;
        let base = map(SIZE, 0, rw)?;
        let (own_off, other_off) = if main {
            (SIZE, SIZE + AREA)
        } else {
            (SIZE + AREA, SIZE)
        };
        let own = map(AREA, own_off, rw)?;
        let other = map(AREA, other_off, ProtFlags::READ)?;
        let transfer = map(TRANSFER_LEN, TRANSFER, rw)?;
        Ok(Shm {
            base: base.cast(),
            own: own.cast(),
            other: other.cast_const().cast(),
            transfer: transfer.cast(),
        })
    }

    /// The `AtomicU64` at byte offset `off` of the read-only variant's area
    /// this process writes (read-write).
    pub fn own_u64(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= AREA);
        // SAFETY: in bounds and aligned (checked above) of a mapping never
        // unmapped; both processes only access it atomically.
        unsafe { &*(self.own.add(off) as *const AtomicU64) }
    }

    /// The `AtomicU64` at byte offset `off` of the area the peer writes,
    /// through this process's only (read-only) mapping of it: load it only.
    pub fn other_u64(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= AREA);
        // SAFETY: as for `own_u64`; the mapping is readable, and callers
        // only load (a store would fault, not corrupt).
        unsafe { &*(self.other.add(off) as *const AtomicU64) }
    }

    /// The transfer floor's area: `TRANSFER_LEN` bytes, page-aligned,
    /// mapped read-write by both processes and never unmapped. Its bytes
    /// are plain memory: the floor's protocol gives each block to one
    /// process at a time.
    pub fn transfer(&self) -> *mut u8 {
        self.transfer
    }

    /// The raw region at byte offset `off` (`RAW_LEN` bytes, 128-aligned).
    pub fn raw(&self, off: usize) -> memtube::ring::RawRegion {
        assert!(off % 128 == 0 && off + RAW_LEN <= SIZE);
        // SAFETY: in bounds (checked above) of a mapping never unmapped.
        memtube::ring::RawRegion::new(unsafe { self.base.add(off) }, RAW_LEN)
    }

    /// The `AtomicU64` at byte offset `off`.
    pub fn u64(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= SIZE);
        // SAFETY: in bounds and 8-aligned (checked above) inside a mapping
        // that is never unmapped; both processes only access it atomically.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    /// The `AtomicU32` at byte offset `off`.
    pub fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= SIZE);
        // SAFETY: as for `u64`, 4-aligned.
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }
}
