//! The crate's error type.

use core::fmt;

/// Everything that can go wrong, as values a caller can act on.
///
/// `Full`, `Empty` and `Timeout` are transient: retry later. `Closed` means
/// the peer dropped its handle cleanly (for a consumer: after every message it
/// committed was delivered). `TooLarge` is a caller error that retrying cannot
/// fix. The attach errors say why a region was refused. `Corrupt` means an
/// invariant of the shared region was broken (a peer bug or a hostile peer):
/// the handle is poisoned and every later call returns the same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// No room for the message now; the consumer has not released enough space.
    Full,
    /// No message is available now.
    Empty,
    /// The message can never fit: `len` exceeds the ring's maximum payload
    /// `max` (or, from [`Message::copy_to`](crate::Message::copy_to), the
    /// destination's length `max`).
    TooLarge {
        /// Requested payload length.
        len: usize,
        /// The ring's maximum payload ([`crate::max_payload`]).
        max: u32,
    },
    /// A blocking call's timeout elapsed.
    Timeout,
    /// The peer closed its end (dropped its handle) and, for a consumer, every
    /// message committed before that was delivered.
    Closed,
    /// The region is shorter than the layout needs.
    RegionTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes supplied.
        len: usize,
    },
    /// The region (or the consumer block) is not aligned to [`crate::REGION_ALIGN`].
    Misaligned,
    /// The capacity is not a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    BadCapacity(u32),
    /// The region does not start with [`crate::MAGIC`]: not a memtube ring, or not initialized yet.
    BadMagic,
    /// The region was laid out by another layout version.
    VersionMismatch {
        /// Version found in the region.
        found: u32,
        /// Version this crate implements ([`crate::VERSION`]).
        expected: u32,
    },
    /// The header is inconsistent (derived fields, unknown flags), or the split
    /// layout was expected but not supplied (or the reverse).
    LayoutMismatch,
    /// The role (producer or consumer) is already held, or was held and closed.
    RoleTaken,
    /// A broken invariant was found in shared memory; the handle is poisoned.
    Corrupt(Corruption),
}

/// Which invariant of the shared region was found broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Corruption {
    /// A record header's commit word has no committed bit but is not zero.
    BadCommitWord,
    /// A padding record ends neither exactly at the end of the data area
    /// (from a nonzero offset) nor at the end of the cache line it starts
    /// inside, or follows a padding record it may not follow.
    BadPadding,
    /// A record's length exceeds the maximum payload or runs past the end of the data area.
    BadLength,
    /// A record extends beyond the space the producer may have written.
    RecordOverrun,
    /// The consumer's released position is behind its last value, ahead of
    /// the producer, or not 8-aligned (not a record boundary).
    BadReleasedPosition,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full => f.write_str("ring is full"),
            Error::Empty => f.write_str("ring is empty"),
            Error::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the maximum payload of {max} bytes"
                )
            }
            Error::Timeout => f.write_str("timed out"),
            Error::Closed => f.write_str("peer closed the ring"),
            Error::RegionTooSmall { needed, len } => {
                write!(
                    f,
                    "region of {len} bytes is smaller than the {needed} bytes needed"
                )
            }
            Error::Misaligned => write!(f, "region is not {}-byte aligned", crate::REGION_ALIGN),
            Error::BadCapacity(c) => write!(
                f,
                "capacity {c} is not a power of two in {}..={}",
                crate::MIN_CAPACITY,
                crate::MAX_CAPACITY
            ),
            Error::BadMagic => f.write_str("region does not hold an initialized memtube ring"),
            Error::VersionMismatch { found, expected } => {
                write!(f, "ring layout version {found}, expected {expected}")
            }
            Error::LayoutMismatch => {
                f.write_str("ring header is inconsistent with the expected layout")
            }
            Error::RoleTaken => f.write_str("role is already claimed"),
            Error::Corrupt(c) => write!(f, "shared ring is corrupt: {c}"),
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Corruption::BadCommitWord => "invalid record commit word",
            Corruption::BadPadding => "invalid padding record",
            Corruption::BadLength => "record length out of bounds",
            Corruption::RecordOverrun => "record extends past the producer's space",
            Corruption::BadReleasedPosition => "consumer released position out of range",
        })
    }
}

impl core::error::Error for Error {}
impl core::error::Error for Corruption {}
