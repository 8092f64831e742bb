//! The handshake wire format: pure data that a platform shim sends, with the
//! region descriptors, to the process that attaches to its rings.
//!
//! One side (in `platform-linux`: the listener) creates the shared regions,
//! lays the rings over them with [`init`](crate::init), and sends one
//! [`Handshake`] message next to the descriptors (file descriptors passed with
//! `SCM_RIGHTS`, or whatever the platform uses). The receiving side decodes it
//! with [`Handshake::decode`], which validates every field, then checks the
//! descriptors against it (count, sizes) and attaches.
//!
//! # Wire layout (handshake version 1)
//!
//! [`Handshake::LEN`] = 96 bytes, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic = `*b"MTUBEHS1"` ([`HANDSHAKE_MAGIC`]) |
//! | 8 | 4 | handshake version = 1 ([`HANDSHAKE_VERSION`]) |
//! | 12 | 4 | ring layout version = [`crate::VERSION`] |
//! | 16 | 4 | flags: bit 0 duplex, bit 1 split layout, bit 2 pure-spin, bit 3 huge pages, bit 4 wake channels; others 0 |
//! | 20 | 4 | ring count: 1, or 2 with the duplex flag |
//! | 24 | 4 | descriptor count: exactly the descriptors the rings name, plus two per ring with wake channels |
//! | 28 | 4 | reserved, 0 |
//! | 32 | 32 | ring 0 |
//! | 64 | 32 | ring 1 (all zero when the ring count is 1) |
//!
//! Each ring:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | capacity: data-area bytes (power of two, [`MIN_CAPACITY`](crate::MIN_CAPACITY)`..=`[`MAX_CAPACITY`](crate::MAX_CAPACITY)) |
//! | 4 | 4 | producer: 0 = the sender of the handshake, 1 = its receiver |
//! | 8 | 4 | index of the main region's descriptor |
//! | 12 | 4 | index of the consumer block's descriptor (split layout), else `u32::MAX` |
//! | 16 | 8 | main region length: [`crate::region_size`]`(capacity)`; with huge pages, that rounded up to a multiple of [`HUGE_PAGE_ALIGN`] |
//! | 24 | 8 | consumer block region length ([`CONSUMER_REGION_MIN`]`..=`[`CONSUMER_REGION_MAX`], a multiple of 4096), 0 without split |
//!
//! Descriptor indices count the descriptors in the order they travel; every
//! index is below the number of region descriptors, no two are equal, and
//! every region descriptor is named. With wake channels
//! ([`HS_WAKE_CHANNELS`]) two descriptors per ring follow the regions'
//! (docs/PROTOCOL.md 3.7). With two rings, one is produced by each side.
//!
//! ```
//! use memtube_ring::handshake::{Handshake, RingDesc, Side, HandshakeError};
//!
//! let cap = 4096;
//! let hs = Handshake::simplex(
//!     RingDesc::split(cap, Side::Sender, 0, 1).unwrap(),
//!     false,
//! );
//! let bytes: [u8; Handshake::LEN] = hs.encode();
//! assert_eq!(Handshake::decode(&bytes), Ok(hs));
//! assert_eq!(hs.fd_count, 2);
//! // Every field is checked: a truncated message is refused.
//! assert_eq!(Handshake::decode(&bytes[..40]), Err(HandshakeError::Length(40)));
//! ```

use crate::layout::{region_size, CONSUMER_BLOCK_SIZE, VERSION};
use core::fmt;

