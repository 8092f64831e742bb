//! The state behind the Python objects: who owns the Rust handles, the one
//! message a receiver may hold, the one reservation a sender may have
//! outstanding, and the sliced waits.
//!
//! Ownership: a Rust [`memtube::Connection`] (or, after `split()`, a
//! [`memtube::Sender`] / [`memtube::Receiver`]) lives in a [`Shared`] slot,
//! an `Arc<Mutex<..>>`. Every Python object that can point into its rings
//! (the connection, its sender and receiver views, a [`Message`], a
//! [`Grant`]) holds a clone of that `Arc`, so the mappings outlive every
//! pointer into them. `close()` empties the slot only when no buffer is
//! exported (else `BufferError`).
//!
//! Locking: the mutex is only ever taken with `try_lock` (contention raises
//! `memtube.Busy`): a thread blocked in `recv` holds it while it waits
//! without the GIL and takes the GIL back between slices, so a thread that
//! holds the GIL must never block on it. Handles are `Send`, not `Sync`, as
//! in Rust: use one thread per handle (`Connection.split()` gives a sender
//! and a receiver that two threads can use at once).
//!
//! [`Message`]: crate::rx::Message
//! [`Grant`]: crate::tx::Grant

use crate::errors::{busy, invalid, to_py, IntoPy};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// A blocking call waits in slices of at most this long without the GIL,
/// and between slices takes the GIL back to run signal handlers
/// (`KeyboardInterrupt`), so Ctrl-C stops it within about this long.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A slot holding a Rust handle, or why it is gone.
pub(crate) enum Slot<T> {
    Open(T),
    Gone(&'static str),
}

/// The shared, lockable slot of a handle.
pub(crate) type Shared<T> = Arc<Mutex<Slot<T>>>;

pub(crate) fn shared<T>(v: T) -> Shared<T> {
    Arc::new(Mutex::new(Slot::Open(v)))
}

/// Lock without blocking (see the module docs): `Busy` when another thread
/// has it. A poisoned lock (a panic inside memtube, reported to Python as a
/// `PanicException`) is taken as is: the state it guards is only ever
/// changed by single, complete assignments.
pub(crate) fn lock<T>(m: &Mutex<T>) -> PyResult<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(busy(
            "this handle is in use by another thread (handles are not shared between \
             threads: use one thread per handle, e.g. Connection.split())",
        )),
    }
}

/// What is known of a message handed to Python (see `rx::Message`).
///
/// `Ordering::Relaxed` on its atomics (and on [`GrantState`]'s): they are
/// read and written with the GIL held, which orders them; the atomics only
/// make the types `Sync`, as pyo3 requires of a class's contents.
#[derive(Default)]
pub(crate) struct MsgState {
    /// Buffers (memoryviews, numpy arrays, DLPack capsules) exported and
    /// not yet released. Changed only with the GIL held.
    pub exports: AtomicUsize,
    /// The message's ring space was released: its bytes are no longer ours.
    pub released: AtomicBool,
}

/// What is known of a reservation handed to Python (see `tx::Grant`).
#[derive(Default)]
pub(crate) struct GrantState {
    /// Buffers exported and not yet released (changed with the GIL held).
    pub exports: AtomicUsize,
    /// Committed or aborted: the bytes are no longer ours to write.
    pub done: AtomicBool,
    /// The `Grant` object was dropped while its sender was busy: the next
    /// operation on the sender drops the reservation (commits nothing).
    pub abandoned: AtomicBool,
}

/// A reservation outstanding on a sender, detached from its borrow.
pub(crate) struct Pending {
    pub grant: memtube::ring::DetachedGrant,
    pub state: Arc<GrantState>,
}

/// An unsplit connection and the binding's state of its two sides.
pub(crate) struct ConnCore {
    pub conn: memtube::Connection,
    /// The message held by the receiver (kept in the ring with `keep`).
    pub held: Option<Arc<MsgState>>,
    /// The reservation outstanding on the sender.
    pub grant: Option<Pending>,
}

