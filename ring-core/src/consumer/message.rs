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

    /// The payload: 8-byte aligned, in shared memory.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.c.payload(self.r)
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
