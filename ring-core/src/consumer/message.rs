//! What a receive hands out: a [`Message`] held in place, or a [`Peek`].

use super::{Consumer, Rec};
use crate::wait::Wait;
use core::ops::Deref;

/// A received message, in place in the ring. Its space is released when it
/// is dropped. Derefs to the payload.
pub struct Message<'c, 'a, W: Wait> {
    pub(super) c: &'c mut Consumer<'a, W>,
    pub(super) r: Rec,
}

impl<W: Wait> Message<'_, '_, W> {
    /// The type id the producer committed with it.
    #[inline]
    pub fn type_id(&self) -> u32 {
        self.c.type_id(self.r)
    }

    /// The payload's length in bytes (checked by memtube when it received
    /// the message; reading it touches no shared memory).
    #[inline]
    pub fn len(&self) -> usize {
        self.r.len() as usize
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.r.len() == 0
    }

    /// The payload: 8-byte aligned, in shared memory. Its length is fixed
    /// (memtube checked it), but a hostile producer can still change the
    /// bytes while you read them: use [`copy_to`](Self::copy_to) for one
    /// private copy when you do not trust the producer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.c.payload(self.r)
    }

    /// Copy the payload into the start of `dst` and return its length: for a
    /// consumer that does not trust its producer. The bytes in `dst` cannot
    /// change afterwards, whatever the peer does.
    ///
    /// [`payload`](Self::payload) is a `&[u8]` over shared memory that a
    /// hostile producer can still write while you read it (isolation
    /// stops it writing *your* pages, not its own): two reads of the same
    /// byte may differ, so a value checked then used may have changed in
    /// between. `copy_to` reads each byte exactly once (volatile loads,
    /// 8 bytes at a time, from a raw pointer: no reference to the shared
    /// bytes is formed), so you check and use one private copy. A peer
    /// writing during the copy can only make the copy a mix of its old and
    /// new bytes.
    ///
    /// [`Error::TooLarge`](crate::Error::TooLarge) (`max`: `dst`'s length) if `dst` is shorter
    /// than the payload: nothing is copied and the message stays held.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(4096).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(4096), SpinWait::std()).unwrap();
    /// tx.try_send(b"untrusted bytes", 1).unwrap();
    /// let m = rx.try_recv().unwrap();
    /// let mut mine = [0u8; 64];
    /// assert!(matches!(m.copy_to(&mut mine[..4]), Err(Error::TooLarge { len: 15, max: 4 })));
    /// let n = m.copy_to(&mut mine).unwrap();
    /// drop(m);
    /// assert_eq!(&mine[..n], b"untrusted bytes");
    /// ```
    // Not exercised under loom: the loom model's data area is byte-aligned,
    // and the 8-byte volatile reads below need the real region's alignment.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<usize, crate::Error> {
        let len = self.r.len() as usize;
        let Some(dst) = dst.get_mut(..len) else {
            return Err(crate::Error::TooLarge {
                len,
                max: u32::try_from(dst.len()).unwrap_or(u32::MAX),
            });
        };
        let src = self.c.payload_ptr(self.r);
        let words = len / 8;
        for i in 0..words {
            // SAFETY: `src` is the record's payload, `len` bytes in the data
            // area (validated by `poll`), 8-byte aligned (records are); word
            // `i < len / 8` is inside it. A volatile read of memory another
            // process may write reads each byte once, whatever it holds.
            let w = unsafe { core::ptr::read_volatile(src.add(8 * i).cast::<u64>()) };
            dst[8 * i..8 * i + 8].copy_from_slice(&w.to_ne_bytes());
        }
        for (i, d) in dst.iter_mut().enumerate().skip(8 * words) {
            // SAFETY: `i < len`: inside the payload, as above.
            *d = unsafe { core::ptr::read_volatile(src.add(i)) };
        }
        Ok(len)
    }

    /// Release the message's space now (the same as dropping it).
    #[inline]
    pub fn release(self) {}

    /// Leave the message in the ring, not released: the next
    /// [`peek`](Consumer::peek) or receive returns it again, its bytes still
    /// in place. For a binding that hands a view of the message out across
    /// calls (a pointer to C, a buffer to Python) and releases it later by
    /// receiving it again and dropping that.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(4096).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(4096), SpinWait::std()).unwrap();
    /// tx.try_send(b"kept", 1).unwrap();
    /// let m = rx.try_recv().unwrap();
    /// let view = m.payload().as_ptr();
    /// m.keep();
    /// let again = rx.try_recv().unwrap();
    /// assert_eq!((again.payload().as_ptr(), &*again), (view, &b"kept"[..]));
    /// drop(again); // released now
    /// assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    /// ```
    #[inline]
    pub fn keep(self) {
        // The consumer still holds the record as `ready` (only `consume`,
        // in `Drop`, clears it), so its next poll returns it without
        // reading shared memory again; skipping `Drop` is all it takes.
        core::mem::forget(self);
    }
}

impl<W: Wait> Deref for Message<'_, '_, W> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.payload()
    }
}

impl<W: Wait> Drop for Message<'_, '_, W> {
    #[inline]
    fn drop(&mut self) {
        let r = self.r;
        self.c.consume(r);
    }
}

impl<W: Wait> core::fmt::Debug for Message<'_, '_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("type_id", &self.type_id())
            .field("len", &self.r.len())
            .finish()
    }
}

/// A message looked at with [`Consumer::peek`]: not consumed.
#[derive(Debug, Clone, Copy)]
pub struct Peek<'c> {
    pub(super) type_id: u32,
    pub(super) payload: &'c [u8],
}

impl<'c> Peek<'c> {
    /// The type id.
    pub fn type_id(&self) -> u32 {
        self.type_id
    }
    /// The payload, in place.
    pub fn payload(&self) -> &'c [u8] {
        self.payload
    }
}