/// A sender split from its connection.
pub(crate) struct TxCore {
    pub tx: memtube::Sender,
    pub grant: Option<Pending>,
}

/// A receiver split from its connection.
pub(crate) struct RxCore {
    pub rx: memtube::Receiver,
    pub held: Option<Arc<MsgState>>,
}

/// Where a Python `Sender` finds its Rust sender.
#[derive(Clone)]
pub(crate) enum TxSrc {
    Conn(Shared<ConnCore>),
    Own(Shared<TxCore>),
}

/// Where a Python `Receiver` (and its messages) find the Rust receiver.
#[derive(Clone)]
pub(crate) enum RxSrc {
    Conn(Shared<ConnCore>),
    Own(Shared<RxCore>),
}

pub(crate) enum TxGuard<'a> {
    Conn(MutexGuard<'a, Slot<ConnCore>>),
    Own(MutexGuard<'a, Slot<TxCore>>),
}

pub(crate) enum RxGuard<'a> {
    Conn(MutexGuard<'a, Slot<ConnCore>>),
    Own(MutexGuard<'a, Slot<RxCore>>),
}

/// A sender and its outstanding-reservation slot, borrowed from a guard.
pub(crate) struct TxAccess<'a> {
    pub tx: &'a mut memtube::Sender,
    pub grant: &'a mut Option<Pending>,
}

/// A receiver and its held-message slot, borrowed from a guard.
pub(crate) struct RxAccess<'a> {
    pub rx: &'a mut memtube::Receiver,
    pub held: &'a mut Option<Arc<MsgState>>,
}

fn gone(why: &'static str) -> PyErr {
    invalid(format!("this handle cannot be used: {why}"))
}

impl TxSrc {
    pub fn lock(&self) -> PyResult<TxGuard<'_>> {
        Ok(match self {
            TxSrc::Conn(c) => TxGuard::Conn(lock(c)?),
            TxSrc::Own(t) => TxGuard::Own(lock(t)?),
        })
    }
}

impl RxSrc {
    pub fn lock(&self) -> PyResult<RxGuard<'_>> {
        Ok(match self {
            RxSrc::Conn(c) => RxGuard::Conn(lock(c)?),
            RxSrc::Own(r) => RxGuard::Own(lock(r)?),
        })
    }

    /// Lock if free (for `Drop`, which must not raise nor block).
    pub fn try_lock_quiet(&self) -> Option<RxGuard<'_>> {
        match self {
            RxSrc::Conn(c) => c.try_lock().ok().map(RxGuard::Conn),
            RxSrc::Own(r) => r.try_lock().ok().map(RxGuard::Own),
        }
    }
}

impl TxSrc {
    /// Lock if free (for `Drop`, which must not raise nor block).
    pub fn try_lock_quiet(&self) -> Option<TxGuard<'_>> {
        match self {
            TxSrc::Conn(c) => c.try_lock().ok().map(TxGuard::Conn),
            TxSrc::Own(t) => t.try_lock().ok().map(TxGuard::Own),
        }
    }
}

impl TxGuard<'_> {
    pub fn access(&mut self) -> PyResult<TxAccess<'_>> {
        match self {
            TxGuard::Conn(g) => match &mut **g {
                Slot::Open(c) => Ok(TxAccess {
                    tx: c.conn.sender().py_err()?,
                    grant: &mut c.grant,
                }),
                Slot::Gone(why) => Err(gone(why)),
            },
            TxGuard::Own(g) => match &mut **g {
                Slot::Open(t) => Ok(TxAccess {
                    tx: &mut t.tx,
                    grant: &mut t.grant,
                }),
                Slot::Gone(why) => Err(gone(why)),
            },
        }
    }
}