/// The first 8 bytes of every handshake message.
pub const HANDSHAKE_MAGIC: [u8; 8] = *b"MTUBEHS1";
/// The handshake format version this crate speaks.
pub const HANDSHAKE_VERSION: u32 = 1;
/// Flag: two rings, one produced by each side (request/reply).
pub const HS_DUPLEX: u32 = 1 << 0;
/// Flag: the rings use the split layout (consumer block in a region of its own).
pub const HS_SPLIT: u32 = 1 << 1;
/// Flag: the rings were initialized in pure-spin mode.
pub const HS_PURE_SPIN: u32 = 1 << 2;
/// Flag: the main regions are backed by huge pages (lengths rounded up).
pub const HS_HUGE_PAGES: u32 = 1 << 3;
/// Flag: two wake channels per ring travel after the region descriptors
/// (docs/PROTOCOL.md 3.7): for ring `i`, descriptor `R + 2i` is the
/// receiver's end of the ring's *consumer wake* channel or its *producer
/// wake* channel, whichever its role in that ring reads, and `R + 2i + 1` its
/// end of the other, where `R` is the number of region descriptors.
pub const HS_WAKE_CHANNELS: u32 = 1 << 4;
const KNOWN_FLAGS: u32 = HS_DUPLEX | HS_SPLIT | HS_PURE_SPIN | HS_HUGE_PAGES | HS_WAKE_CHANNELS;
/// Main regions backed by huge pages are a multiple of this many bytes long.
pub const HUGE_PAGE_ALIGN: u64 = 2 * 1024 * 1024;
/// Smallest consumer block region (one [`CONSUMER_BLOCK_SIZE`] block, page-rounded).
pub const CONSUMER_REGION_MIN: u64 = 4096;
/// Largest consumer block region accepted (one 64 KiB page).
pub const CONSUMER_REGION_MAX: u64 = 64 * 1024;
/// The consumer-descriptor index of a ring without the split layout.
pub const NO_FD: u32 = u32::MAX;
/// Most descriptors a handshake names (two rings, two regions and two wake
/// channels each).
pub const MAX_FDS: usize = 8;

const _: () = assert!(CONSUMER_BLOCK_SIZE as u64 <= CONSUMER_REGION_MIN);

/// Which side of the handshake produces (writes) a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Side {
    /// The process that created the regions and sent the handshake.
    Sender,
    /// The process that receives the handshake and attaches.
    Receiver,
}

/// One ring as the handshake describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RingDesc {
    /// Data-area bytes.
    pub capacity: u32,
    /// Which side writes the ring.
    pub producer: Side,
    /// Index of the main region's descriptor.
    pub main_fd: u32,
    /// Index of the consumer block's descriptor, or [`NO_FD`] without split.
    pub consumer_fd: u32,
    /// Length of the main region in bytes.
    pub main_len: u64,
    /// Length of the consumer block region in bytes (0 without split).
    pub consumer_len: u64,
}

impl RingDesc {
    /// A ring in the single-region layout, its region at descriptor `main_fd`
    /// of length [`region_size`]`(capacity)`. `None` if the capacity is invalid.
    pub const fn single(capacity: u32, producer: Side, main_fd: u32) -> Option<Self> {
        match region_size(capacity) {
            Some(len) => Some(RingDesc {
                capacity,
                producer,
                main_fd,
                consumer_fd: NO_FD,
                main_len: len as u64,
                consumer_len: 0,
            }),
            None => None,
        }
    }

    /// A ring in the split layout: main region at `main_fd`, consumer block
    /// region ([`CONSUMER_REGION_MIN`] bytes) at `consumer_fd`.
    pub const fn split(
        capacity: u32,
        producer: Side,
        main_fd: u32,
        consumer_fd: u32,
    ) -> Option<Self> {
        match Self::single(capacity, producer, main_fd) {
            Some(mut d) => {
                d.consumer_fd = consumer_fd;
                d.consumer_len = CONSUMER_REGION_MIN;
                Some(d)
            }
            None => None,
        }
    }
}

/// A decoded (or to-be-encoded) handshake. Build one with
/// [`Handshake::simplex`] / [`Handshake::duplex`]; [`Handshake::decode`]
/// returns only handshakes that pass [`Handshake::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handshake {
    /// Ring layout version of the regions ([`VERSION`]).
    pub layout_version: u32,
    /// `HS_*` flags.
    pub flags: u32,
    /// Number of rings: 1, or 2 with [`HS_DUPLEX`].
    pub ring_count: u32,
    /// Number of descriptors that travel with the message.
    pub fd_count: u32,
    /// The rings; `rings[1]` is all zero when `ring_count` is 1.
    pub rings: [RingDesc; 2],
}

