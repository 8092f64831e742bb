//! Bring your own region: a ring in memory the caller mapped.

use crate::error::{status, value, Result};
use crate::handles::{memtube_receiver, memtube_sender, RxKind, TxKind};
use crate::util::not_null_mut;
use mt::ring::{attach_consumer, attach_producer, init, Config, NativeWait, RawRegion};
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

/// Attach to an initialized ring as its producer (one per ring:
/// ROLE_TAKEN after; BAD_REGION when the region does not hold a valid
/// ring). `*out` gets an OWNED sender (`memtube_sender_free`; NULL on
/// failure) for every sending function above; waiting uses a process-shared
/// futex. The region must stay mapped until the handle is freed.
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
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        let r = raw(region, len)?;
        // SAFETY: the caller's contract: valid until the handle is freed,
        // which is the `'static` lifetime's real extent (the handle never
        // outlives `memtube_sender_free`).
        let p = unsafe { attach_producer::<'static, NativeWait>(r, NativeWait::default())? };
        *out = Box::into_raw(Box::new(memtube_sender {
            kind: TxKind::Ring(p),
            grant: None,
        }));
        Ok(())
    })
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
    status(|| {
        // SAFETY: the caller's contract.
        let out = unsafe { not_null_mut(out, "out is NULL")? };
        *out = ptr::null_mut();
        let r = raw(region, len)?;
        // SAFETY: as in `memtube_ring_attach_producer`.
        let c = unsafe { attach_consumer::<'static, NativeWait>(r, NativeWait::default())? };
        *out = Box::into_raw(Box::new(memtube_receiver {
            kind: RxKind::Ring(c),
            held: false,
        }));
        Ok(())
    })
}
