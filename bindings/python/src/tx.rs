//! `Sender` and `Grant`: sending by copy, and in place.

use crate::buffer::{fill_view, with_bytes};
use crate::core::{
    check_no_grant, lock, shared, slice_done, Deadline, GrantState, Pending, Slot, TxCore, TxSrc,
};
use crate::errors::{invalid, to_py};
use crate::{peer_state, Stats};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::ffi::c_int;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The writing end of a ring.
#[pyclass(module = "memtube", frozen)]
pub(crate) struct Sender {
    pub(crate) src: TxSrc,
}

impl Sender {
    pub(crate) fn own(tx: memtube::Sender) -> Self {
        Sender {
            src: TxSrc::Own(shared(TxCore { tx, grant: None })),
        }
    }

    fn send_impl(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        type_id: u32,
        mut deadline: Deadline,
    ) -> PyResult<()> {
        let mut g = self.src.lock()?;
        let acc = g.access()?;
        check_no_grant(acc.grant)?;
        with_bytes(obj, |data| loop {
            // The copy runs with the GIL held; only the wait for room
            // gives it up.
            match acc.tx.try_send(data, type_id) {
                Ok(()) => return Ok(()),
                Err(memtube::Error::Full) => {}
                Err(e) => return Err(to_py(e)),
            }
            let slice = deadline.slice(memtube::Error::Full)?;
            let (tx, n) = (&mut *acc.tx, data.len());
            slice_done(py.detach(|| tx.wait_for_room(n, Some(slice))))?;
            py.check_signals()?;
        })
    }

    fn reserve_impl(
        &self,
        py: Python<'_>,
        n: usize,
        type_id: u32,
        mut deadline: Deadline,
    ) -> PyResult<Grant> {
        let mut g = self.src.lock()?;
        let acc = g.access()?;
        check_no_grant(acc.grant)?;
        loop {
            match acc.tx.try_reserve(n) {
                Ok(grant) => {
                    let d = grant.detach();
                    let (ptr, len) = (d.as_mut_ptr() as usize, d.len());
                    let state = Arc::new(GrantState::default());
                    *acc.grant = Some(Pending {
                        grant: d,
                        state: state.clone(),
                    });
                    return Ok(Grant {
                        src: self.src.clone(),
                        st: state,
                        ptr,
                        len,
                        type_id,
                    });
                }
                Err(memtube::Error::Full) => {}
                Err(e) => return Err(to_py(e)),
            }
            let slice = deadline.slice(memtube::Error::Full)?;
            let tx = &mut *acc.tx;
            slice_done(py.detach(|| tx.wait_for_room(n, Some(slice))))?;
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl Sender {
    /// Copy `data` (any bytes-like object) into the ring as one message of
    /// type `type_id` and publish it, waiting at most `timeout` seconds for
    /// room (None: no limit; 0: do not wait, raising Full). Raises Closed /
    /// PeerGone when the peer is finished, TooLarge above `max_payload`.
    #[pyo3(signature = (data, type_id=0, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        type_id: u32,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.send_impl(py, data, type_id, Deadline::new(timeout)?)
    }

    /// send() without waiting: raises Full when there is no room now.
    #[pyo3(signature = (data, type_id=0))]
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, type_id: u32) -> PyResult<()> {
        self.send_impl(py, data, type_id, Deadline::Now)
    }

    /// Reserve `n` bytes in the ring, waiting at most `timeout` seconds for
    /// room. The Grant is a writable buffer (memoryview, numpy.frombuffer):
    /// fill it in place, then commit() it, or use it in a `with` block
    /// (committed whole on normal exit, aborted on an exception). Until
    /// then every other operation on this sender raises Busy.
    #[pyo3(signature = (n, timeout=None, *, type_id=0))]
    fn reserve(
        &self,
        py: Python<'_>,
        n: usize,
        timeout: Option<f64>,
        type_id: u32,
    ) -> PyResult<Grant> {
        self.reserve_impl(py, n, type_id, Deadline::new(timeout)?)
    }

    /// reserve() without waiting: raises Full when there is no room now.
    #[pyo3(signature = (n, *, type_id=0))]
    fn try_reserve(&self, py: Python<'_>, n: usize, type_id: u32) -> PyResult<Grant> {
        self.reserve_impl(py, n, type_id, Deadline::Now)
    }

    /// Copy `data` in as a message without publishing it (a batch: call
    /// publish() after the last). Never waits: raises Full.
    #[pyo3(signature = (data, type_id=0))]
    fn send_staged(&self, data: &Bound<'_, PyAny>, type_id: u32) -> PyResult<()> {
        let mut g = self.src.lock()?;
        let acc = g.access()?;
        check_no_grant(acc.grant)?;
        with_bytes(data, |d| acc.tx.send_staged(d, type_id).map_err(to_py))
    }

    /// Publish the staged messages.
    fn publish(&self) -> PyResult<()> {
        let mut g = self.src.lock()?;
        let acc = g.access()?;
        check_no_grant(acc.grant)?;
        acc.tx.publish();
        Ok(())
    }

    /// The largest payload this ring takes, in bytes.
    #[getter]
    fn max_payload(&self) -> PyResult<u32> {
        let mut g = self.src.lock()?;
        Ok(g.access()?.tx.max_payload())
    }

    /// The ring's data-area bytes.
    #[getter]
    fn capacity(&self) -> PyResult<u32> {
        let mut g = self.src.lock()?;
        Ok(g.access()?.tx.capacity())
    }

    /// The ring's counters (may be stale).
    fn stats(&self) -> PyResult<Stats> {
        let mut g = self.src.lock()?;
        Ok(Stats::from(g.access()?.tx.stats()))
    }

    /// Whether the peer was alive at the last probe (no system call; may be stale).
    fn is_peer_alive(&self) -> PyResult<bool> {
        let mut g = self.src.lock()?;
        Ok(g.access()?.tx.is_peer_alive())
    }

    /// Probe the peer's socket now (one system call): "alive", "closed" or "gone".
    fn probe_peer(&self) -> PyResult<&'static str> {
        let mut g = self.src.lock()?;
        Ok(peer_state(g.access()?.tx.probe_peer()))
    }

