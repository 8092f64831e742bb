//! DLPack export of a [`Message`] (`__dlpack__`): a 1-D uint8 tensor on
//! kDLCPU over the message's bytes, without a copy.
//!
//! The structs are DLPack's C ABI (`dlpack.h`, v1.x): `DLManagedTensor` in
//! a capsule named "dltensor" (the legacy protocol) and, when the consumer
//! passes `max_version >= (1, 0)`, `DLManagedTensorVersioned` in one named
//! "dltensor_versioned", with the READ_ONLY flag. The protocol's rules
//! followed here: the consumer renames the capsule ("used_dltensor",
//! "used_dltensor_versioned") when it takes the tensor and then calls the
//! tensor's deleter when done; a capsule destroyed still under its first
//! name was never consumed, and its destructor calls the deleter itself.
//! The deleter may run on any thread: it takes the GIL.
//!
//! The manager context holds a strong reference to the message, which
//! counts the capsule as an exported buffer until the deleter runs, so the
//! message cannot be released under the tensor.

use crate::rx::Message;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_void, CStr};
use std::sync::atomic::Ordering::Relaxed;

/// `(kDLCPU, 0)`.
pub(crate) const CPU: (i32, i32) = (1, 0);

const NAME: &CStr = c"dltensor";
const NAME_VERSIONED: &CStr = c"dltensor_versioned";
/// `DLPACK_FLAG_BITMASK_READ_ONLY`.
const FLAG_READ_ONLY: u64 = 1;
/// `kDLUInt`.
const KDL_UINT: u8 = 1;

#[repr(C)]
struct DLDevice {
    device_type: i32,
    device_id: i32,
}

#[repr(C)]
struct DLDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

#[repr(C)]
struct DLTensor {
    data: *mut c_void,
    device: DLDevice,
    ndim: i32,
    dtype: DLDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct DLManagedTensor {
    dl_tensor: DLTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}

#[repr(C)]
struct DLPackVersion {
    major: u32,
    minor: u32,
}

#[repr(C)]
struct DLManagedTensorVersioned {
    version: DLPackVersion,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DLTensor,
}

/// One allocation per export: the managed tensor first (so a pointer to
/// it is a pointer to this), its shape and strides, and the message.
#[repr(C)]
struct Export<M> {
    managed: M,
    shape: [i64; 1],
    strides: [i64; 1],
    owner: Option<Py<Message>>,
}

/// The tensor over `m`'s bytes (shape and strides are set once boxed).
fn tensor(m: &Message) -> DLTensor {
    DLTensor {
        data: m.ptr().cast(),
        device: DLDevice {
            device_type: CPU.0,
            device_id: CPU.1,
        },
        ndim: 1,
        dtype: DLDataType {
            code: KDL_UINT,
            bits: 8,
            lanes: 1,
        },
        shape: std::ptr::null_mut(),
        strides: std::ptr::null_mut(),
        byte_offset: 0,
    }
}

/// Drop the export's reference to its message, with the GIL, uncounting
/// the export. Never unwinds (it runs inside `extern "C"` deleters).
fn drop_owner(owner: Option<Py<Message>>) {
    let Some(owner) = owner else { return };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Python::attach(|_py| {
            owner.get().st.exports.fetch_sub(1, Relaxed);
            drop(owner);
        })
    }));
    // A panic here (the interpreter is gone) leaks the message: nothing
    // better can be done from a C callback.
    let _ = r;
}

unsafe extern "C" fn delete_legacy(p: *mut DLManagedTensor) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is the first field of a `Box<Export<DLManagedTensor>>`
    // leaked by `export` (repr(C), so the same address), and DLPack calls
    // the deleter once.
    let b = unsafe { Box::from_raw(p.cast::<Export<DLManagedTensor>>()) };
    let Export { owner, .. } = *b;
    drop_owner(owner);
}

unsafe extern "C" fn delete_versioned(p: *mut DLManagedTensorVersioned) {
    if p.is_null() {
        return;
    }
    // SAFETY: as in `delete_legacy`, for the versioned struct.
    let b = unsafe { Box::from_raw(p.cast::<Export<DLManagedTensorVersioned>>()) };
    let Export { owner, .. } = *b;
    drop_owner(owner);
}

