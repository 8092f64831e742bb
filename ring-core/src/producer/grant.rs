//! [`Grant`]: a reservation the caller fills in place and commits.

use super::{Plan, Producer};
use crate::copy::copy_in;
use crate::layout::*;
use crate::wait::Wait;
use core::ops::{Deref, DerefMut};

impl<'a, W: Wait> Producer<'a, W> {
    pub(super) fn grant(&mut self, plan: Plan) -> Grant<'_, 'a, W> {
        let cleared = self.open(plan);
        Grant {
            p: self,
            plan,
            cleared,
        }
    }
}

/// A reservation of contiguous payload bytes in the ring.
///
/// Derefs to the reserved `&mut [u8]`. Nothing is visible to the consumer
/// until [`commit`](Grant::commit); dropping the grant commits nothing.
#[must_use = "dropping a grant commits nothing"]
pub struct Grant<'p, 'a, W: Wait> {
    p: &'p mut Producer<'a, W>,
    plan: Plan,
    /// The producer's `zeroed` before this grant handed out its payload.
    cleared: u32,
}

impl<W: Wait> Grant<'_, '_, W> {
    /// Copy `src` into the grant from byte `at`: with non-temporal stores
    /// when `src` is at least [`Producer::set_nontemporal_threshold`] long
    /// (x86-64), then a store fence, so a later commit publishes it whole.
    /// The copying sends' stream rule does not apply (a grant is how calls
    /// and replies are written, one at a time); the distance rule's verdict
    /// does, through the threshold it moves. For a message put
    /// together from a header and a large body that already exists
    /// elsewhere.
    ///
    /// # Panics
    /// If `at + src.len()` exceeds the reserved length.
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(1 << 16).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1 << 16), SpinWait::std()).unwrap();
    /// let body = vec![9u8; 20_000]; // above the default threshold, 16 KiB
    /// let mut g = tx.try_reserve(8 + body.len()).unwrap();
    /// g[..8].copy_from_slice(&42u64.to_le_bytes());
    /// g.copy_from(8, &body);
    /// g.commit(8 + body.len(), 1);
    /// assert_eq!(&rx.try_recv().unwrap().payload()[8..], &body[..]);
    /// ```
    #[inline]
    pub fn copy_from(&mut self, at: usize, src: &[u8]) {
        let nontemporal = src.len() >= self.p.nontemporal_from as usize;
        let dst = &mut self[at..at + src.len()];
        // SAFETY: `dst` is `src.len()` bytes of the grant, valid for writes
        // (the grant borrows the producer mutably); `src` is a shared borrow,
        // so it cannot alias the grant's unique one.
        unsafe { copy_in(dst.as_mut_ptr(), src, nontemporal) };
    }

    /// Commit the first `used` bytes as one message of type `type_id` and
    /// publish it (with any staged messages before it).
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    #[inline(always)]
    pub fn commit(self, used: usize, type_id: u32) {
        assert!(
            used <= self.plan.len as usize,
            "commit of more bytes than reserved"
        );
        self.p
            .commit_record(self.plan, self.cleared, used as u32, type_id, true);
        self.p.publish();
    }

    /// Commit like [`commit`](Grant::commit) but do not publish yet: the
    /// message becomes visible at the producer's next
    /// [`publish`](Producer::publish) or publishing commit, together with the
    /// others staged, for one Release store and one wake check per batch.
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    #[inline(always)]
    pub fn commit_staged(self, used: usize, type_id: u32) {
        assert!(
            used <= self.plan.len as usize,
            "commit of more bytes than reserved"
        );
        self.p
            .commit_record(self.plan, self.cleared, used as u32, type_id, false);
        self.p.clear_ahead();
    }
}

