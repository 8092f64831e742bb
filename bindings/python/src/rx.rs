//! `Receiver` and `Message`: receiving in place.

use crate::buffer::fill_view;
use crate::core::{
    lock, release_held, shared, slice_done, Deadline, MsgState, RxCore, RxSrc, Slot,
};
use crate::errors::{invalid, to_py, IntoPy};
use crate::{peer_state, Stats};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::ffi::c_int;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The reading end of a ring.
#[pyclass(module = "memtube", frozen)]
pub(crate) struct Receiver {
    pub(crate) src: RxSrc,
}

/// A receive polls the ring this many times with the GIL held (a few
/// microseconds at most) before it waits without the GIL: a round trip's
/// answer usually comes within that, and giving the GIL up and taking it
/// back costs more than the polls (docs/bench/python.md, "GIL").
const GIL_POLLS: u32 = 64;

/// Receive into a new `Message` held by the receiver behind `src`.
pub(crate) fn recv_msg(py: Python<'_>, src: &RxSrc, mut deadline: Deadline) -> PyResult<Message> {
    let mut g = src.lock()?;
    let acc = g.access()?;
    release_held(acc.rx, acc.held)?;
    let mut polls = GIL_POLLS;
    loop {
        // First without giving up the GIL: a message already there costs
        // no more than the receive itself.
        match acc.rx.try_recv() {
            Ok(m) => {
                let p = m.payload();
                let (ptr, len, ty) = (p.as_ptr() as usize, p.len(), m.type_id());
                // Left in the ring unreleased; `release_held` receives it
                // again and drops it.
                m.keep();
                let st = Arc::new(MsgState::default());
                *acc.held = Some(st.clone());
                return Ok(Message {
                    src: src.clone(),
                    st,
                    ptr,
                    len,
                    ty,
                });
            }
            Err(memtube::Error::Empty) => {}
            Err(e) => return Err(to_py(e)),
        }
        if polls > 0 && !matches!(deadline, Deadline::Now) {
            polls -= 1;
            std::hint::spin_loop();
            continue;
        }
        let slice = deadline.slice(memtube::Error::Empty)?;
        let rx = &mut *acc.rx;
        slice_done(py.detach(|| rx.wait_message(Some(slice))))?;
        py.check_signals()?;
    }
}

impl Receiver {
    pub(crate) fn own(rx: memtube::Receiver) -> Self {
        Receiver {
            src: RxSrc::Own(shared(RxCore { rx, held: None })),
        }
    }
}

