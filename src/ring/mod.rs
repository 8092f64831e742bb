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
//!   [`attach_consumer`] in the other, with a [`Wait`] of your choice.
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