const ZERO_RING: RingDesc = RingDesc {
    capacity: 0,
    producer: Side::Sender,
    main_fd: 0,
    consumer_fd: 0,
    main_len: 0,
    consumer_len: 0,
};

fn fds_of(r: &RingDesc) -> u32 {
    if r.consumer_fd == NO_FD {
        1
    } else {
        2
    }
}

fn split_flag(r: &RingDesc) -> u32 {
    if r.consumer_fd == NO_FD {
        0
    } else {
        HS_SPLIT
    }
}

/// Why a handshake message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HandshakeError {
    /// The message is not exactly [`Handshake::LEN`] bytes (its length).
    Length(usize),
    /// The magic is not [`HANDSHAKE_MAGIC`].
    BadMagic,
    /// Another handshake version (found).
    Version(u32),
    /// Another ring layout version (found).
    LayoutVersion(u32),
    /// Unknown flag bits (the unknown bits).
    UnknownFlags(u32),
    /// Ring count not 1 (simplex) or 2 (duplex).
    RingCount(u32),
    /// A ring's capacity is invalid (the capacity).
    Capacity(u32),
    /// A producer field is neither 0 nor 1, or a duplex pair has one producer twice.
    Producer,
    /// A region length does not match the capacity (or the consumer block rules).
    RegionLength,
    /// A descriptor index is out of range, repeated, or the count is not exactly the named ones.
    Descriptors,
    /// The split flag disagrees with the rings' consumer descriptors.
    Split,
    /// A reserved field or the unused ring is not zero.
    Reserved,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Length(n) => write!(
                f,
                "handshake message of {n} bytes, expected {}",
                Handshake::LEN
            ),
            HandshakeError::BadMagic => f.write_str("handshake magic mismatch: not a memtube peer"),
            HandshakeError::Version(v) => {
                write!(f, "handshake version {v}, expected {HANDSHAKE_VERSION}")
            }
            HandshakeError::LayoutVersion(v) => {
                write!(f, "ring layout version {v}, expected {VERSION}")
            }
            HandshakeError::UnknownFlags(b) => write!(f, "unknown handshake flags {b:#x}"),
            HandshakeError::RingCount(n) => write!(f, "bad ring count {n}"),
            HandshakeError::Capacity(c) => write!(f, "bad ring capacity {c}"),
            HandshakeError::Producer => f.write_str("bad producer side"),
            HandshakeError::RegionLength => f.write_str("region length does not match capacity"),
            HandshakeError::Descriptors => f.write_str("bad descriptor indices or count"),
            HandshakeError::Split => f.write_str("split flag disagrees with the rings"),
            HandshakeError::Reserved => f.write_str("reserved handshake field is not zero"),
        }
    }
}

impl core::error::Error for HandshakeError {}

fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

impl Handshake {
    /// Bytes of an encoded handshake.
    pub const LEN: usize = 96;

    /// One ring; descriptor count and split flag derived from it.
    pub const fn simplex(ring: RingDesc, pure_spin: bool) -> Self {
        let fd_count = if ring.consumer_fd == NO_FD { 1 } else { 2 };
        let mut flags = if ring.consumer_fd == NO_FD {
            0
        } else {
            HS_SPLIT
        };
        if pure_spin {
            flags |= HS_PURE_SPIN;
        }
        Handshake {
            layout_version: VERSION,
            flags,
            ring_count: 1,
            fd_count,
            rings: [ring, ZERO_RING],
        }
    }

