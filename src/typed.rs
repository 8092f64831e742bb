//! Typed messages: `#[repr(C)]` plain-old-data values (and slices of them)
//! sent and read in place, without `unsafe` in user code, through
//! [`bytemuck`]'s [`Pod`] trait; and reservations with a stated alignment.
//!
//! - [`TypedSend`] (on a ring [`Producer`], a [`channel`](crate::ring::channel)'s
//!   producer, and a process `Sender`): [`send_value`](TypedSend::send_value),
//!   [`send_slice`](TypedSend::send_slice), and
//!   [`reserve_aligned`](TypedSend::reserve_aligned) for a grant whose bytes
//!   start at a 16-, 32-, 64- or 128-byte boundary.
//! - [`TypedPayload`] (on every payload: `&[u8]`, so on a received message
//!   through `Deref`): [`value`](TypedPayload::value),
//!   [`slice`](TypedPayload::slice) and [`aligned`](TypedPayload::aligned),
//!   checked for size and alignment.
//!
//! ```
//! use memtube::typed::{Pod, TypedPayload, TypedSend, Zeroable};
//!
//! #[derive(Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Tick { price: f64, qty: u32, side: u32 }
//! // SAFETY: `Tick` is `repr(C)`, has no padding and every bit pattern is valid.
//! unsafe impl Zeroable for Tick {}
//! // SAFETY: as above; `bytemuck`'s derive macros check this for you.
//! unsafe impl Pod for Tick {}
//!
//! let (mut tx, mut rx) = memtube::ring::channel(4096)?;
//! let tick = Tick { price: 101.25, qty: 7, side: 1 };
//! tx.send_value(&tick, 1)?;
//! tx.send_slice(&[1.0f32, 2.0, 3.0], 2)?;
//! assert_eq!(*rx.recv()?.value::<Tick>()?, tick);
//! assert_eq!(rx.recv()?.slice::<f32>()?, &[1.0, 2.0, 3.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Placement
//!
//! Payloads start 8-byte aligned ([`RECORD_ALIGN`]),
//! so values aligned to 8 bytes or less are read in place at offset 0. A
//! value, slice or reservation aligned to `A` > 8 bytes is preceded by
//! `pad` filler bytes, `pad` being the distance from the payload's first
//! byte to the next multiple of `A` counted from the start of the data area.
//! Every mapping of a region starts at a multiple of
//! [`REGION_ALIGN`] (128) and the data area at
//! [`DATA_OFFSET`](crate::ring::DATA_OFFSET) (a multiple of 128), so for `A`
//! up to 128 the pad is the same whichever process computes it from the
//! payload's address. The pad is part of the payload (its length counts) and
//! its bytes are unspecified. `docs/PROTOCOL.md` states the same rule for
//! implementations in other languages.

use crate::ring::{Grant, Producer, Wait, RECORD_ALIGN, REGION_ALIGN};
use std::fmt;
use std::ops::{Deref, DerefMut};

pub use bytemuck::{Pod, Zeroable};

/// Why a payload could not be read as the requested type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CastError {
    /// The payload (after its alignment pad) is not `size_of::<T>()` bytes
    /// (for [`TypedPayload::slice`]: not a whole number of `T`s): the sender
    /// sent another type. Check the message's type id.
    Size {
        /// Bytes the type needs (a multiple of this, for a slice).
        expected: usize,
        /// Bytes the payload holds after its pad.
        found: usize,
    },
    /// The payload is shorter than its alignment pad.
    TooShortForAlignment {
        /// The pad the alignment asks for.
        pad: usize,
        /// The payload's length.
        len: usize,
    },
    /// The requested alignment is not a power of two of at most
    /// [`REGION_ALIGN`] (128) bytes.
    BadAlignment(usize),
}

impl fmt::Display for CastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CastError::Size { expected, found } => write!(
                f,
                "payload of {found} bytes does not hold the requested type \
                 ({expected} bytes per value): check the message's type id"
            ),
            CastError::TooShortForAlignment { pad, len } => write!(
                f,
                "payload of {len} bytes is shorter than its {pad}-byte alignment pad"
            ),
            CastError::BadAlignment(a) => write!(
                f,
                "alignment {a} is not a power of two of at most {REGION_ALIGN} bytes"
            ),
        }
    }
}

impl std::error::Error for CastError {}

fn check_align(align: usize) -> Result<(), CastError> {
    if align.is_power_of_two() && align <= REGION_ALIGN {
        Ok(())
    } else {
        Err(CastError::BadAlignment(align))
    }
}

/// Bytes from `addr` to the next multiple of `align` (a power of two).
fn pad_for(addr: usize, align: usize) -> usize {
    addr.wrapping_neg() & (align - 1)
}

/// Extra bytes to reserve so that `len` bytes fit at an `align` boundary
/// whatever the (8-aligned) payload address.
fn slack(align: usize) -> usize {
    align.saturating_sub(RECORD_ALIGN as usize)
}

