//! The handle structs and the one way into each: from a `memtube_sender *`
//! or `memtube_receiver *` to the Rust handle it stands for.
//!
//! A connection (`memtube_connection`, boxed) holds the Rust `Connection`
//! and, beside it, one `memtube_sender` and one `memtube_receiver` whose
//! kind is [`TxKind::Conn`] / [`RxKind::Conn`]: the pointers
//! `memtube_connection_sender` / `_receiver` hand out point at those
//! fields. They hold the connection's root pointer (from `Box::into_raw`),
//! and every access derives a `&mut` of the `conn` field from it for the
//! duration of one call only: the handle field and the `conn` field are
//! disjoint, so the two `&mut` never overlap, and no `&mut` of the whole
//! connection is ever made while a handle pointer is in use (sound under
//! Stacked and Tree Borrows). Owned handles (split, region rings) hold their
//! Rust handle directly.

use crate::error::{Fail, Result};
use mt::ring::{Consumer, DetachedGrant, NativeWait, Producer};
use std::cell::Cell;
use std::ptr::addr_of_mut;

/// A ring producer over a region the caller mapped.
pub(crate) type RingTx = Producer<'static, NativeWait>;
/// A ring consumer over a region the caller mapped.
pub(crate) type RingRx = Consumer<'static, NativeWait>;

/// A connection (opaque), from `memtube_connect` or `memtube_listener_accept`.
pub struct memtube_connection {
    pub(crate) conn: mt::Connection,
    /// The borrowed sender handle (kind `Conn`), valid while the connection is.
    pub(crate) tx: memtube_sender,
    /// The borrowed receiver handle (kind `Conn`).
    pub(crate) rx: memtube_receiver,
    /// Set while `memtube_serve_one` / `memtube_serve` runs a handler: calls
    /// on this connection or its borrowed handles from inside the handler are
    /// refused (BUSY) instead of aliasing the connection being served.
    pub(crate) serving: Cell<bool>,
}

/// What a `memtube_sender` stands for.
pub(crate) enum TxKind {
    /// The sender inside the connection at this root pointer (borrowed).
    Conn(*mut memtube_connection),
    /// A process sender split off a connection (owned).
    Proc(mt::Sender),
    /// A producer over a caller's region (owned).
    Ring(RingTx),
}

/// The writing end of a ring (opaque): borrowed from a connection
/// (`memtube_connection_sender`) or owned (`memtube_connection_split`,
/// `memtube_ring_attach_producer`).
pub struct memtube_sender {
    pub(crate) kind: TxKind,
    /// The reservation handed to C by `memtube_reserve`, until it is
    /// committed or aborted. While it is there, this sender makes no other
    /// reservation, send, commit or publish (the contract of
    /// `commit_detached`): those calls return BUSY.
    pub(crate) grant: Option<DetachedGrant>,
}

/// What a `memtube_receiver` stands for.
pub(crate) enum RxKind {
    /// The receiver inside the connection at this root pointer (borrowed).
    Conn(*mut memtube_connection),
    /// A process receiver split off a connection (owned).
    Proc(mt::Receiver),
    /// A consumer over a caller's region (owned).
    Ring(RingRx),
}

/// The reading end of a ring (opaque): borrowed from a connection
/// (`memtube_connection_receiver`) or owned (`memtube_connection_split`,
/// `memtube_ring_attach_consumer`).
pub struct memtube_receiver {
    pub(crate) kind: RxKind,
    /// A received message (or call reply) is held: kept in place with
    /// `Message::keep`, released by receiving it again and dropping that.
    pub(crate) held: bool,
}

/// A sender, reached.
pub(crate) enum TxRef<'a> {
    Proc(&'a mut mt::Sender),
    Ring(&'a mut RingTx),
}

/// A receiver, reached.
pub(crate) enum RxRef<'a> {
    Proc(&'a mut mt::Receiver),
    Ring(&'a mut RingRx),
}

#[cold]
fn in_handler() -> Fail {
    Fail::Misuse(
        crate::error::memtube_status::MEMTUBE_BUSY,
        "called from inside a serve handler of the same connection",
    )
}

/// The `Connection` of the connection at `root`, for one call.
///
/// # Safety
/// `root` is a live connection (from `Box::into_raw`), used by this thread
/// only, and no other reference to its `conn` field is alive.
#[inline(always)]
pub(crate) unsafe fn conn_of<'a>(root: *mut memtube_connection) -> Result<&'a mut mt::Connection> {
    // SAFETY: `root` is live (the caller's contract); `serving` is a field
    // of its own, read through a shared reference to that field alone.
    if unsafe { (*std::ptr::addr_of!((*root).serving)).get() } {
        return Err(in_handler());
    }
    // SAFETY: the caller's contract; the reference covers the `conn` field
    // only, disjoint from the handle fields the caller may hold.
    Ok(unsafe { &mut *addr_of_mut!((*root).conn) })
}

impl memtube_sender {
    /// The Rust sender and the grant slot.
    ///
    /// # Safety
    /// For a borrowed handle, its connection is live and used by this
    /// thread only (true while the handle pointer is valid, by the ABI's rules).
    #[inline(always)]
    pub(crate) unsafe fn parts(&mut self) -> Result<(TxRef<'_>, &mut Option<DetachedGrant>)> {
        let t = match &mut self.kind {
            // SAFETY: the caller's contract; `self` is the `tx` field, disjoint from `conn`.
            TxKind::Conn(root) => TxRef::Proc(unsafe { conn_of(*root)? }.sender()?),
            TxKind::Proc(s) => TxRef::Proc(s),
            TxKind::Ring(p) => TxRef::Ring(p),
        };
        Ok((t, &mut self.grant))
    }
}

impl memtube_receiver {
    /// The Rust receiver and the held flag.
    ///
    /// # Safety
    /// As for [`memtube_sender::parts`].
    #[inline(always)]
    pub(crate) unsafe fn parts(&mut self) -> Result<(RxRef<'_>, &mut bool)> {
        let r = match &mut self.kind {
            // SAFETY: the caller's contract; `self` is the `rx` field, disjoint from `conn`.
            RxKind::Conn(root) => RxRef::Proc(unsafe { conn_of(*root)? }.receiver()?),
            RxKind::Proc(r) => RxRef::Proc(r),
            RxKind::Ring(c) => RxRef::Ring(c),
        };
        Ok((r, &mut self.held))
    }
}

impl RxRef<'_> {
    /// Release the held message: receive it again (the consumer still has
    /// it ready, without reading shared memory) and drop it.
    #[inline]
    pub(crate) fn release(&mut self) -> Result<()> {
        match self {
            RxRef::Proc(r) => drop(r.try_recv()?),
            RxRef::Ring(c) => drop(c.try_recv()?),
        }
        Ok(())
    }
}

/// `Send` is not derived (raw pointers inside), and C does not need it; the
/// header states the rule: every handle may move between threads, one
/// thread at a time (a borrowed one only with its connection).
const _: () = {
    fn send<T: Send>() {}
    #[allow(dead_code)]
    fn check() {
        send::<mt::Sender>();
        send::<mt::Receiver>();
        send::<mt::Connection>();
        send::<RingTx>();
        send::<RingRx>();
        send::<DetachedGrant>();
    }
};
