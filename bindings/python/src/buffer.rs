//! The buffer protocol both ways: reading any bytes-like object, and
//! filling a `Py_buffer` that exports a message or a grant.

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::ffi::{c_char, c_int};
use std::mem::MaybeUninit;

/// Run `f` over the bytes of a bytes-like object (anything with a
/// C-contiguous buffer: `bytes`, `bytearray`, `memoryview`, numpy arrays,
/// a memtube `Message`, ...), without copying them. `f` runs with the GIL
/// held, so no Python thread changes a mutable buffer while it reads.
pub(crate) fn with_bytes<R>(
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> PyResult<R>,
) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return f(b.as_bytes());
    }
    let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: `obj` is a live object (we hold a reference and the GIL);
    // `view` is writable memory for one `Py_buffer`, which stays in place
    // (never moved) until `PyBuffer_Release` below.
    let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_SIMPLE) };
    if rc != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    /// Releases the view however `f` ends.
    struct Release(*mut ffi::Py_buffer);
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: the view was filled by a successful
            // `PyObject_GetBuffer` and is released exactly once, here,
            // with the GIL still held (this guard lives in `with_bytes`).
            unsafe { ffi::PyBuffer_Release(self.0) }
        }
    }
    let _release = Release(view.as_mut_ptr());
    // SAFETY: filled by the successful `PyObject_GetBuffer` above.
    let v = unsafe { &*view.as_ptr() };
    let data: &[u8] = if v.len <= 0 || v.buf.is_null() {
        &[]
    } else {
        // SAFETY: `PyBUF_SIMPLE` asks for one contiguous run of `len`
        // bytes at `buf`, valid while the view is held (until `_release`
        // drops, after `f`).
        unsafe { std::slice::from_raw_parts(v.buf as *const u8, v.len as usize) }
    };
    f(data)
}

/// Fill `view` to export `len` bytes at `ptr`, owned by `owner`, as a
/// 1-dimensional buffer of unsigned bytes (format "B").
///
/// # Safety
/// `view` is the `Py_buffer` the buffer protocol handed to
/// `__getbuffer__`; `ptr..ptr + len` stays valid (and, when `readonly` is
/// false, writable) until the matching `__releasebuffer__` of `owner`.
pub(crate) unsafe fn fill_view(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    owner: Bound<'_, PyAny>,
    ptr: *mut u8,
    len: usize,
    readonly: bool,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("view is null"));
    }
    if readonly && (flags & ffi::PyBUF_WRITABLE) == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err(
            "a received message is read-only (copy it, e.g. bytearray(msg), to change it)",
        ));
    }
    // SAFETY: `view` is valid for writes (the caller's contract); the
    // shape and strides point into the view itself, which the protocol
    // keeps in place while it is exported; the format is a static string
    // nobody writes to.
    unsafe {
        (*view).obj = owner.into_ptr();
        (*view).buf = ptr.cast();
        (*view).len = len as isize;
        (*view).readonly = c_int::from(readonly);
        (*view).itemsize = 1;
        (*view).format = if (flags & ffi::PyBUF_FORMAT) == ffi::PyBUF_FORMAT {
            c"B".as_ptr() as *mut c_char
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = 1;
        (*view).shape = if (flags & ffi::PyBUF_ND) == ffi::PyBUF_ND {
            &mut (*view).len
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if (flags & ffi::PyBUF_STRIDES) == ffi::PyBUF_STRIDES {
            &mut (*view).itemsize
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
    }
    Ok(())
}