/// Reading a payload as typed values in place. Implemented for `[u8]`, so
/// it applies to a received message through `Deref`.
pub trait TypedPayload {
    /// The payload after the pad of alignment `align` (see the
    /// [module docs](self)): what [`TypedSend::reserve_aligned`] wrote.
    fn aligned(&self, align: usize) -> Result<&[u8], CastError>;

    /// The payload as one `T`, in place; its size must be exactly
    /// `size_of::<T>()` after the alignment pad of `T`.
    fn value<T: Pod>(&self) -> Result<&T, CastError>;

    /// The payload as a slice of `T`, in place (possibly empty).
    fn slice<T: Pod>(&self) -> Result<&[T], CastError>;
}

impl TypedPayload for [u8] {
    fn aligned(&self, align: usize) -> Result<&[u8], CastError> {
        check_align(align)?;
        let pad = pad_for(self.as_ptr() as usize, align);
        self.get(pad..).ok_or(CastError::TooShortForAlignment {
            pad,
            len: self.len(),
        })
    }

    fn value<T: Pod>(&self) -> Result<&T, CastError> {
        let bytes = self.aligned(align_of::<T>().max(1))?;
        if bytes.len() != size_of::<T>() {
            return Err(CastError::Size {
                expected: size_of::<T>(),
                found: bytes.len(),
            });
        }
        // Size and alignment were checked, so this cannot fail.
        bytemuck::try_from_bytes(bytes).map_err(|_| CastError::Size {
            expected: size_of::<T>(),
            found: bytes.len(),
        })
    }

    fn slice<T: Pod>(&self) -> Result<&[T], CastError> {
        let bytes = self.aligned(align_of::<T>().max(1))?;
        let size = size_of::<T>();
        if size == 0 || bytes.len() % size != 0 {
            return Err(CastError::Size {
                expected: size,
                found: bytes.len(),
            });
        }
        bytemuck::try_cast_slice(bytes).map_err(|_| CastError::Size {
            expected: size,
            found: bytes.len(),
        })
    }
}

/// A reservation whose bytes start at a stated alignment; see
/// [`TypedSend::reserve_aligned`]. Dereferences to exactly the requested
/// length; dropping it commits nothing.
#[must_use = "a reservation is published only by `commit`"]
pub struct AlignedGrant<'p, 'a, W: Wait> {
    grant: Grant<'p, 'a, W>,
    pad: usize,
    len: usize,
}

impl<W: Wait> AlignedGrant<'_, '_, W> {
    /// Wrap `grant` (reserved with [`slack`] extra bytes) at `align`.
    fn new<'p, 'a>(grant: Grant<'p, 'a, W>, len: usize, align: usize) -> AlignedGrant<'p, 'a, W> {
        let pad = pad_for(grant.as_ptr() as usize, align);
        debug_assert!(pad + len <= grant.len());
        AlignedGrant { grant, pad, len }
    }

    /// Publish the first `used` aligned bytes (after the pad) as one message
    /// of type `type_id`.
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    pub fn commit(self, used: usize, type_id: u32) {
        assert!(used <= self.len, "commit of more bytes than reserved");
        self.grant.commit(self.pad + used, type_id);
    }
}

impl<W: Wait> Deref for AlignedGrant<'_, '_, W> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.grant[self.pad..self.pad + self.len]
    }
}

impl<W: Wait> DerefMut for AlignedGrant<'_, '_, W> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.grant[self.pad..self.pad + self.len]
    }
}

/// Sending typed values and aligned reservations; see the [module docs](self).
///
/// Implemented for ring producers (`'a` is their region's lifetime) and
/// process senders; the blocking calls block as their `send` / `reserve` do.
pub trait TypedSend<'a> {
    /// The error of the underlying handle.
    type Error;
    /// The wait of the underlying ring.
    type Wait: Wait;

    /// Reserve `len` bytes starting at a multiple of `align`, blocking while
    /// the ring is full. The ring must have room for `len + align - 8` bytes
    /// (the worst-case pad).
    ///
    /// # Panics
    /// If `align` is not a power of two of at most 128 (a bug in the caller,
    /// like an invalid `std::alloc::Layout`).
    fn reserve_aligned(
        &mut self,
        len: usize,
        align: usize,
    ) -> Result<AlignedGrant<'_, 'a, Self::Wait>, Self::Error>;

    /// [`reserve_aligned`](Self::reserve_aligned) without blocking (`Full`).
    ///
    /// # Panics
    /// As for [`reserve_aligned`](Self::reserve_aligned).
    fn try_reserve_aligned(
        &mut self,
        len: usize,
        align: usize,
    ) -> Result<AlignedGrant<'_, 'a, Self::Wait>, Self::Error>;

    /// Send one value in place (copied once, into the ring), blocking while
    /// the ring is full.
    fn send_value<T: Pod>(&mut self, value: &T, type_id: u32) -> Result<(), Self::Error> {
        self.send_slice(core::slice::from_ref(value), type_id)
    }

    /// Send a slice of values as one message, blocking while the ring is full.
    fn send_slice<T: Pod>(&mut self, values: &[T], type_id: u32) -> Result<(), Self::Error> {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        let mut g = self.reserve_aligned(bytes.len(), align_of::<T>().max(1))?;
        g.copy_from_slice(bytes);
        g.commit(bytes.len(), type_id);
        Ok(())
    }

    /// [`send_value`](Self::send_value) without blocking (`Full`).
    fn try_send_value<T: Pod>(&mut self, value: &T, type_id: u32) -> Result<(), Self::Error> {
        let bytes = bytemuck::bytes_of(value);
        let mut g = self.try_reserve_aligned(bytes.len(), align_of::<T>().max(1))?;
        g.copy_from_slice(bytes);
        g.commit(bytes.len(), type_id);
        Ok(())
    }
}

