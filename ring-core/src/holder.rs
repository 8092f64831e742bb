//! Who holds each role, and taking a role over from a holder that is gone.
//!
//! A ring in memory two processes mapped themselves has nobody watching its
//! ends: when the producer's process dies mid-stream, the consumer waits
//! forever and a restarted producer gets [`Error::RoleTaken`], because the
//! role is still marked attached. Recording a [`Holder`] at attach
//! ([`attach_producer_as`], [`attach_consumer_as`]) fixes both: the other
//! side reads it ([`Consumer::producer_holder`], [`Producer::consumer_holder`],
//! [`Stats`](crate::Stats)) and can ask whether that process still exists,
//! and a successor takes the role over ([`take_over_producer`],
//! [`take_over_consumer`]) once the caller's test says the holder is gone.
//!
//! What a take-over keeps:
//!
//! - **Producer**: every message the old producer published is still
//!   delivered, in order, once. The new producer finds the write position
//!   by walking the published records from the consumer's released position
//!   to the first empty header (validating each, as the consumer does).
//!   What the old one had not published (an open grant, staged messages not
//!   yet published) is lost, never delivered torn: publication is one
//!   Release store of the first unpublished record's header.
//! - **Consumer**: delivery resumes from the released position the old
//!   consumer last stored. Messages it received but had not released yet
//!   (the consumer releases lazily: see
//!   [`Consumer::set_release_threshold`]) are delivered again, so a consumer
//!   take-over gives at-least-once delivery; a consumer that must not see a
//!   message twice sets the release threshold to 1 or deduplicates by a
//!   sequence number of its own.
//!
//! The one thing the ring cannot check is the caller's test: if it calls a
//! live holder gone, two handles write the same role and the consumer sees
//! corruption. A process identity that cannot be reused (memtube's
//! `ring::this_process()` records the process id with its start time) and a
//! test that reads it exactly are what make a take-over safe.

use crate::layout::WaitLine;
use crate::sync::Ordering::Acquire;
use core::num::NonZeroU64;
#[cfg(not(loom))]
use {
    crate::error::Error,
    crate::layout::{STATE_ATTACHED, STATE_CLOSED, STATE_FREE},
    crate::ring::{claim, open, RawRegion},
    crate::sync::Ordering::{AcqRel, Relaxed, Release},
    crate::wait::Wait,
    crate::{Consumer, Producer},
};

/// Who holds a role of a ring: a nonzero number the attaching code chooses,
/// recorded in the region (the wait line's `holder` word) so that the other
/// side and a successor can tell whether the holder still exists.
///
/// ring-core gives the number no meaning. A platform layer gives it one: on
/// Linux and macOS, memtube's `ring::this_process()` packs the process id
/// with its start time, so a number never names a later process that reuses
/// the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Holder(NonZeroU64);

impl Holder {
    /// A holder with this number; `None` for 0 (which the region uses for
    /// "not recorded").
    ///
    /// ```
    /// use memtube_ring::Holder;
    /// assert_eq!(Holder::new(0), None);
    /// assert_eq!(Holder::new(42).unwrap().get(), 42);
    /// ```
    pub const fn new(id: u64) -> Option<Holder> {
        match NonZeroU64::new(id) {
            Some(n) => Some(Holder(n)),
            None => None,
        }
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// The holder a wait line records, if any.
    pub(crate) fn read(line: &WaitLine) -> Option<Holder> {
        // SYNC POINT: Acquire; pairs with the Release store (or AcqRel
        // exchange) that recorded it, after the role was claimed.
        Holder::new(line.holder.load(Acquire))
    }
}

/// Claim a free role, or take it from a holder that `is_gone`; returns with
/// the role ours and `holder` recorded. `Ok(Some(old))`: it was taken over
/// from `old`.
#[cfg(not(loom))]
fn claim_or_take(
    line: &WaitLine,
    holder: Holder,
    is_gone: impl FnOnce(Holder) -> bool,
) -> Result<Option<Holder>, Error> {
    match line.state.load(Acquire) {
        STATE_FREE => {
            if claim(&line.state).is_ok() {
                // SYNC POINT: Release; pairs with the Acquire in `Holder::read`.
                line.holder.store(holder.get(), Release);
                return Ok(None);
            }
            // Lost the claim to another attacher: it holds the role now, and
            // a holder that just attached is not gone.
            Err(Error::RoleTaken)
        }
        STATE_ATTACHED => {
            // Not recorded (attached without a holder, or between a claim
            // and its record): nothing to ask about.
            let old = Holder::read(line).ok_or(Error::RoleTaken)?;
            if !is_gone(old) {
                return Err(Error::RoleTaken);
            }
            // One successor wins: a compare-exchange on the holder word.
            // SYNC POINT: AcqRel; Release publishes our record (paired with
            // `Holder::read`); Acquire pairs with the record's store, which
            // the old holder made at attach. The old holder's later writes
            // (its counters, `seq`, `released`) are ordered before ours by its
            // death, which `is_gone` observed through the system (a process
            // that exited has no stores left in flight), not by this
            // exchange.
            line.holder
                .compare_exchange(old.get(), holder.get(), AcqRel, Acquire)
                .map(|_| Some(old))
                .map_err(|_| Error::RoleTaken)
        }
        STATE_CLOSED => Err(Error::Closed),
        _ => Err(Error::RoleTaken),
    }
}

/// A take-over that failed after winning the holder word (the region is
/// corrupt) records the dead holder again, so the role does not look held
/// by a live process that has no handle for it.
#[cfg(not(loom))]
fn give_back(line: &WaitLine, ours: Holder, old: Holder) {
    let _ = line
        .holder
        .compare_exchange(ours.get(), old.get(), Release, Relaxed);
}

#[cfg(not(loom))]
/// [`attach_producer`](crate::attach_producer), recording `holder` as the
/// producer role's holder.
///
/// # Safety
///
/// As for [`attach_producer`](crate::attach_producer).
pub unsafe fn attach_producer_as<'a, W: Wait>(
    region: RawRegion,
    wait: W,
    holder: Holder,
) -> Result<Producer<'a, W>, Error> {
    // SAFETY: forwarded contract.
    let (_, sh) = unsafe { open(region)? };
    claim(&sh.prod.wait.state)?;
    // SYNC POINT: Release; pairs with the Acquire in `Holder::read`.
    sh.prod.wait.holder.store(holder.get(), Release);
    Ok(Producer::new(sh, wait))
}