    /// Two rings, one produced by each side ([`HS_DUPLEX`]).
    pub fn duplex(a: RingDesc, b: RingDesc, pure_spin: bool) -> Self {
        let mut flags = HS_DUPLEX | split_flag(&a);
        if pure_spin {
            flags |= HS_PURE_SPIN;
        }
        Handshake {
            layout_version: VERSION,
            flags,
            ring_count: 2,
            fd_count: fds_of(&a) + fds_of(&b),
            rings: [a, b],
        }
    }

    /// The rings in use (1 or 2; empty if `ring_count` is out of range).
    pub fn rings(&self) -> &[RingDesc] {
        match self.ring_count {
            1 => &self.rings[..1],
            2 => &self.rings[..],
            _ => &[],
        }
    }

    /// Whether the handshake has the duplex flag.
    pub fn is_duplex(&self) -> bool {
        self.flags & HS_DUPLEX != 0
    }

    /// Whether the handshake has the split-layout flag.
    pub fn is_split(&self) -> bool {
        self.flags & HS_SPLIT != 0
    }

    /// Whether the rings are in pure-spin mode.
    pub fn is_pure_spin(&self) -> bool {
        self.flags & HS_PURE_SPIN != 0
    }

    /// Whether the main regions are backed by huge pages.
    pub fn is_huge_pages(&self) -> bool {
        self.flags & HS_HUGE_PAGES != 0
    }

    /// Whether wake channels travel with the regions ([`HS_WAKE_CHANNELS`]).
    pub fn has_wake_channels(&self) -> bool {
        self.flags & HS_WAKE_CHANNELS != 0
    }

    /// The number of region descriptors: the wake channels' start
    /// ([`HS_WAKE_CHANNELS`]).
    pub fn region_fd_count(&self) -> u32 {
        self.rings().iter().map(fds_of).sum()
    }

    /// With [`HS_WAKE_CHANNELS`] on a handshake whose regions are described:
    /// add them (two descriptors per ring, after the regions).
    pub fn with_wake_channels(mut self) -> Self {
        self.flags |= HS_WAKE_CHANNELS;
        self.fd_count = self.region_fd_count() + 2 * self.ring_count;
        self
    }