/// The extra bytes to reserve for `align`; panics on a bad alignment.
fn reserve_len(len: usize, align: usize) -> usize {
    if let Err(e) = check_align(align) {
        panic!("{e}");
    }
    len.saturating_add(slack(align))
}

/// `TypedSend` over a handle's own `reserve` / `try_reserve`.
macro_rules! typed_send {
    ([$($gen:tt)*] $a:lifetime, $ty:ty, $err:ty, $w:ty) => {
        impl<$($gen)*> TypedSend<$a> for $ty {
            type Error = $err;
            type Wait = $w;

            fn reserve_aligned(
                &mut self,
                len: usize,
                align: usize,
            ) -> Result<AlignedGrant<'_, $a, $w>, Self::Error> {
                let g = self.reserve(reserve_len(len, align))?;
                Ok(AlignedGrant::new(g, len, align))
            }

            fn try_reserve_aligned(
                &mut self,
                len: usize,
                align: usize,
            ) -> Result<AlignedGrant<'_, $a, $w>, Self::Error> {
                let g = self.try_reserve(reserve_len(len, align))?;
                Ok(AlignedGrant::new(g, len, align))
            }
        }
    };
}

typed_send!(['a, W: Wait] 'a, Producer<'a, W>, crate::ring::Error, W);

#[cfg(any(target_os = "linux", target_os = "macos"))]
typed_send!([] 'static, crate::Sender, crate::Error, crate::ConnWait);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::channel;

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C, align(64))]
    struct Line {
        words: [u64; 8],
    }
    // SAFETY: repr(C), 64 bytes of u64s: no padding, every bit pattern valid.
    unsafe impl Zeroable for Line {}
    // SAFETY: as above.
    unsafe impl Pod for Line {}

    #[test]
    fn values_round_trip_at_every_alignment() {
        let (mut tx, mut rx) = channel(4096).unwrap();
        for i in 0..200u64 {
            // Shift the ring position by a varying odd message so pads vary.
            tx.send(&[0; 3][..(i % 3) as usize], 9).unwrap();
            drop(rx.recv().unwrap());
            let line = Line { words: [i; 8] };
            tx.send_value(&line, 1).unwrap();
            tx.send_value(&(i as u16), 2).unwrap();
            tx.send_slice(&[i as u32, 1, 2], 3).unwrap();
            let m = rx.recv().unwrap();
            assert_eq!(m.value::<Line>().unwrap(), &line);
            assert_eq!(m.aligned(64).unwrap().as_ptr() as usize % 64, 0);
            drop(m);
            assert_eq!(*rx.recv().unwrap().value::<u16>().unwrap(), i as u16);
            assert_eq!(
                rx.recv().unwrap().slice::<u32>().unwrap(),
                &[i as u32, 1, 2]
            );
        }
    }

    #[test]
    fn aligned_reservations_start_on_the_boundary() {
        let (mut tx, mut rx) = channel(4096).unwrap();
        for align in [1, 8, 16, 32, 64, 128] {
            for skew in 0..4usize {
                tx.send(&[0; 24][..skew * 8], 0).unwrap();
                drop(rx.recv().unwrap());
                let mut g = tx.reserve_aligned(100, align).unwrap();
                assert_eq!(g.as_ptr() as usize % align, 0, "align {align}");
                assert_eq!(g.len(), 100);
                g.fill(0xA5);
                g.commit(40, 7);
                let m = rx.recv().unwrap();
                let body = m.aligned(align).unwrap();
                assert_eq!(body, &[0xA5; 40][..], "align {align} skew {skew}");
            }
        }
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        let (mut tx, mut rx) = channel(1024).unwrap();
        tx.send(&[1, 2, 3], 0).unwrap();
        let m = rx.recv().unwrap();
        assert_eq!(
            m.value::<u32>(),
            Err(CastError::Size {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            m.slice::<u16>(),
            Err(CastError::Size {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(m.aligned(3), Err(CastError::BadAlignment(3)));
        assert_eq!(m.aligned(256), Err(CastError::BadAlignment(256)));
        drop(m);
        let bad = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = tx.reserve_aligned(8, 256);
        }));
        assert!(bad.is_err(), "a bad alignment is a caller bug: it panics");
        tx.send(&[], 0).unwrap();
        assert_eq!(rx.recv().unwrap().slice::<u64>().unwrap(), &[] as &[u64]);
        assert!(CastError::BadAlignment(3)
            .to_string()
            .contains("power of two"));
    }
}