    /// Copies of at least `n` bytes bypass the cache (x86-64; see the Rust docs).
    fn set_nontemporal_threshold(&self, n: u32) -> PyResult<()> {
        let mut g = self.src.lock()?;
        g.access()?.tx.set_nontemporal_threshold(n);
        Ok(())
    }

    /// Pad small messages to the end of their cache line (see the Rust docs).
    fn set_line_padding(&self, on: bool) -> PyResult<()> {
        let mut g = self.src.lock()?;
        g.access()?.tx.set_line_padding(on);
        Ok(())
    }

    /// Close this sender (one split from its connection; close a
    /// connection's own sender with Connection.close()): the peer's
    /// receiver gets Closed after the last message. An outstanding grant is
    /// dropped (nothing committed); BufferError while it has exports.
    fn close(&self) -> PyResult<()> {
        match &self.src {
            TxSrc::Own(t) => {
                let mut g = lock(t)?;
                if let Slot::Open(core) = &mut *g {
                    if let Some(p) = &core.grant {
                        check_grant_exports(&p.state)?;
                        p.state.done.store(true, Relaxed);
                    }
                    *g = Slot::Gone("the sender is closed");
                }
                Ok(())
            }
            TxSrc::Conn(_) => Err(invalid(
                "this sender belongs to its connection: close the connection",
            )),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if let TxSrc::Own(_) = self.src {
            self.close()?;
        }
        Ok(false)
    }
}

pub(crate) fn check_grant_exports(st: &GrantState) -> PyResult<()> {
    if st.exports.load(Relaxed) > 0 {
        Err(PyBufferError::new_err(
            "buffers of the grant are still exported (a memoryview or numpy array): \
             release them (del / memoryview.release()) first; after a commit the bytes \
             are the receiver's",
        ))
    } else {
        Ok(())
    }
}

/// A reservation in a sender's ring: a writable buffer of `len(grant)`
/// bytes. Commit it (`commit()`, or the end of a `with` block) to send it;
/// `abort()` (or its garbage collection) sends nothing.
#[pyclass(module = "memtube", frozen)]
pub(crate) struct Grant {
    src: TxSrc,
    st: Arc<GrantState>,
    ptr: usize,
    len: usize,
    type_id: u32,
}

impl Grant {
    fn finish(&self, commit: Option<(usize, u32)>) -> PyResult<()> {
        if self.st.done.load(Relaxed) {
            return Err(invalid("this grant was already committed or aborted"));
        }
        check_grant_exports(&self.st)?;
        if let Some((used, _)) = commit {
            if used > self.len {
                return Err(invalid(format!(
                    "commit of {used} bytes exceeds the {} reserved",
                    self.len
                )));
            }
        }
        let mut g = self.src.lock()?;
        let acc = g.access()?;
        let p = match acc.grant.take() {
            Some(p) if Arc::ptr_eq(&p.state, &self.st) => p,
            other => {
                *acc.grant = other;
                self.st.done.store(true, Relaxed);
                return Err(invalid("this grant is no longer outstanding"));
            }
        };
        self.st.done.store(true, Relaxed);
        if let Some((used, ty)) = commit {
            // SAFETY: `p.grant` was detached from a grant of this very
            // sender (`reserve_impl` on the same slot, whose sender is never
            // replaced), and while it was outstanding every other operation
            // on the sender was refused (`check_no_grant`), so the sender
            // made no other reservation, send, commit or publish since;
            // `used <= len` was checked above.
            unsafe { acc.tx.commit_detached(p.grant, used, ty) };
        }
        // Else dropping the detached grant commits nothing.
        Ok(())
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        // No buffer is exported (each export holds a reference to this
        // object). Drop the reservation now if the sender is free, else
        // mark it for the sender's next operation.
        if self.st.done.load(Relaxed) {
            return;
        }
        self.st.abandoned.store(true, Relaxed);
        if let Some(mut g) = self.src.try_lock_quiet() {
            if let Ok(acc) = g.access() {
                let _ = check_no_grant(acc.grant);
            }
        }
    }
}

#[pymethods]
impl Grant {
    /// Commit the first `len` bytes (default: all) as one message of type
    /// `type_id` (default: the one given to reserve) and publish it.
    /// Raises BufferError while buffers of the grant are exported.
    #[pyo3(signature = (len=None, type_id=None))]
    fn commit(&self, len: Option<usize>, type_id: Option<u32>) -> PyResult<()> {
        self.finish(Some((
            len.unwrap_or(self.len),
            type_id.unwrap_or(self.type_id),
        )))
    }