#[pymethods]
impl Receiver {
    /// Receive the next message, waiting at most `timeout` seconds (None: no
    /// limit; 0: do not wait, raising Empty). Raises Closed after the last
    /// message of a peer that closed, PeerGone if it died, Timeout.
    ///
    /// The message before it is released first: this raises Busy if buffers
    /// of that one are still exported.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Message> {
        recv_msg(py, &self.src, Deadline::new(timeout)?)
    }

    /// Receive without waiting: raises Empty when there is no message now.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Message> {
        recv_msg(py, &self.src, Deadline::Now)
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next message; the iteration ends when the peer closed (after
    /// its last message). PeerGone and the other errors are raised.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        match recv_msg(py, &self.src, Deadline::Never) {
            Ok(m) => Ok(Some(m)),
            Err(e) if crate::errors::is_kind(py, &e, crate::errors::Kind::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The largest payload this ring carries, in bytes.
    #[getter]
    fn max_payload(&self) -> PyResult<u32> {
        let mut g = self.src.lock()?;
        Ok(g.access()?.rx.max_payload())
    }

    /// The ring's counters (may be stale).
    fn stats(&self) -> PyResult<Stats> {
        let mut g = self.src.lock()?;
        Ok(Stats::from(g.access()?.rx.stats()))
    }

    /// Whether the peer was alive at the last probe (no system call; may be stale).
    fn is_peer_alive(&self) -> PyResult<bool> {
        let mut g = self.src.lock()?;
        Ok(g.access()?.rx.is_peer_alive())
    }

    /// Probe the peer's socket now (one system call): "alive", "closed" or "gone".
    fn probe_peer(&self) -> PyResult<&'static str> {
        let mut g = self.src.lock()?;
        Ok(peer_state(g.access()?.rx.probe_peer()))
    }

    /// Close this receiver (one split from its connection; close a
    /// connection's own receiver with Connection.close()). Raises
    /// BufferError while buffers of its held message are exported.
    fn close(&self) -> PyResult<()> {
        match &self.src {
            RxSrc::Own(r) => {
                let mut g = lock(r)?;
                if let Slot::Open(core) = &mut *g {
                    if let Some(st) = &core.held {
                        check_no_exports(st)?;
                        st.released.store(true, Relaxed);
                    }
                    *g = Slot::Gone("the receiver is closed");
                }
                Ok(())
            }
            RxSrc::Conn(_) => Err(invalid(
                "this receiver belongs to its connection: close the connection",
            )),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if let RxSrc::Own(_) = self.src {
            self.close()?;
        }
        Ok(false)
    }
}

fn check_no_exports(st: &MsgState) -> PyResult<()> {
    if st.exports.load(Relaxed) > 0 {
        Err(PyBufferError::new_err(
            "buffers of this message are still exported (a memoryview, numpy array or \
             DLPack capsule): release them (del / memoryview.release()) first",
        ))
    } else {
        Ok(())
    }
}

/// A received message, in place in the ring (zero copy).
///
/// Valid until released: by `release()`, the end of a `with` block, the
/// next receive on its receiver, or its garbage collection. While buffers
/// of it are exported, releasing raises BufferError.
#[pyclass(module = "memtube", frozen)]
pub(crate) struct Message {
    src: RxSrc,
    pub(crate) st: Arc<MsgState>,
    ptr: usize,
    len: usize,
    ty: u32,
}

impl Message {
    /// A reply of `call`, held by the connection's receiver.
    pub(crate) fn held(src: RxSrc, st: Arc<MsgState>, ptr: usize, len: usize, ty: u32) -> Self {
        Message {
            src,
            st,
            ptr,
            len,
            ty,
        }
    }

    fn check(&self) -> PyResult<()> {
        if self.st.released.load(Relaxed) {
            Err(invalid(
                "the message was released: its bytes are no longer valid \
                 (copy them, e.g. bytes(msg), before releasing)",
            ))
        } else {
            Ok(())
        }
    }

    /// The payload.
    pub(crate) fn bytes(&self) -> PyResult<&[u8]> {
        self.check()?;
        if self.len == 0 {
            return Ok(&[]);
        }
        // SAFETY: the message is held, not released (checked above): its
        // receiver keeps it in place (`Message::keep`) until
        // `release_held`, which only runs with the GIL held (as we are),
        // and the mapping lives while `src` (an `Arc` of the receiver's
        // slot) does.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) })
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr as *mut u8
    }

    fn release_now(&self) -> PyResult<()> {
        if self.st.released.load(Relaxed) {
            return Ok(());
        }
        check_no_exports(&self.st)?;
        let mut g = self.src.lock()?;
        // Closed or split (no access): the close released it.
        if let Ok(acc) = g.access() {
            if acc.held.as_ref().is_some_and(|h| Arc::ptr_eq(h, &self.st)) {
                release_held(acc.rx, acc.held)?;
            }
        }
        self.st.released.store(true, Relaxed);
        Ok(())
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // No buffer is exported (each export holds a reference to this
        // object). Release the ring space now if the receiver is free;
        // else its next receive will.
        if self.st.released.load(Relaxed) {
            return;
        }
        if let Some(mut g) = self.src.try_lock_quiet() {
            if let Ok(acc) = g.access() {
                if acc.held.as_ref().is_some_and(|h| Arc::ptr_eq(h, &self.st)) {
                    let _ = release_held(acc.rx, acc.held);
                }
            }
        }
    }
}

#[pymethods]
impl Message {
    /// The type id the sender committed with it.
    #[getter]
    fn type_id(&self) -> u32 {
        self.ty
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Whether the message was released (its bytes are no longer readable).
    #[getter]
    fn released(&self) -> bool {
        self.st.released.load(Relaxed)
    }

    /// The payload's address in this process (to check zero copy).
    #[getter]
    fn address(&self) -> PyResult<usize> {
        self.check()?;
        Ok(self.ptr)
    }

    /// Release the message's space in the ring now. Idempotent. Raises
    /// BufferError while buffers of it are exported.
    fn release(&self) -> PyResult<()> {
        self.release_now()
    }

    /// A copy of the payload.
    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.bytes()?))
    }

    /// A copy of the payload (as bytes(msg)).
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.bytes()?))
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Release on leaving the block (on an exception, a message whose
    /// buffers are still exported is left to the next receive).
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match self.release_now() {
            Err(_) if exc_type.is_some_and(|t| !t.is_none()) => Ok(false),
            r => r.map(|()| false),
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.st.released.load(Relaxed) {
            ", released"
        } else {
            ""
        };
        format!(
            "<memtube.Message type_id={} len={}{}>",
            self.ty, self.len, state
        )
    }

    /// The buffer protocol, read-only: memoryview(msg), numpy.frombuffer(msg).
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let me = slf.get();
        if me.st.released.load(Relaxed) {
            return Err(PyBufferError::new_err(
                "the message was released: its bytes are no longer valid",
            ));
        }
        let (ptr, len) = (me.ptr as *mut u8, me.len);
        let st = me.st.clone();
        // SAFETY: `view` comes from the buffer protocol; the bytes stay in
        // place until the export is released: `release` refuses while
        // `exports` is nonzero, and the export holds a reference to this
        // message (and through it the receiver's mapping).
        unsafe { fill_view(view, flags, slf.into_any(), ptr, len, true)? };
        st.exports.fetch_add(1, Relaxed);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.st.exports.fetch_sub(1, Relaxed);
    }

    /// DLPack export (kDLCPU, uint8, 1-D, read-only): numpy.from_dlpack(msg),
    /// torch.from_dlpack(msg). The capsule keeps the message alive and
    /// counts as an exported buffer until the consumer's tensor is freed.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        slf: &Bound<'py, Self>,
        stream: Option<&Bound<'py, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = stream; // CPU memory: there is no stream to synchronize.
        if let Some(d) = dl_device {
            if d != crate::dlpack::CPU {
                return Err(PyBufferError::new_err(
                    "memtube messages are in host memory (kDLCPU, 0)",
                ));
            }
        }
        if copy == Some(true) {
            return Err(PyBufferError::new_err(
                "memtube exports messages without copying; copy the result instead",
            ));
        }
        let versioned = max_version.is_some_and(|(major, _)| major >= 1);
        crate::dlpack::export(slf, versioned)
    }

    fn __dlpack_device__(&self) -> (i32, i32) {
        crate::dlpack::CPU
    }
}

/// `to_py` for a fallible receive used by `call`.
pub(crate) fn rx_of(c: &mut crate::core::ConnCore) -> PyResult<&mut memtube::Receiver> {
    c.conn.receiver().py_err()
}
