//! The ring itself: memtube-ring (the `no_std`, allocation-free SPSC ring)
//! with its `std` feature on, plus [`channel`], a ring that owns its region.
//!
//! Three ways to use it:
//!
//! - **Threads**: [`channel`] allocates the region on the heap and returns
//!   `'static` handles that move into `std::thread::spawn`.
//! - **Memory you own** (a static buffer, an arena, a custom allocator):
//!   [`split`] lays a ring over a `&mut [u8]` and returns handles that
//!   borrow it.
//! - **Memory you mapped yourself** (shared with another process by your own
//!   means): [`init`] once, then [`attach_producer`] in one process and
//!   [`attach_consumer`] in the other, with a [`Wait`] of your choice. To
//!   recover from a process that dies holding a role, attach with
//!   [`attach_producer_as`] / [`attach_consumer_as`] and [`this_process`]:
//!   the other side then learns of the death ([`is_gone`] of
//!   [`Consumer::producer_holder`]), and a restarted process takes the role
//!   over with [`take_over_producer`] / [`take_over_consumer`] and
//!   [`is_gone`] (every message the dead producer published is still
//!   delivered once; a dead consumer's unreleased messages are delivered
//!   again).
//!
//! The wire format is normative and documented in `docs/PROTOCOL.md`; the
//! protocol and trust model are in memtube-ring's crate docs.
//!
//! ```
//! use memtube::ring::{region_size, split, Config, RegionBuf, SpinWait};
//!
//! const CAP: u32 = 4096;
//! let mut region = RegionBuf::<{ region_size(CAP).unwrap() }>::new();
//! let (mut tx, mut rx) = split(region.as_mut_slice(), Config::new(CAP), SpinWait::std())?;
//! let mut grant = tx.try_reserve(8)?; // zero copy: write in place, then commit
//! grant.copy_from_slice(&42u64.to_le_bytes());
//! grant.commit(8, 1);
//! let msg = rx.try_recv()?;
//! assert_eq!((msg.type_id(), msg.payload()), (1, &42u64.to_le_bytes()[..]));
//! # Ok::<(), memtube::ring::Error>(())
//! ```

pub use memtube_ring::*;

mod owned;

pub use owned::{channel, channel_with, NativeWait, OwnedConsumer, OwnedProducer};

#[cfg(any(target_os = "linux", target_os = "macos"))]
/// The [`Holder`] that names this process: its process id and start time,
/// so it never names a later process that reuses the id.
///
/// ```
/// use memtube::ring::{is_gone, this_process};
/// let me = this_process();
/// assert_eq!(me.get() as u32, std::process::id());
/// assert!(!is_gone(me));
/// ```
pub fn this_process() -> Holder {
    memtube_posix::holder::this_process::<crate::Sys>()
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
/// Whether the process a holder from [`this_process`] names can never
/// touch the ring again: it exited (a zombie counts) or its process id now
/// names another process. `false` while it runs and when the system will
/// not tell. Both processes must be in the same pid namespace.
///
/// ```no_run
/// # use memtube::ring::*;
/// # fn demo(region: RawRegion) -> Result<(), Error> {
/// // A restarted producer takes the role from its dead predecessor:
/// // SAFETY: `region` is a mapped, initialized ring that stays mapped.
/// let mut tx = unsafe { take_over_producer(region, NativeWait::default(), this_process(), is_gone)? };
/// tx.send(b"resumed", 1)?;
/// # Ok(()) }
/// ```
pub fn is_gone(holder: Holder) -> bool {
    memtube_posix::holder::is_gone::<crate::Sys>(holder)
}
