//! The exception classes (`memtube.Error` and one subclass per status kind)
//! and the mapping from [`memtube::Error`] to them.
//!
//! The classes are made at import with `type(name, bases, dict)`, because
//! some have two bases (`Timeout` is also a builtin `TimeoutError`,
//! `PermissionDenied` a `PermissionError`, ...), which pyo3's
//! `create_exception!` cannot express. Each has a `status` class attribute:
//! the number of the C ABI's `enum memtube_status` for the same kind.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception kinds, in the order their classes are made (a parent
/// before its children). The discriminant indexes [`CLASSES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Disconnected,
    Empty,
    Full,
    Timeout,
    Closed,
    PeerGone,
    Cancelled,
    TooLarge,
    ReplyTooLarge,
    Corrupt,
    Handshake,
    Protocol,
    PermissionDenied,
    AddrInUse,
    NoListener,
    NotASocket,
    NoSuchHandle,
    Unsupported,
    OsError,
    InvalidArgument,
    Busy,
    BadRegion,
    RoleTaken,
}

struct Spec {
    kind: Kind,
    name: &'static str,
    parent: Kind,
    /// A builtin exception class also inherited from.
    builtin: Option<&'static str>,
    /// The C ABI's status number (`enum memtube_status`); -1: none.
    status: i32,
    doc: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        kind: Kind::Error,
        name: "Error",
        parent: Kind::Error,
        builtin: None,
        status: -1,
        doc: "Base class of every error memtube raises.",
    },
    Spec {
        kind: Kind::Disconnected,
        name: "Disconnected",
        parent: Kind::Error,
        builtin: None,
        status: -1,
        doc: "The peer is finished: it closed (Closed) or died (PeerGone). Nothing more will come.",
    },
    Spec {
        kind: Kind::Empty,
        name: "Empty",
        parent: Kind::Error,
        builtin: None,
        status: 1,
        doc: "No message now (try_recv, or recv with timeout=0).",
    },
    Spec {
        kind: Kind::Full,
        name: "Full",
        parent: Kind::Error,
        builtin: None,
        status: 2,
        doc: "No room in the ring now (try_send / try_reserve, or timeout=0).",
    },
    Spec {
        kind: Kind::Timeout,
        name: "Timeout",
        parent: Kind::Error,
        builtin: Some("TimeoutError"),
        status: 3,
        doc: "A timeout elapsed. Also a builtin TimeoutError.",
    },
    Spec {
        kind: Kind::Closed,
        name: "Closed",
        parent: Kind::Disconnected,
        builtin: None,
        status: 4,
        doc: "The peer closed cleanly; a receiver gets it after every message sent before.",
    },
    Spec {
        kind: Kind::PeerGone,
        name: "PeerGone",
        parent: Kind::Disconnected,
        builtin: None,
        status: 5,
        doc: "The peer process died (or closed its socket without a clean close).",
    },
    Spec {
        kind: Kind::Cancelled,
        name: "Cancelled",
        parent: Kind::Error,
        builtin: None,
        status: 6,
        doc: "Stopped by a cancel token.",
    },
    Spec {
        kind: Kind::TooLarge,
        name: "TooLarge",
        parent: Kind::Error,
        builtin: Some("ValueError"),
        status: 7,
        doc: "The message exceeds the ring's maximum payload (Sender.max_payload). Also a ValueError.",
    },
    Spec {
        kind: Kind::ReplyTooLarge,
        name: "ReplyTooLarge",
        parent: Kind::Error,
        builtin: None,
        status: 8,
        doc: "The server's reply to this call did not fit in the ring (the server keeps serving).",
    },
    Spec {
        kind: Kind::Corrupt,
        name: "Corrupt",
        parent: Kind::Error,
        builtin: None,
        status: 9,
        doc: "The peer wrote invalid ring contents: this ring is poisoned.",
    },
    Spec {
        kind: Kind::Handshake,
        name: "Handshake",
        parent: Kind::Error,
        builtin: None,
        status: 10,
        doc: "The connection handshake was refused (the message says why).",
    },
    Spec {
        kind: Kind::Protocol,
        name: "Protocol",
        parent: Kind::Error,
        builtin: None,
        status: 11,
        doc: "The peer broke the call/serve message protocol.",
    },
    Spec {
        kind: Kind::PermissionDenied,
        name: "PermissionDenied",
        parent: Kind::Error,
        builtin: Some("PermissionError"),
        status: 12,
        doc: "The peer's uid is not allowed by the uid policy. Also a PermissionError.",
    },
    Spec {
        kind: Kind::AddrInUse,
        name: "AddrInUse",
        parent: Kind::Error,
        builtin: None,
        status: 13,
        doc: "A live listener already owns this address.",
    },
    Spec {
        kind: Kind::NoListener,
        name: "NoListener",
        parent: Kind::Error,
        builtin: Some("ConnectionRefusedError"),
        status: 14,
        doc: "Nothing listens at the address. Also a ConnectionRefusedError.",
    },
    Spec {
        kind: Kind::NotASocket,
        name: "NotASocket",
        parent: Kind::Error,
        builtin: None,
        status: 15,
        doc: "The path exists and is not a socket: listen never replaces it.",
    },
    Spec {
        kind: Kind::NoSuchHandle,
        name: "NoSuchHandle",
        parent: Kind::Error,
        builtin: None,
        status: 16,
        doc: "This side of the connection has no such handle (a one-way connection's other side).",
    },
    Spec {
        kind: Kind::Unsupported,
        name: "Unsupported",
        parent: Kind::Error,
        builtin: None,
        status: 17,
        doc: "Not available on this system (abstract names on macOS, huge pages not reserved, ...).",
    },
    Spec {
        kind: Kind::OsError,
        name: "OsError",
        parent: Kind::Error,
        builtin: Some("OSError"),
        status: 18,
        doc: "A system call failed; errno is set. Also an OSError.",
    },
    Spec {
        kind: Kind::InvalidArgument,
        name: "InvalidArgument",
        parent: Kind::Error,
        builtin: Some("ValueError"),
        status: 19,
        doc: "A bad argument or a handle used after close. Also a ValueError.",
    },
    Spec {
        kind: Kind::Busy,
        name: "Busy",
        parent: Kind::Error,
        builtin: None,
        status: 20,
        doc: "The handle is busy: a grant is outstanding, a held message still has exported \
              buffers, or another thread is using it.",
    },
    Spec {
        kind: Kind::BadRegion,
        name: "BadRegion",
        parent: Kind::Error,
        builtin: None,
        status: 21,
        doc: "A shared region was refused (too small, misaligned, bad magic, version or layout).",
    },
    Spec {
        kind: Kind::RoleTaken,
        name: "RoleTaken",
        parent: Kind::Error,
        builtin: None,
        status: 22,
        doc: "The ring's producer or consumer role is already taken.",
    },
];

