//! memtube's Python extension module, `memtube._memtube` (re-exported by
//! the pure-Python package `memtube`): pyo3 over the `memtube` crate.
//!
//! See `bindings/python/README.md` and `docs/python.md` for the Python
//! API; the `core` module for how objects own the Rust handles and how blocking
//! calls wait (without the GIL, in slices, checking for signals).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod buffer;
mod core;
mod dlpack;
mod errors;
mod rx;
mod tx;

use crate::core::{
    check_no_grant, lock, release_held, shared, slice_done, ConnCore, Deadline, MsgState, RxSrc,
    Shared, Slot, TxSrc,
};
use crate::errors::{invalid, is_kind, to_py, IntoPy, Kind};
use crate::rx::{rx_of, Message, Receiver};
use crate::tx::{check_grant_exports, Grant, Sender};
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The type id of an error reply of `serve` (`memtube_posix::ERROR_REPLY`).
const ERROR_REPLY: u32 = u32::MAX;

/// A ring's counters (`memtube::ring::Stats`; may be stale).
#[pyclass(module = "memtube", frozen, get_all)]
pub(crate) struct Stats {
    messages_committed: u64,
    bytes_committed: u64,
    full_events: u64,
    producer_wakes: u64,
    messages_released: u64,
    bytes_released: u64,
    consumer_wakes: u64,
}

impl From<memtube::ring::Stats> for Stats {
    fn from(s: memtube::ring::Stats) -> Self {
        Stats {
            messages_committed: s.messages_committed,
            bytes_committed: s.bytes_committed,
            full_events: s.full_events,
            producer_wakes: s.producer_wakes,
            messages_released: s.messages_released,
            bytes_released: s.bytes_released,
            consumer_wakes: s.consumer_wakes,
        }
    }
}

#[pymethods]
impl Stats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(messages_committed={}, bytes_committed={}, full_events={}, producer_wakes={}, \
             messages_released={}, bytes_released={}, consumer_wakes={})",
            self.messages_committed,
            self.bytes_committed,
            self.full_events,
            self.producer_wakes,
            self.messages_released,
            self.bytes_released,
            self.consumer_wakes
        )
    }
}

/// The peer's credentials, as the kernel recorded them.
#[pyclass(module = "memtube", frozen, get_all)]
pub(crate) struct PeerCred {
    pid: i32,
    uid: u32,
    gid: u32,
}

#[pymethods]
impl PeerCred {
    fn __repr__(&self) -> String {
        format!(
            "PeerCred(pid={}, uid={}, gid={})",
            self.pid, self.uid, self.gid
        )
    }
}

pub(crate) fn peer_state(s: memtube::PeerState) -> &'static str {
    match s {
        memtube::PeerState::Alive => "alive",
        memtube::PeerState::Closed => "closed",
        _ => "gone",
    }
}

/// An address: a str (a path, or "@name" for a Linux abstract socket) or
/// an os.PathLike.
fn addr_of(addr: &Bound<'_, PyAny>) -> PyResult<memtube::Addr> {
    if let Ok(s) = addr.extract::<String>() {
        return Ok(memtube::Addr::from(s.as_str()));
    }
    let p: std::path::PathBuf = addr
        .extract()
        .map_err(|_| invalid("the address must be a str or an os.PathLike"))?;
    Ok(memtube::Addr::from(p))
}

fn secs(what: &str, t: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(t)
        .map_err(|_| invalid(format!("{what} must be a number of seconds >= 0, not {t}")))
}

/// The options both `listen` and `connect` take.
#[allow(clippy::too_many_arguments)]
fn options(
    capacity: u32,
    duplex: bool,
    isolation: bool,
    pure_spin: bool,
    huge_pages: bool,
    mlock: bool,
    direction: &str,
    uid_policy: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    handshake_timeout: f64,
) -> PyResult<memtube::Options> {
    let direction = match direction {
        "connector_to_listener" => memtube::Direction::ConnectorToListener,
        "listener_to_connector" => memtube::Direction::ListenerToConnector,
        d => {
            return Err(invalid(format!(
            "direction must be \"connector_to_listener\" or \"listener_to_connector\", not {d:?}"
        )))
        }
    };
    let policy = match uid_policy {
        None => memtube::UidPolicy::SameUid,
        Some(p) => match p.extract::<String>().ok().as_deref() {
            Some("same") => memtube::UidPolicy::SameUid,
            Some("any") => memtube::UidPolicy::Any,
            Some(s) => {
                return Err(invalid(format!(
                    "uid_policy must be \"same\", \"any\" or an iterable of uids, not {s:?}"
                )))
            }
            None => memtube::UidPolicy::Uids(p.extract::<Vec<u32>>().map_err(|_| {
                invalid("uid_policy must be \"same\", \"any\" or an iterable of uids")
            })?),
        },
    };
    let mut o = memtube::Options::new()
        .capacity(capacity)
        .duplex(duplex)
        .isolation(isolation)
        .pure_spin(pure_spin)
        .huge_pages(huge_pages)
        .mlock(mlock)
        .direction(direction)
        .uid_policy(policy)
        .handshake_timeout(secs("handshake_timeout", handshake_timeout)?);
    match backend {
        None => {}
        Some("memfd") => o = o.backend(memtube::Backend::Memfd),
        Some("shm") => o = o.backend(memtube::Backend::PosixShm),
        Some(b) => {
            return Err(invalid(format!(
                "backend must be None, \"memfd\" or \"shm\", not {b:?}"
            )))
        }
    }
    Ok(o)
}