#[cfg(not(loom))]
/// [`attach_consumer`](crate::attach_consumer), recording `holder` as the
/// consumer role's holder.
///
/// # Safety
///
/// As for [`attach_consumer`](crate::attach_consumer).
pub unsafe fn attach_consumer_as<'a, W: Wait>(
    region: RawRegion,
    wait: W,
    holder: Holder,
) -> Result<Consumer<'a, W>, Error> {
    // SAFETY: forwarded contract.
    let (_, sh) = unsafe { open(region)? };
    claim(&sh.cons.wait.state)?;
    // SYNC POINT: Release; pairs with the Acquire in `Holder::read`.
    sh.cons.wait.holder.store(holder.get(), Release);
    Ok(Consumer::new(sh, wait))
}

#[cfg(not(loom))]
/// Become the producer of a ring whose producer role is free, or whose
/// holder `is_gone`, recording `holder`.
///
/// A free role is claimed as [`attach_producer_as`] claims it. A role held
/// by a recorded holder is taken over when `is_gone(old)` says that holder
/// can never run again (module docs: what is delivered). Errors:
/// [`Error::RoleTaken`] (the holder is not gone, or was never recorded, or
/// another successor won), [`Error::Closed`] (the producer closed cleanly:
/// the stream ended; lay a new ring with [`init`](crate::init) once the
/// consumer is done with it), [`Error::Corrupt`] (the published records do
/// not walk; the role is left as it was), and the attach errors.
///
/// ```
/// use memtube_ring::*;
/// let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
/// let raw = RawRegion::new(buf.as_mut_slice().as_mut_ptr(), region_size(1024).unwrap());
/// let (a, b) = (Holder::new(1).unwrap(), Holder::new(2).unwrap());
/// // SAFETY: `buf` outlives the handles and is used only through them.
/// unsafe {
///     init(raw, Config::new(1024)).unwrap();
///     let mut rx = attach_consumer(raw, SpinWait::std()).unwrap();
///     let mut tx = attach_producer_as(raw, SpinWait::std(), a).unwrap();
///     tx.try_send(b"one", 1).unwrap();
///     core::mem::forget(tx); // the producer's process "dies"
///     assert_eq!(rx.producer_holder(), Some(a));
///     // A live holder keeps its role; a gone one is replaced.
///     assert_eq!(take_over_producer(raw, SpinWait::std(), b, |_| false).err(), Some(Error::RoleTaken));
///     let mut tx = take_over_producer(raw, SpinWait::std(), b, |h| h == a).unwrap();
///     tx.try_send(b"two", 2).unwrap();
///     assert_eq!(rx.try_recv().unwrap().payload(), b"one");
///     assert_eq!(rx.try_recv().unwrap().payload(), b"two");
///     assert_eq!(rx.producer_holder(), Some(b));
/// }
/// ```
///
/// # Safety
///
/// As for [`attach_producer`](crate::attach_producer); and `is_gone` must
/// answer `true` only for a holder that will never touch the region again.
pub unsafe fn take_over_producer<'a, W: Wait>(
    region: RawRegion,
    wait: W,
    holder: Holder,
    is_gone: impl FnOnce(Holder) -> bool,
) -> Result<Producer<'a, W>, Error> {
    // SAFETY: forwarded contract.
    let (_, sh) = unsafe { open(region)? };
    let line = &sh.prod.wait;
    match claim_or_take(line, holder, is_gone)? {
        Some(old) => Producer::resume(sh, wait).inspect_err(|_| give_back(line, holder, old)),
        None => Ok(Producer::new(sh, wait)),
    }
}

#[cfg(not(loom))]
/// Become the consumer of a ring whose consumer role is free, or whose
/// holder `is_gone`, recording `holder`.
///
/// As [`take_over_producer`], for the consumer: delivery resumes at the
/// released position the old consumer last stored, so messages it had
/// received but not released are delivered again (at-least-once; module
/// docs). [`Error::Closed`]: the consumer closed cleanly.
/// [`Error::Corrupt`]: the stored released position is not a record
/// boundary.
///
/// # Safety
///
/// As for [`attach_consumer`](crate::attach_consumer); and `is_gone` must
/// answer `true` only for a holder that will never touch the region again.
pub unsafe fn take_over_consumer<'a, W: Wait>(
    region: RawRegion,
    wait: W,
    holder: Holder,
    is_gone: impl FnOnce(Holder) -> bool,
) -> Result<Consumer<'a, W>, Error> {
    // SAFETY: forwarded contract.
    let (_, sh) = unsafe { open(region)? };
    let line = &sh.cons.wait;
    match claim_or_take(line, holder, is_gone)? {
        Some(old) => Consumer::resume(sh, wait).inspect_err(|_| give_back(line, holder, old)),
        None => Ok(Consumer::new(sh, wait)),
    }
}