impl RxGuard<'_> {
    pub fn access(&mut self) -> PyResult<RxAccess<'_>> {
        match self {
            RxGuard::Conn(g) => match &mut **g {
                Slot::Open(c) => Ok(RxAccess {
                    rx: c.conn.receiver().py_err()?,
                    held: &mut c.held,
                }),
                Slot::Gone(why) => Err(gone(why)),
            },
            RxGuard::Own(g) => match &mut **g {
                Slot::Open(r) => Ok(RxAccess {
                    rx: &mut r.rx,
                    held: &mut r.held,
                }),
                Slot::Gone(why) => Err(gone(why)),
            },
        }
    }
}

/// Release the receiver's held message, if any: `Busy` (and nothing
/// released) while buffers of it are exported.
pub(crate) fn release_held(
    rx: &mut memtube::Receiver,
    held: &mut Option<Arc<MsgState>>,
) -> PyResult<()> {
    if let Some(st) = held.as_ref() {
        if st.exports.load(Relaxed) > 0 {
            return Err(busy(
                "the message received before still has exported buffers (a memoryview, \
                 numpy array or DLPack capsule): release them (del / memoryview.release()) \
                 or copy the data (bytes(msg)) before receiving the next message",
            ));
        }
        st.released.store(true, Relaxed);
        *held = None;
        // The kept message is received again and released by the drop.
        drop(rx.try_recv().py_err()?);
    }
    Ok(())
}

/// Refuse while a reservation is outstanding on the sender (a detached
/// grant's contract: no other operation before its commit); a reservation
/// whose `Grant` object is gone is dropped (nothing committed).
pub(crate) fn check_no_grant(grant: &mut Option<Pending>) -> PyResult<()> {
    if let Some(p) = grant.as_ref() {
        if p.state.abandoned.load(Relaxed) {
            p.state.done.store(true, Relaxed);
            *grant = None;
        } else {
            return Err(busy(
                "a reservation (Grant) is outstanding on this sender: commit() or abort() it first",
            ));
        }
    }
    Ok(())
}

/// The time limit of a blocking call. Not `Copy`: a wait loop must keep
/// the one value whose clock started at its first slice.
pub(crate) enum Deadline {
    /// `timeout=0`: do not wait (the non-blocking error: `Empty`, `Full`).
    Now,
    /// A limit whose clock has not started: it starts at the first slice,
    /// so a call that never waits never reads the clock (the polls before
    /// it are bounded: a few microseconds at most).
    After(Duration),
    At(Instant),
    Never,
}

impl Deadline {
    /// From a Python timeout in seconds (`None`: no limit).
    pub fn new(timeout: Option<f64>) -> PyResult<Self> {
        match timeout {
            None => Ok(Deadline::Never),
            Some(t) if t.is_nan() || t < 0.0 => Err(invalid(format!(
                "timeout must be None or >= 0 seconds, not {t}"
            ))),
            Some(0.0) => Ok(Deadline::Now),
            Some(t) => Ok(Duration::try_from_secs_f64(t).map_or(Deadline::Never, Deadline::After)),
        }
    }

    /// The next slice to wait, or the error to raise when time is up
    /// (`now_err` for `timeout=0`, else `Timeout`).
    pub fn slice(&mut self, now_err: memtube::Error) -> PyResult<Duration> {
        if let Deadline::After(d) = *self {
            *self = Instant::now()
                .checked_add(d)
                .map_or(Deadline::Never, Deadline::At);
        }
        match self {
            Deadline::Never => Ok(SLICE),
            Deadline::Now => Err(to_py(now_err)),
            Deadline::After(_) => unreachable!("started above"),
            Deadline::At(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(to_py(memtube::Error::Timeout))
                } else {
                    Ok(left.min(SLICE))
                }
            }
        }
    }
}

/// The result of one slice of waiting (run without the GIL): go on after a
/// timeout (the caller checks signals and its deadline), stop on an error.
pub(crate) fn slice_done(r: memtube::Result<()>) -> PyResult<()> {
    match r {
        Ok(()) | Err(memtube::Error::Timeout) => Ok(()),
        Err(e) => Err(to_py(e)),
    }
}