/// What `Connection.split` returns.
type Halves = (Option<Py<Sender>>, Option<Py<Receiver>>);

/// A connection: one ring (one-way) or two (duplex), the socket that
/// watches the peer, and the peer's credentials.
#[pyclass(module = "memtube", frozen)]
pub(crate) struct Connection {
    core: Shared<ConnCore>,
    peer: memtube::PeerCred,
    sender: Option<Py<Sender>>,
    receiver: Option<Py<Receiver>>,
}

impl Connection {
    fn new(py: Python<'_>, mut conn: memtube::Connection) -> PyResult<Self> {
        let (has_tx, has_rx) = (conn.sender().is_ok(), conn.receiver().is_ok());
        let peer = conn.peer_cred();
        let core = shared(ConnCore {
            conn,
            held: None,
            grant: None,
        });
        let sender = if has_tx {
            Some(Py::new(
                py,
                Sender {
                    src: TxSrc::Conn(core.clone()),
                },
            )?)
        } else {
            None
        };
        let receiver = if has_rx {
            Some(Py::new(
                py,
                Receiver {
                    src: RxSrc::Conn(core.clone()),
                },
            )?)
        } else {
            None
        };
        Ok(Connection {
            core,
            peer,
            sender,
            receiver,
        })
    }

    /// Hold the reply `(ptr, len, ty)` kept in the receiver.
    fn hold(&self, c: &mut ConnCore, ptr: usize, len: usize, ty: u32) -> Message {
        let st = Arc::new(MsgState::default());
        c.held = Some(st.clone());
        Message::held(RxSrc::Conn(self.core.clone()), st, ptr, len, ty)
    }

    /// The receiver and sender must be free for call / serve: the held
    /// message is released (Busy while exported), a grant refuses.
    fn prepare(c: &mut ConnCore) -> PyResult<()> {
        let rx = c.conn.receiver().py_err()?;
        release_held(rx, &mut c.held)?;
        check_no_grant(&mut c.grant)?;
        c.conn.sender().py_err()?;
        Ok(())
    }