/// The classes, indexed by `Kind as usize`; made once, at import.
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// Make the classes and add them to the module `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let builtins = PyModule::import(py, "builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(SPECS.len());
    for (i, s) in SPECS.iter().enumerate() {
        debug_assert_eq!(s.kind as usize, i);
        let mut bases: Vec<Bound<'_, PyAny>> = Vec::new();
        if s.kind == Kind::Error {
            bases.push(builtins.getattr("Exception")?);
        } else {
            bases.push(made[s.parent as usize].bind(py).clone().into_any());
        }
        if let Some(b) = s.builtin {
            bases.push(builtins.getattr(b)?);
        }
        let dict = PyDict::new(py);
        dict.set_item("__doc__", s.doc)?;
        dict.set_item("__module__", "memtube")?;
        dict.set_item("status", s.status)?;
        let cls = type_.call1((s.name, PyTuple::new(py, bases)?, dict))?;
        let cls = cls.cast_into::<PyType>()?;
        m.add(s.name, &cls)?;
        made.push(cls.unbind());
    }
    // A second import of the module (subinterpreters are not supported)
    // keeps the first classes.
    let _ = CLASSES.set(py, made);
    Ok(())
}

/// A Python exception of `kind` with message `msg`.
pub(crate) fn err(kind: Kind, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match CLASSES.get(py) {
        Some(c) => PyErr::from_type(c[kind as usize].bind(py).clone(), (msg,)),
        None => PyRuntimeError::new_err(msg),
    })
}