    /// The wire bytes (see the module docs). Encodes the fields as they are,
    /// valid or not; [`decode`](Self::decode) on the other side validates.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..8].copy_from_slice(&HANDSHAKE_MAGIC);
        b[8..12].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.layout_version.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20..24].copy_from_slice(&self.ring_count.to_le_bytes());
        b[24..28].copy_from_slice(&self.fd_count.to_le_bytes());
        for (i, r) in self.rings.iter().enumerate() {
            let o = 32 + 32 * i;
            let side: u32 = match r.producer {
                Side::Sender => 0,
                Side::Receiver => 1,
            };
            b[o..o + 4].copy_from_slice(&r.capacity.to_le_bytes());
            b[o + 4..o + 8].copy_from_slice(&side.to_le_bytes());
            b[o + 8..o + 12].copy_from_slice(&r.main_fd.to_le_bytes());
            b[o + 12..o + 16].copy_from_slice(&r.consumer_fd.to_le_bytes());
            b[o + 16..o + 24].copy_from_slice(&r.main_len.to_le_bytes());
            b[o + 24..o + 32].copy_from_slice(&r.consumer_len.to_le_bytes());
        }
        b
    }

    /// Parse and [`validate`](Self::validate) a received message.
    pub fn decode(bytes: &[u8]) -> Result<Self, HandshakeError> {
        if bytes.len() != Self::LEN {
            return Err(HandshakeError::Length(bytes.len()));
        }
        if bytes[0..8] != HANDSHAKE_MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let v = get_u32(bytes, 8);
        if v != HANDSHAKE_VERSION {
            return Err(HandshakeError::Version(v));
        }
        if get_u32(bytes, 28) != 0 {
            return Err(HandshakeError::Reserved);
        }
        let mut rings = [ZERO_RING; 2];
        for (i, r) in rings.iter_mut().enumerate() {
            let o = 32 + 32 * i;
            r.capacity = get_u32(bytes, o);
            r.producer = match get_u32(bytes, o + 4) {
                0 => Side::Sender,
                1 => Side::Receiver,
                _ => return Err(HandshakeError::Producer),
            };
            r.main_fd = get_u32(bytes, o + 8);
            r.consumer_fd = get_u32(bytes, o + 12);
            r.main_len = get_u64(bytes, o + 16);
            r.consumer_len = get_u64(bytes, o + 24);
        }
        let hs = Handshake {
            layout_version: get_u32(bytes, 12),
            flags: get_u32(bytes, 16),
            ring_count: get_u32(bytes, 20),
            fd_count: get_u32(bytes, 24),
            rings,
        };
        hs.validate()?;
        Ok(hs)
    }

    /// Check every rule of the format (module docs) on these fields.
    pub fn validate(&self) -> Result<(), HandshakeError> {
        if self.layout_version != VERSION {
            return Err(HandshakeError::LayoutVersion(self.layout_version));
        }
        if self.flags & !KNOWN_FLAGS != 0 {
            return Err(HandshakeError::UnknownFlags(self.flags & !KNOWN_FLAGS));
        }
        let want_rings = if self.is_duplex() { 2 } else { 1 };
        if self.ring_count != want_rings {
            return Err(HandshakeError::RingCount(self.ring_count));
        }
        if self.ring_count == 1 && self.rings[1] != ZERO_RING {
            return Err(HandshakeError::Reserved);
        }
        let rings = self.rings();
        if rings.len() == 2 && rings[0].producer == rings[1].producer {
            return Err(HandshakeError::Producer);
        }
        // The wake channels take the indexes after the regions': a region
        // index must be below them.
        let channels = if self.has_wake_channels() {
            2 * self.ring_count
        } else {
            0
        };
        let region_end = self.fd_count.saturating_sub(channels);
        let mut seen = [false; MAX_FDS];
        let mut named = 0u32;
        let mut mark = |idx: u32| -> Result<(), HandshakeError> {
            if idx >= region_end || idx as usize >= MAX_FDS || seen[idx as usize] {
                return Err(HandshakeError::Descriptors);
            }
            seen[idx as usize] = true;
            named += 1;
            Ok(())
        };
        for r in rings {
            let Some(size) = region_size(r.capacity) else {
                return Err(HandshakeError::Capacity(r.capacity));
            };
            let size = size as u64;
            let len_ok = if self.is_huge_pages() {
                r.main_len >= size
                    && r.main_len % HUGE_PAGE_ALIGN == 0
                    && r.main_len - size < HUGE_PAGE_ALIGN
            } else {
                r.main_len == size
            };
            if !len_ok {
                return Err(HandshakeError::RegionLength);
            }
            mark(r.main_fd)?;
            if self.is_split() {
                if r.consumer_fd == NO_FD {
                    return Err(HandshakeError::Split);
                }
                if !(CONSUMER_REGION_MIN..=CONSUMER_REGION_MAX).contains(&r.consumer_len)
                    || r.consumer_len % 4096 != 0
                {
                    return Err(HandshakeError::RegionLength);
                }
                mark(r.consumer_fd)?;
            } else {
                if r.consumer_fd != NO_FD {
                    return Err(HandshakeError::Split);
                }
                if r.consumer_len != 0 {
                    return Err(HandshakeError::RegionLength);
                }
            }
        }
        if named.checked_add(channels) != Some(self.fd_count) || self.fd_count as usize > MAX_FDS {
            return Err(HandshakeError::Descriptors);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_ring(cap: u32, p: Side, a: u32, b: u32) -> RingDesc {
        RingDesc::split(cap, p, a, b).unwrap()
    }

    fn duplex() -> Handshake {
        Handshake::duplex(
            split_ring(4096, Side::Sender, 0, 1),
            split_ring(1 << 20, Side::Receiver, 2, 3),
            true,
        )
    }

    fn reencode(f: impl FnOnce(&mut [u8; Handshake::LEN])) -> Result<Handshake, HandshakeError> {
        let mut b = duplex().encode();
        f(&mut b);
        Handshake::decode(&b)
    }

    #[test]
    fn round_trips() {
        for hs in [
            duplex(),
            Handshake::simplex(RingDesc::single(64, Side::Receiver, 0).unwrap(), false),
            Handshake::simplex(split_ring(1 << 31, Side::Sender, 1, 0), true),
        ] {
            assert_eq!(Handshake::decode(&hs.encode()), Ok(hs));
        }
        let hs = duplex();
        assert!(hs.is_duplex() && hs.is_split() && hs.is_pure_spin() && !hs.is_huge_pages());
        assert_eq!(hs.fd_count, 4);
        assert_eq!(hs.rings().len(), 2);
    }

    #[test]
    fn byte_layout_is_as_documented() {
        let b = duplex().encode();
        assert_eq!(&b[0..8], b"MTUBEHS1");
        assert_eq!(get_u32(&b, 8), 1);
        assert_eq!(get_u32(&b, 12), VERSION);
        assert_eq!(get_u32(&b, 16), HS_DUPLEX | HS_SPLIT | HS_PURE_SPIN);
        assert_eq!(get_u32(&b, 20), 2);
        assert_eq!(get_u32(&b, 24), 4);
        assert_eq!(get_u32(&b, 64), 1 << 20);
        assert_eq!(get_u32(&b, 68), 1);
        assert_eq!(get_u32(&b, 72), 2);
        assert_eq!(get_u32(&b, 76), 3);
        assert_eq!(get_u64(&b, 80), 640 + (1 << 20));
        assert_eq!(get_u64(&b, 88), 4096);
    }

    #[test]
    fn refuses_bad_length_magic_versions() {
        let b = duplex().encode();
        assert_eq!(Handshake::decode(&b[..95]), Err(HandshakeError::Length(95)));
        assert_eq!(Handshake::decode(&[]), Err(HandshakeError::Length(0)));
        let mut long = [0u8; 97];
        long[..96].copy_from_slice(&b);
        assert_eq!(Handshake::decode(&long), Err(HandshakeError::Length(97)));
        assert_eq!(reencode(|b| b[0] ^= 1), Err(HandshakeError::BadMagic));
        assert_eq!(reencode(|b| b[8] = 2), Err(HandshakeError::Version(2)));
        assert_eq!(
            reencode(|b| b[12] = 9),
            Err(HandshakeError::LayoutVersion(9))
        );
        assert_eq!(reencode(|b| b[28] = 1), Err(HandshakeError::Reserved));
    }

    #[test]
    fn wake_channels_follow_the_regions() {
        let a = RingDesc::split(1024, Side::Sender, 0, 1).unwrap();
        let b = RingDesc::split(1024, Side::Receiver, 2, 3).unwrap();
        let hs = Handshake::duplex(a, b, false).with_wake_channels();
        assert_eq!((hs.fd_count, hs.region_fd_count()), (8, 4));
        assert_eq!(Handshake::decode(&hs.encode()), Ok(hs));
        let one = Handshake::simplex(RingDesc::single(64, Side::Sender, 0).unwrap(), false)
            .with_wake_channels();
        assert_eq!(one.fd_count, 3);
        assert_eq!(Handshake::decode(&one.encode()), Ok(one));
        // A region index among the channels' (and one region unnamed).
        let mut bad = hs;
        bad.rings[1].consumer_fd = 4;
        assert_eq!(
            Handshake::decode(&bad.encode()),
            Err(HandshakeError::Descriptors)
        );
        // One channel descriptor too few or too many.
        for n in [7, 9] {
            let mut bad = hs;
            bad.fd_count = n;
            assert_eq!(
                Handshake::decode(&bad.encode()),
                Err(HandshakeError::Descriptors)
            );
        }
        // The flag without its descriptors.
        let mut bad = hs;
        bad.fd_count = 4;
        assert_eq!(
            Handshake::decode(&bad.encode()),
            Err(HandshakeError::Descriptors)
        );
    }

    #[test]
    fn refuses_bad_flags_and_counts() {
        assert_eq!(
            reencode(|b| b[17] = 1),
            Err(HandshakeError::UnknownFlags(1 << 8))
        );
        // Duplex flag off but two rings.
        assert_eq!(reencode(|b| b[16] &= !1), Err(HandshakeError::RingCount(2)));
        assert_eq!(reencode(|b| b[20] = 3), Err(HandshakeError::RingCount(3)));
        // Split flag off but consumer descriptors named.
        assert_eq!(reencode(|b| b[16] &= !2), Err(HandshakeError::Split));
        // Too few / too many descriptors for the indices named.
        assert_eq!(reencode(|b| b[24] = 3), Err(HandshakeError::Descriptors));
        assert_eq!(reencode(|b| b[24] = 5), Err(HandshakeError::Descriptors));
        // Repeated and out-of-range indices.
        assert_eq!(reencode(|b| b[72] = 0), Err(HandshakeError::Descriptors));
        assert_eq!(reencode(|b| b[76] = 4), Err(HandshakeError::Descriptors));
        // Both rings produced by the same side; producer out of range.
        assert_eq!(reencode(|b| b[68] = 0), Err(HandshakeError::Producer));
        assert_eq!(reencode(|b| b[68] = 2), Err(HandshakeError::Producer));
        // Simplex with garbage in the unused ring.
        let mut s =
            Handshake::simplex(RingDesc::single(64, Side::Sender, 0).unwrap(), false).encode();
        s[64] = 1;
        assert_eq!(Handshake::decode(&s), Err(HandshakeError::Reserved));
    }

    #[test]
    fn refuses_bad_capacity_and_lengths() {
        assert_eq!(
            reencode(|b| b[32..36].copy_from_slice(&1000u32.to_le_bytes())),
            Err(HandshakeError::Capacity(1000))
        );
        assert_eq!(
            reencode(|b| b[32..36].copy_from_slice(&32u32.to_le_bytes())),
            Err(HandshakeError::Capacity(32))
        );
        // Capacity changed, length not.
        assert_eq!(
            reencode(|b| b[32..36].copy_from_slice(&8192u32.to_le_bytes())),
            Err(HandshakeError::RegionLength)
        );
        assert_eq!(reencode(|b| b[48] ^= 8), Err(HandshakeError::RegionLength));
        assert_eq!(
            reencode(|b| b[56..64].copy_from_slice(&100u64.to_le_bytes())),
            Err(HandshakeError::RegionLength)
        );
        assert_eq!(
            reencode(|b| b[56..64].copy_from_slice(&(1u64 << 20).to_le_bytes())),
            Err(HandshakeError::RegionLength)
        );
    }

    #[test]
    fn huge_pages_round_up() {
        let mut hs = Handshake::simplex(RingDesc::single(4096, Side::Sender, 0).unwrap(), false);
        hs.flags |= HS_HUGE_PAGES;
        assert_eq!(hs.validate(), Err(HandshakeError::RegionLength));
        hs.rings[0].main_len = HUGE_PAGE_ALIGN;
        assert_eq!(Handshake::decode(&hs.encode()), Ok(hs));
        hs.rings[0].main_len = 2 * HUGE_PAGE_ALIGN;
        assert_eq!(hs.validate(), Err(HandshakeError::RegionLength));
    }

    #[test]
    fn decode_never_panics_on_any_byte_flip() {
        let base = duplex().encode();
        for i in 0..Handshake::LEN {
            for bit in 0..8 {
                let mut b = base;
                b[i] ^= 1 << bit;
                if let Ok(hs) = Handshake::decode(&b) {
                    // Only flips that keep every rule may pass (pure-spin bit).
                    assert_eq!(hs.validate(), Ok(()));
                }
            }
        }
    }
}