    fn call_impl(
        &self,
        py: Python<'_>,
        type_id: u32,
        data: &Bound<'_, PyAny>,
        mut deadline: Deadline,
    ) -> PyResult<Message> {
        let mut g = lock(&self.core)?;
        let c = open(&mut g)?;
        Self::prepare(c)?;
        // The request is read without the GIL below: `bytes` are
        // immutable; anything else is copied first.
        let owned: Vec<u8>;
        let req: &[u8] = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                owned = buffer::with_bytes(data, |d| Ok(d.to_vec()))?;
                &owned
            }
        };
        // The request, waiting for room in slices (checking for signals
        // between them); then its reply, the same way. A slice that times
        // out leaves the request outstanding: `recv_reply` goes on waiting
        // for the same reply (memtube::Connection::send_request).
        let conn = &mut c.conn;
        let id = loop {
            let slice = deadline.slice(memtube::Error::Timeout)?;
            match py.detach(|| conn.send_request(type_id, req, Some(slice))) {
                Ok(id) => break id,
                Err(memtube::Error::Timeout) => py.check_signals()?,
                Err(e) => return Err(to_py(e)),
            }
        };
        loop {
            let slice = deadline.slice(memtube::Error::Timeout)?;
            let r = py.detach(|| match conn.recv_reply(id, Some(slice)) {
                Ok(reply) => {
                    let p = reply.payload();
                    let out = (p.as_ptr() as usize, p.len(), reply.type_id());
                    // Kept in the ring; received again (id in front) and
                    // dropped by `release_held`.
                    reply.keep();
                    Ok(out)
                }
                Err(e) => Err(e),
            });
            match r {
                Ok((ptr, len, ty)) => return Ok(self.hold(c, ptr, len, ty)),
                Err(memtube::Error::Timeout) => py.check_signals()?,
                Err(e) => return Err(to_py(e)),
            }
        }
    }

    /// Serve one request: wait for it in slices, then run the handler.
    fn serve_one_impl(
        py: Python<'_>,
        c: &mut ConnCore,
        handler: &Bound<'_, PyAny>,
        mut deadline: Deadline,
    ) -> PyResult<()> {
        Self::prepare(c)?;
        loop {
            let rx = rx_of(c)?;
            match rx.peek() {
                Ok(_) => break,
                Err(memtube::Error::Empty) => {}
                Err(e) => return Err(to_py(e)),
            }
            let slice = deadline.slice(memtube::Error::Empty)?;
            slice_done(py.detach(|| rx.wait_message(Some(slice))))?;
            py.check_signals()?;
        }
        let handler = handler.clone().unbind();
        let mut failure: Option<PyErr> = None;
        let conn = &mut c.conn;
        // The request is there: serve_one takes it at once. The handler
        // runs with the GIL; the wait for room for the reply (if the
        // client is slow to read its replies) without.
        let r = py.detach(|| {
            conn.serve_one(None, |ty, body, reply| {
                Python::attach(|py| match run_handler(py, &handler, ty, body, reply) {
                    Ok(t) => t,
                    Err(e) => {
                        failure = Some(e);
                        reply.clear();
                        // The client's call fails with Protocol.
                        ERROR_REPLY
                    }
                })
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        r.py_err()
    }
}

/// Call a `serve` handler: `handler(type_id, request: bytes)` returns the
/// reply: None (empty), a bytes-like object (with the request's type id),
/// or a tuple `(type_id, bytes-like)`.
fn run_handler(
    py: Python<'_>,
    handler: &Py<PyAny>,
    ty: u32,
    body: &[u8],
    reply: &mut Vec<u8>,
) -> PyResult<u32> {
    let req = PyBytes::new(py, body);
    let out = handler.bind(py).call1((ty, req))?;
    if out.is_none() {
        return Ok(ty);
    }
    if let Ok(t) = out.cast::<PyTuple>() {
        if t.len() != 2 {
            return Err(invalid(
                "a serve handler returns None, a bytes-like object or (type_id, bytes-like)",
            ));
        }
        let rty: u32 = t.get_item(0)?.extract()?;
        buffer::with_bytes(&t.get_item(1)?, |d| {
            reply.extend_from_slice(d);
            Ok(())
        })?;
        return Ok(rty);
    }
    buffer::with_bytes(&out, |d| {
        reply.extend_from_slice(d);
        Ok(())
    })?;
    Ok(ty)
}

fn open(g: &mut Slot<ConnCore>) -> PyResult<&mut ConnCore> {
    match g {
        Slot::Open(c) => Ok(c),
        Slot::Gone(why) => Err(invalid(format!("this connection cannot be used: {why}"))),
    }
}

#[pymethods]
impl Connection {
    /// This side's Sender (NoSuchHandle on the receiving side of a one-way connection).
    #[getter]
    fn sender(&self, py: Python<'_>) -> PyResult<Py<Sender>> {
        self.sender
            .as_ref()
            .map(|s| s.clone_ref(py))
            .ok_or_else(|| to_py(memtube::Error::NoSuchHandle))
    }

    /// This side's Receiver (NoSuchHandle on the sending side of a one-way connection).
    #[getter]
    fn receiver(&self, py: Python<'_>) -> PyResult<Py<Receiver>> {
        self.receiver
            .as_ref()
            .map(|r| r.clone_ref(py))
            .ok_or_else(|| to_py(memtube::Error::NoSuchHandle))
    }

    /// The peer's credentials (pid, uid, gid).
    #[getter]
    fn peer(&self) -> PeerCred {
        PeerCred {
            pid: self.peer.pid,
            uid: self.peer.uid,
            gid: self.peer.gid,
        }
    }

    /// Whether the peer was alive at the last probe (no system call; may be stale).
    fn is_peer_alive(&self) -> PyResult<bool> {
        let mut g = lock(&self.core)?;
        Ok(open(&mut g)?.conn.is_peer_alive())
    }

    /// Probe the peer's socket now (one system call): "alive", "closed" or "gone".
    fn probe_peer(&self) -> PyResult<&'static str> {
        let mut g = lock(&self.core)?;
        Ok(peer_state(open(&mut g)?.conn.probe_peer()))
    }

    /// The largest request body call() sends (0 without a sender).
    #[getter]
    fn max_request(&self) -> PyResult<u32> {
        let mut g = lock(&self.core)?;
        Ok(open(&mut g)?.conn.max_request())
    }

    /// Whether close() was called (or the connection was split).
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(matches!(&*lock(&self.core)?, Slot::Gone(_)))
    }

    /// Send a request (duplex connections) and wait at most `timeout`
    /// seconds for its reply, a Message (held by the receiver like a
    /// received one). A reply that comes after a Timeout is skipped by the
    /// next call.
    #[pyo3(signature = (type_id, data, timeout=None))]
    fn call(
        &self,
        py: Python<'_>,
        type_id: u32,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Message> {
        self.call_impl(py, type_id, data, Deadline::new(timeout)?)
    }

    /// Serve one request (duplex connections), waiting at most `timeout`
    /// seconds for it: `handler(type_id, request: bytes)` returns the reply
    /// (None, bytes-like with the request's type id, or (type_id,
    /// bytes-like)). An exception in the handler is raised here (the
    /// client's call gets Protocol).
    #[pyo3(signature = (handler, timeout=None))]
    fn serve_one(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let deadline = Deadline::new(timeout)?;
        let mut g = lock(&self.core)?;
        Self::serve_one_impl(py, open(&mut g)?, handler, deadline)
    }

    /// Serve requests with `handler` (as serve_one) until the peer closes.
    fn serve(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut g = lock(&self.core)?;
        let c = open(&mut g)?;
        loop {
            match Self::serve_one_impl(py, c, handler, Deadline::Never) {
                Ok(()) => {}
                Err(e) if is_kind(py, &e, Kind::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Split into an owned (sender, receiver) pair (either may be None)
    /// that two threads can use at once; the connection itself is then
    /// unusable. Releases the held message first (Busy while exported).
    fn split(&self, py: Python<'_>) -> PyResult<Halves> {
        let mut g = lock(&self.core)?;
        let c = open(&mut g)?;
        if let Ok(rx) = c.conn.receiver() {
            release_held(rx, &mut c.held)?;
        }
        check_no_grant(&mut c.grant)?;
        let Slot::Open(c) = std::mem::replace(
            &mut *g,
            Slot::Gone("the connection was split: use the sender and receiver split() returned"),
        ) else {
            unreachable!("checked open above")
        };
        let (tx, rx) = c.conn.into_split();
        let tx = tx.map(|t| Py::new(py, Sender::own(t))).transpose()?;
        let rx = rx.map(|r| Py::new(py, Receiver::own(r))).transpose()?;
        Ok((tx, rx))
    }

    /// Close the connection (the peer gets Closed after the last message).
    /// Idempotent. Raises BufferError while buffers of a held message or of
    /// an outstanding grant are exported.
    fn close(&self) -> PyResult<()> {
        let mut g = lock(&self.core)?;
        if let Slot::Open(c) = &mut *g {
            if let Some(st) = &c.held {
                if st.exports.load(Relaxed) > 0 {
                    return Err(PyBufferError::new_err(
                        "buffers of a received message are still exported: release them first",
                    ));
                }
            }
            if let Some(p) = &c.grant {
                check_grant_exports(&p.state)?;
            }
            if let Some(st) = &c.held {
                st.released.store(true, Relaxed);
            }
            if let Some(p) = &c.grant {
                p.state.done.store(true, Relaxed);
            }
            *g = Slot::Gone("the connection is closed");
        }
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<memtube.Connection peer_pid={} sender={} receiver={}>",
            self.peer.pid,
            self.sender.is_some(),
            self.receiver.is_some()
        )
    }
}

/// A listening socket: accept() connections from peers.
#[pyclass(module = "memtube", frozen)]
pub(crate) struct Listener {
    inner: Mutex<Option<Arc<memtube::Listener>>>,
    opts: memtube::Options,
    addr: String,
}

impl Listener {
    fn get(&self) -> PyResult<Arc<memtube::Listener>> {
        // Held only to clone the Arc, never while waiting: a plain lock.
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clone()
            .ok_or_else(|| invalid("this listener cannot be used: it is closed"))
    }
}

#[pymethods]
impl Listener {
    /// Accept one connection, waiting at most `timeout` seconds for a peer
    /// (None: no limit). Errors refuse one peer (PermissionDenied,
    /// Handshake, ...); the listener keeps working.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Connection> {
        let mut deadline = Deadline::new(timeout)?;
        let l = self.get()?;
        let opts = &self.opts;
        loop {
            let slice = match deadline {
                Deadline::Now => Duration::ZERO,
                ref mut d => d.slice(memtube::Error::Timeout)?,
            };
            match py.detach(|| l.accept_with(opts, Some(slice))) {
                Ok(c) => return Connection::new(py, c),
                Err(memtube::Error::Timeout) if !matches!(deadline, Deadline::Now) => {
                    py.check_signals()?;
                }
                Err(e) => return Err(to_py(e)),
            }
        }
    }

    /// The address listened on.
    #[getter]
    fn address(&self) -> &str {
        &self.addr
    }

    /// The listening socket's descriptor (to poll it; -1 once closed).
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.get().map_or(-1, |l| l.as_fd().as_raw_fd())
    }

    /// Stop listening (the socket file is removed). Idempotent.
    fn close(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g = None;
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<memtube.Listener {:?}>", self.addr)
    }
}

/// Listen on `addr` (a path, or "@name" for a Linux abstract socket).
/// The listener's options decide the rings of the connections it accepts.
#[pyfunction]
#[pyo3(signature = (addr, *, capacity=65536, duplex=false, isolation=true, pure_spin=false,
    huge_pages=false, mlock=false, direction="connector_to_listener", uid_policy=None,
    backend=None, handshake_timeout=5.0))]
