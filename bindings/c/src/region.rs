//! Bring your own region: a ring in memory the caller mapped.

use crate::error::{status, value, Result};
use crate::handles::{memtube_receiver, memtube_sender, RxKind, TxKind};
use crate::util::not_null_mut;
use mt::ring::{
    attach_consumer_as, attach_producer_as, init, is_gone, take_over_consumer, take_over_producer,
    this_process, Config, NativeWait, RawRegion,
};
use std::ffi::c_void;
use std::ptr;

/// The bytes a ring of `capacity` data-area bytes needs (the 640-byte
/// control block plus the data area); 0 when the capacity is not a power
/// of two from 64 to 2^31.
///
/// Threads: any thread.
#[no_mangle]
pub extern "C" fn memtube_ring_region_size(capacity: u32) -> usize {
    value(0, || Ok(mt::ring::region_size(capacity).unwrap_or(0)))
}

fn raw(region: *mut c_void, len: usize) -> Result<RawRegion> {
    if region.is_null() {
        return Err(crate::error::invalid("region is NULL"));
    }
    Ok(RawRegion::new(region.cast(), len))
}

/// Lay a new, empty ring of `capacity` data-area bytes over `len` bytes at
/// `region` (128-byte aligned, at least `memtube_ring_region_size(capacity)`
/// bytes: BAD_REGION otherwise), in the default spin-then-sleep mode. Once,
/// in one process, before any attach.
/// Threads: any thread; the returned handle is Send, not Sync.
///
/// # Safety
/// `region` is NULL or valid for reads and writes of `len` bytes, and no
/// one (in any process) uses the ring in it during the call.
#[no_mangle]
pub unsafe extern "C" fn memtube_ring_init(region: *mut c_void, len: usize, capacity: u32) -> i32 {
    status(|| {
        let r = raw(region, len)?;
        // SAFETY: the caller's contract: valid, and not in use elsewhere.
        unsafe { init(r, Config::new(capacity))? };
        Ok(())
    })
}

/// How a region handle gets its role.
#[derive(Clone, Copy)]
enum Claim {
    /// A free role only.
    Attach,
    /// A free role, or one whose holder process is gone.
    TakeOver,
}

/// Claim the producer role of the ring at `region` for this process and
/// box the handle into `*out`.
///
/// # Safety
/// As for `memtube_ring_attach_producer`.
unsafe fn producer(
    region: *mut c_void,
    len: usize,
    out: *mut *mut memtube_sender,
    how: Claim,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        let r = raw(region, len)?;
        let (w, me) = (NativeWait::default(), this_process());
        // SAFETY: the caller's contract: valid until the handle is freed,
        // which is the `'static` lifetime's real extent (the handle never
        // outlives `memtube_sender_free`); `is_gone` says gone only of a
        // process that exited or whose pid names another process now.
        let p = unsafe {
            match how {
                Claim::Attach => attach_producer_as::<'static, NativeWait>(r, w, me)?,
                Claim::TakeOver => take_over_producer::<'static, NativeWait>(r, w, me, is_gone)?,
            }
        };
        *out = Box::into_raw(Box::new(memtube_sender {
            kind: TxKind::Ring(p),
            grant: None,
        }));
        Ok(())
    })
}

/// As `producer`, for the consumer role.
///
/// # Safety
/// As for `memtube_ring_attach_consumer`.
unsafe fn consumer(
    region: *mut c_void,
    len: usize,
    out: *mut *mut memtube_receiver,
    how: Claim,
) -> i32 {
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        let r = raw(region, len)?;
        let (w, me) = (NativeWait::default(), this_process());
        // SAFETY: as in `producer`.
        let c = unsafe {
            match how {
                Claim::Attach => attach_consumer_as::<'static, NativeWait>(r, w, me)?,
                Claim::TakeOver => take_over_consumer::<'static, NativeWait>(r, w, me, is_gone)?,
            }
        };
        *out = Box::into_raw(Box::new(memtube_receiver {
            kind: RxKind::Ring(c),
            held: false,
        }));
        Ok(())
    })
}

/// Attach to an initialized ring as its producer (one per ring:
/// ROLE_TAKEN after; BAD_REGION when the region does not hold a valid
/// ring). `*out` gets an OWNED sender (`memtube_sender_free`; NULL on
/// failure) for every sending function above; waiting uses a process-shared
/// futex. The region must stay mapped until the handle is freed.
///
/// The role records this process (its pid and start time), so that the
/// consumer can learn that it died (`memtube_receiver_peer_state` with
/// `probe`: GONE) and a restarted producer can take the role over
/// (`memtube_ring_take_over_producer`).
/// Threads: any thread; the returned handle is Send, not Sync.
///
/// # Safety
/// `region` is NULL or valid for reads and writes of `len` bytes until the
/// handle is freed; in this process it is touched only through memtube
/// handles meanwhile; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn memtube_ring_attach_producer(
    region: *mut c_void,
    len: usize,
    out: *mut *mut memtube_sender,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { producer(region, len, out, Claim::Attach) }
}

/// Attach to an initialized ring as its consumer: as
/// `memtube_ring_attach_producer`, giving an OWNED receiver
/// (`memtube_receiver_free`) for every receiving function above.
/// Threads: any thread; the returned handle is Send, not Sync.
///
/// # Safety
/// As for `memtube_ring_attach_producer`.
#[no_mangle]
pub unsafe extern "C" fn memtube_ring_attach_consumer(
    region: *mut c_void,
    len: usize,
    out: *mut *mut memtube_receiver,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { consumer(region, len, out, Claim::Attach) }
}

/// Become the producer of a ring whose producer role is free, or whose
/// holder process has exited (a process that attached with
/// `memtube_ring_attach_producer` and died without freeing its handle).
/// Every message the dead producer published is still delivered, once, in
/// order; what it had not published (an open grant, staged messages) is
/// dropped, never delivered torn. ROLE_TAKEN: the holder still runs (or
/// attached without recording itself); CLOSED: the producer freed its
/// handle, the stream ended (initialize a new ring once the consumer is
/// done); CORRUPT: the published records do not walk. Otherwise as
/// `memtube_ring_attach_producer`. Both processes must be in the same pid
/// namespace.
/// Threads: any thread; the returned handle is Send, not Sync.
///
/// # Safety
/// As for `memtube_ring_attach_producer`.
#[no_mangle]
pub unsafe extern "C" fn memtube_ring_take_over_producer(
    region: *mut c_void,
    len: usize,
    out: *mut *mut memtube_sender,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { producer(region, len, out, Claim::TakeOver) }
}

/// Become the consumer of a ring whose consumer role is free, or whose
/// holder process has exited: as `memtube_ring_take_over_producer`.
/// Delivery resumes at the position the dead consumer last released, so
/// the messages it had received but not released are delivered again
/// (at least once). CORRUPT: that position is not a record boundary.
/// Threads: any thread; the returned handle is Send, not Sync.
///
/// # Safety
/// As for `memtube_ring_attach_producer`.
#[no_mangle]
pub unsafe extern "C" fn memtube_ring_take_over_consumer(
    region: *mut c_void,
    len: usize,
    out: *mut *mut memtube_receiver,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { consumer(region, len, out, Claim::TakeOver) }
}