impl<W: Wait> Deref for Grant<'_, '_, W> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let ptr = self
            .p
            .sh
            .data
            .bytes(self.plan.off + RECORD_HEADER, self.plan.len);
        // SAFETY: `plan` placed `8 + len` bytes at `off` inside the data area and
        // inside free space (`room_for(need)`), which only the producer touches
        // until it publishes; the grant borrows the producer mutably.
        unsafe { core::slice::from_raw_parts(ptr, self.plan.len as usize) }
    }
}

impl<W: Wait> DerefMut for Grant<'_, '_, W> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let ptr = self
            .p
            .sh
            .data
            .bytes(self.plan.off + RECORD_HEADER, self.plan.len);
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(ptr, self.plan.len as usize) }
    }
}

/// A reservation without its borrow of the producer, for a binding that
/// keeps a reservation across calls into it (a C caller holding a pointer
/// between `reserve` and `commit`). Made by [`Grant::detach`]; finished by
/// [`Producer::commit_detached`], or dropped to commit nothing.
#[must_use = "dropping a detached grant commits nothing"]
pub struct DetachedGrant {
    plan: Plan,
    cleared: u32,
    ptr: *mut u8,
}

// SAFETY: a plain description of a reservation (offsets and a pointer into
// the ring); writing through `ptr` is the holder's business, under the same
// rules as the producer's role, which is `Send`.
unsafe impl Send for DetachedGrant {}

impl core::fmt::Debug for DetachedGrant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DetachedGrant")
            .field("len", &self.plan.len)
            .finish_non_exhaustive()
    }
}

impl DetachedGrant {
    /// The reserved payload: 8-byte aligned, writable until the grant is
    /// committed or dropped.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The number of bytes reserved.
    pub fn len(&self) -> usize {
        self.plan.len as usize
    }

    /// Whether zero bytes were reserved.
    pub fn is_empty(&self) -> bool {
        self.plan.len == 0
    }
}

impl<W: Wait> Grant<'_, '_, W> {
    /// Give up the borrow of the producer and keep the reservation as a
    /// [`DetachedGrant`] (see [`Producer::commit_detached`] for the rule).
    ///
    /// ```
    /// # use memtube_ring::*;
    /// # let mut buf = RegionBuf::<{ region_size(4096).unwrap() }>::new();
    /// # let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(4096), SpinWait::std()).unwrap();
    /// let g = tx.try_reserve(8).unwrap().detach();
    /// // SAFETY: `g` is 8 writable bytes, the producer is not used meanwhile.
    /// unsafe { g.as_mut_ptr().copy_from(7u64.to_le_bytes().as_ptr(), 8) };
    /// // SAFETY: `g` comes from `tx`, which did nothing else since.
    /// unsafe { tx.commit_detached(g, 8, 3) };
    /// assert_eq!(rx.try_recv().unwrap().payload(), &7u64.to_le_bytes());
    /// ```
    pub fn detach(mut self) -> DetachedGrant {
        let ptr = self.as_mut_ptr();
        DetachedGrant {
            plan: self.plan,
            cleared: self.cleared,
            ptr,
        }
    }
}

impl<W: Wait> Producer<'_, W> {
    /// Commit the first `used` bytes of a [`DetachedGrant`] as one message of
    /// type `type_id` and publish it, as [`Grant::commit`] does.
    ///
    /// # Panics
    /// If `used` exceeds the reserved length.
    ///
    /// # Safety
    /// `g` was detached from a grant of this producer, and since then no
    /// `&mut self` method of this producer was called (a reservation, send,
    /// commit or publish, but also `wait_for_room`, which publishes staged
    /// messages and may clear ahead over the reserved bytes, and the
    /// setters). `&self` methods (`capacity`, `stats`, ...) are fine.
    pub unsafe fn commit_detached(&mut self, g: DetachedGrant, used: usize, type_id: u32) {
        assert!(
            used <= g.plan.len as usize,
            "commit of more bytes than reserved"
        );
        self.commit_record(g.plan, g.cleared, used as u32, type_id, true);
        self.publish();
    }
}