#[allow(clippy::too_many_arguments)]
fn listen(
    py: Python<'_>,
    addr: &Bound<'_, PyAny>,
    capacity: u32,
    duplex: bool,
    isolation: bool,
    pure_spin: bool,
    huge_pages: bool,
    mlock: bool,
    direction: &str,
    uid_policy: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    handshake_timeout: f64,
) -> PyResult<Listener> {
    let opts = options(
        capacity,
        duplex,
        isolation,
        pure_spin,
        huge_pages,
        mlock,
        direction,
        uid_policy,
        backend,
        handshake_timeout,
    )?;
    let a = addr_of(addr)?;
    let text = a.to_string();
    let l = py.detach(|| memtube::listen(a, &opts)).py_err()?;
    Ok(Listener {
        inner: Mutex::new(Some(Arc::new(l))),
        opts,
        addr: text,
    })
}

/// Connect to the listener at `addr`, waiting at most `timeout` seconds for
/// room in its backlog and `handshake_timeout` for the handshake. `duplex`
/// and `direction` must match the listener's; the ring options
/// (capacity, isolation, pure_spin, huge_pages) are the listener's, up to
/// `max_capacity` bytes per ring (default 64 MiB, never below `capacity`):
/// a listener offering larger rings is refused (`Handshake`) before
/// anything is mapped.
#[pyfunction]
#[pyo3(signature = (addr, *, capacity=65536, duplex=false, isolation=true, pure_spin=false,
    huge_pages=false, mlock=false, direction="connector_to_listener", uid_policy=None,
    backend=None, timeout=5.0, handshake_timeout=5.0, max_capacity=67108864))]