    /// Give the reservation up: nothing is sent.
    fn abort(&self) -> PyResult<()> {
        self.finish(None)
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// The type id a commit() without one uses.
    #[getter]
    fn type_id(&self) -> u32 {
        self.type_id
    }

    /// Whether the grant was committed or aborted.
    #[getter]
    fn done(&self) -> bool {
        self.st.done.load(Relaxed)
    }

    /// The reservation's address in this process (to check zero copy).
    #[getter]
    fn address(&self) -> usize {
        self.ptr
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Commit (all of it) on normal exit unless already committed or
    /// aborted; abort on an exception.
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.st.done.load(Relaxed) {
            return Ok(false);
        }
        if exc_type.is_some_and(|t| !t.is_none()) {
            // Left for the garbage collection if buffers are still exported.
            let _ = self.finish(None);
            Ok(false)
        } else {
            self.finish(Some((self.len, self.type_id))).map(|()| false)
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.st.done.load(Relaxed) {
            ", done"
        } else {
            ""
        };
        format!("<memtube.Grant len={}{}>", self.len, state)
    }

    /// The buffer protocol, writable.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let me = slf.get();
        if me.st.done.load(Relaxed) {
            return Err(PyBufferError::new_err(
                "the grant was committed or aborted: its bytes are no longer writable",
            ));
        }
        let (ptr, len) = (me.ptr as *mut u8, me.len);
        let st = me.st.clone();
        // SAFETY: the reservation is outstanding (not done): its bytes are
        // this sender's to write until commit or abort, which refuse while
        // `exports` is nonzero; the export holds a reference to this grant
        // and through it the sender's mapping.
        unsafe { fill_view(view, flags, slf.into_any(), ptr, len, false)? };
        st.exports.fetch_add(1, Relaxed);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.st.exports.fetch_sub(1, Relaxed);
    }
}