/// `memtube.Busy` with `msg`.
pub(crate) fn busy(msg: &str) -> PyErr {
    err(Kind::Busy, msg.to_string())
}

/// `memtube.InvalidArgument` (a `ValueError`) with `msg`.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    err(Kind::InvalidArgument, msg)
}

/// The kind of a ring error.
fn ring_kind(e: &memtube::ring::Error) -> Kind {
    use memtube::ring::Error as R;
    match e {
        R::Full => Kind::Full,
        R::Empty => Kind::Empty,
        R::Timeout => Kind::Timeout,
        R::Closed => Kind::Closed,
        R::TooLarge { .. } => Kind::TooLarge,
        R::BadCapacity(_) => Kind::InvalidArgument,
        R::RoleTaken => Kind::RoleTaken,
        R::Corrupt(_) => Kind::Corrupt,
        R::RegionTooSmall { .. }
        | R::Misaligned
        | R::BadMagic
        | R::VersionMismatch { .. }
        | R::LayoutMismatch => Kind::BadRegion,
        _ => Kind::Error,
    }
}

/// The Python exception for a memtube error; the message is the error's
/// `Display`.
pub(crate) fn to_py(e: memtube::Error) -> PyErr {
    use memtube::Error as E;
    let msg = e.to_string();
    if let E::Os(errno) = &e {
        // An OSError with errno set: args (errno, strerror).
        let errno = errno.raw_os_error();
        return Python::attach(|py| match CLASSES.get(py) {
            Some(c) => PyErr::from_type(c[Kind::OsError as usize].bind(py).clone(), (errno, msg)),
            None => PyRuntimeError::new_err(msg),
        });
    }
    let kind = match &e {
        E::PeerGone => Kind::PeerGone,
        E::Closed => Kind::Closed,
        E::Timeout => Kind::Timeout,
        E::Full => Kind::Full,
        E::Empty => Kind::Empty,
        E::Handshake(_) => Kind::Handshake,
        E::Ring(r) => ring_kind(r),
        E::PermissionDenied { .. } => Kind::PermissionDenied,
        E::AddrInUse => Kind::AddrInUse,
        // Something memtube did not make is in the way (at the path, or at
        // its lock file name): the same remedy.
        E::NotASocket(_) | E::ForeignLockFile(_) => Kind::NotASocket,
        E::NoListener { .. } => Kind::NoListener,
        E::Cancelled => Kind::Cancelled,
        E::ReplyTooLarge { .. } => Kind::ReplyTooLarge,
        E::HugePagesUnavailable(_) | E::Unsupported(_) => Kind::Unsupported,
        E::Protocol(_) => Kind::Protocol,
        E::NoSuchHandle => Kind::NoSuchHandle,
        E::PathTooLong { .. } => Kind::InvalidArgument,
        _ => Kind::Error,
    };
    err(kind, msg)
}

/// `?` on memtube results in functions returning `PyResult`.
pub(crate) trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for memtube::Result<T> {
    #[inline]
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Whether `e` is (a subclass of) the class of `kind`.
pub(crate) fn is_kind(py: Python<'_>, e: &PyErr, kind: Kind) -> bool {
    CLASSES
        .get(py)
        .is_some_and(|c| e.is_instance(py, c[kind as usize].bind(py)))
}