#[allow(clippy::too_many_arguments)]
fn connect(
    py: Python<'_>,
    addr: &Bound<'_, PyAny>,
    capacity: u32,
    duplex: bool,
    isolation: bool,
    pure_spin: bool,
    huge_pages: bool,
    mlock: bool,
    direction: &str,
    uid_policy: Option<&Bound<'_, PyAny>>,
    backend: Option<&str>,
    timeout: f64,
    handshake_timeout: f64,
    max_capacity: u32,
) -> PyResult<Connection> {
    let opts = options(
        capacity,
        duplex,
        isolation,
        pure_spin,
        huge_pages,
        mlock,
        direction,
        uid_policy,
        backend,
        handshake_timeout,
    )?
    .connect_timeout(secs("timeout", timeout)?)
    .max_capacity(max_capacity);
    let a = addr_of(addr)?;
    let c = py.detach(|| memtube::connect(a, &opts)).py_err()?;
    Connection::new(py, c)
}

/// The extension module.
#[pymodule]
fn _memtube(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<Listener>()?;
    m.add_class::<Connection>()?;
    m.add_class::<Sender>()?;
    m.add_class::<Receiver>()?;
    m.add_class::<Message>()?;
    m.add_class::<Grant>()?;
    m.add_class::<Stats>()?;
    m.add_class::<PeerCred>()?;
    m.add_function(wrap_pyfunction!(listen, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SLICE", core::SLICE.as_secs_f64())?;
    Ok(())
}