/// The capsule destructors: a capsule still under its first name was never
/// consumed, so the tensor is ours to delete. Called with the GIL held
/// (from the capsule's deallocation); a pending exception is preserved.
unsafe extern "C" fn capsule_legacy(capsule: *mut ffi::PyObject) {
    // SAFETY: `capsule` is the capsule being destroyed (alive during its
    // destructor); the name check makes the pointer ours, a
    // `DLManagedTensor` not yet handed to a consumer.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, NAME.as_ptr()) == 1 {
            let p = ffi::PyCapsule_GetPointer(capsule, NAME.as_ptr()).cast::<DLManagedTensor>();
            if !p.is_null() {
                with_saved_error(|| delete_legacy(p));
            }
        }
    }
}

unsafe extern "C" fn capsule_versioned(capsule: *mut ffi::PyObject) {
    // SAFETY: as in `capsule_legacy`.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, NAME_VERSIONED.as_ptr()) == 1 {
            let p = ffi::PyCapsule_GetPointer(capsule, NAME_VERSIONED.as_ptr())
                .cast::<DLManagedTensorVersioned>();
            if !p.is_null() {
                with_saved_error(|| delete_versioned(p));
            }
        }
    }
}

/// Run `f` with the thread's pending exception (if any) set aside.
///
/// # Safety
/// The GIL is held.
#[allow(deprecated)] // PyErr_Fetch/Restore: the limited API of 3.11 has nothing newer.
unsafe fn with_saved_error(f: impl FnOnce()) {
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: the GIL is held (the caller's contract); the three pointers
    // are written by Fetch and handed back (owned) to Restore.
    unsafe { ffi::PyErr_Fetch(&mut t, &mut v, &mut tb) };
    f();
    // SAFETY: as above.
    unsafe { ffi::PyErr_Restore(t, v, tb) };
}

/// A DLPack capsule over the message `slf` (versioned with the READ_ONLY
/// flag when `versioned`).
pub(crate) fn export<'py>(
    slf: &Bound<'py, Message>,
    versioned: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let m = slf.get();
    if m.st.released.load(Relaxed) {
        return Err(PyBufferError::new_err(
            "the message was released: its bytes are no longer valid",
        ));
    }
    let len = m.bytes()?.len();
    let owner = Some(slf.clone().unbind());
    let t = tensor(m);
    // Counted before the capsule exists: its destructor (or the
    // consumer's call of the deleter) uncounts it.
    m.st.exports.fetch_add(1, Relaxed);
    let cap = if versioned {
        let mut b = Box::new(Export {
            managed: DLManagedTensorVersioned {
                version: DLPackVersion { major: 1, minor: 0 },
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete_versioned),
                flags: FLAG_READ_ONLY,
                dl_tensor: t,
            },
            shape: [len as i64],
            strides: [1],
            owner,
        });
        b.managed.dl_tensor.shape = b.shape.as_mut_ptr();
        b.managed.dl_tensor.strides = b.strides.as_mut_ptr();
        let raw = Box::into_raw(b);
        // SAFETY: `raw` is a live allocation; the context points at it.
        unsafe { (*raw).managed.manager_ctx = raw.cast() };
        // SAFETY: the GIL is held; the destructor matches the name and
        // the pointer's type.
        let cap = unsafe {
            ffi::PyCapsule_New(raw.cast(), NAME_VERSIONED.as_ptr(), Some(capsule_versioned))
        };
        if cap.is_null() {
            // SAFETY: the capsule was not made: `raw` is still ours alone.
            unsafe { delete_versioned(raw.cast()) };
        }
        cap
    } else {
        let mut b = Box::new(Export {
            managed: DLManagedTensor {
                dl_tensor: t,
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete_legacy),
            },
            shape: [len as i64],
            strides: [1],
            owner,
        });
        b.managed.dl_tensor.shape = b.shape.as_mut_ptr();
        b.managed.dl_tensor.strides = b.strides.as_mut_ptr();
        let raw = Box::into_raw(b);
        // SAFETY: `raw` is a live allocation; the context points at it.
        unsafe { (*raw).managed.manager_ctx = raw.cast() };
        // SAFETY: as above.
        let cap = unsafe { ffi::PyCapsule_New(raw.cast(), NAME.as_ptr(), Some(capsule_legacy)) };
        if cap.is_null() {
            // SAFETY: the capsule was not made: `raw` is still ours alone.
            unsafe { delete_legacy(raw.cast()) };
        }
        cap
    };
    if cap.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `cap` is a new (owned) reference to the capsule.
    Ok(unsafe { Bound::from_owned_ptr(py, cap) })
}
