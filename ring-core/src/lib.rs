//! A `no_std`, allocation-free, lock-free single-producer single-consumer
//! message ring over a byte region that the caller supplies: a static
//! buffer, an arena, or memory shared between processes.
//!
//! Messages are variable-sized (0 bytes up to [`max_payload`], half the
//! capacity minus 8), carry a `u32` type id, are written in place through a
//! [`Grant`] and read in place through a [`Message`]: zero copies, no
//! serialization, no system call while both sides are busy.
//!
//! # Three ways in
//!
//! - **Threads, memory you own**: [`split`] lays a ring over a `&mut [u8]`
//!   (for example a [`RegionBuf`]) and returns a `Send` [`Producer`] and
//!   [`Consumer`].
//! - **Processes, memory you mapped**: [`init`] in one process, then
//!   [`attach_producer`] / [`attach_consumer`] in each (unsafe: raw pointer
//!   and length). Attaching validates the header and claims the role once.
//!   To survive a process that dies holding a role, attach with
//!   [`attach_producer_as`] / [`attach_consumer_as`], which record a
//!   [`Holder`]: the other side can then ask whether it still exists, and a
//!   successor takes the role over with [`take_over_producer`] /
//!   [`take_over_consumer`] (every published message still delivered once
//!   after a producer's death, at least once after a consumer's).
//! - **Isolation**: [`RawRegion::with_consumer_block`] puts the
//!   consumer-written block in a page of its own, so that a platform shim can
//!   map each side's pages read-only for the other.
//!
//! ```
//! use memtube_ring::{split, Config, RegionBuf, SpinWait, region_size, Error};
//! use std::time::Duration;
//!
//! let mut buf = RegionBuf::<{ region_size(4096).unwrap() }>::new();
//! let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(4096), SpinWait::std()).unwrap();
//! std::thread::scope(|s| {
//!     s.spawn(move || {
//!         for i in 0u32..1000 {
//!             tx.send(&i.to_le_bytes(), 1).unwrap();
//!         }
//!     });
//!     for i in 0u32..1000 {
//!         let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
//!         assert_eq!(m.payload(), &i.to_le_bytes());
//!     }
//!     assert_eq!(rx.recv().err(), Some(Error::Closed));
//! });
//! ```
//!
//! Misuse does not compile. Handles are `Send` but not `Sync`:
//!
//! ```compile_fail
//! fn is_sync<T: Sync>() {}
//! is_sync::<memtube_ring::Producer<'static, memtube_ring::SpinWait>>();
//! ```
//!
//! A grant (or a received message) borrows its handle, so there is at most
//! one at a time, and none outlives the region:
//!
//! ```compile_fail
//! # use memtube_ring::*;
//! let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
//! let (mut tx, _rx) = split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap();
//! let a = tx.try_reserve(8).unwrap();
//! let b = tx.try_reserve(8).unwrap(); // error: second mutable borrow of `tx`
//! a.commit(8, 0);
//! b.commit(8, 0);
//! ```
//!
//! ```compile_fail
//! # use memtube_ring::*;
//! let mut rx = {
//!     let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
//!     split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap().1
//! }; // error: `buf` dropped while borrowed
//! let _ = rx.try_recv();
//! ```
//!
//! # Protocol
//!
//! - **Publication through the record header.** The producer writes the
//!   payload and type id, clears the *next* record's commit word, then stores
//!   this record's commit word with Release. The consumer polls the commit
//!   word at its position with Acquire. A small message costs one cache line
//!   written by one side and read by the other; there is no shared head counter.
//! - **No stale header reads as committed.** The consumer only ever reads a
//!   commit word that the producer cleared (or `init` zeroed) before
//!   publishing the record ahead of it, so bytes of an earlier lap, whatever
//!   they are, are never taken for a header. The cleared word lies in free
//!   space: a reservation needs room for its record *and* the next header.
//!   To keep that store off the critical path, the producer clears the
//!   commit words of the next few cache lines of free space right after a
//!   publication or a staged commit (`clear_ahead`), so a commit normally
//!   finds its successor's word already zero; it forgets those slots
//!   whenever a grant hands their bytes to the user (a dropped grant, the
//!   unused tail of a partial commit). On this machine that took a 32-byte
//!   two-thread round trip from 1.79x to 1.36x the one-line floor
//!   (`examples/pingpong.rs`, before it became two-process). The stores
//!   also take ownership of the next lines before they are needed: the
//!   protocol written out with nothing else (the benchmark's *record
//!   floor*) runs at 0.94-0.95x a ring that advances one line per message.
//!   Only records smaller than a cache line do it: a larger record's
//!   successor overwrites the cleared lines whole, and clearing them only
//!   doubled the stores (256-byte streams ran 30-60% faster without).
//! - **Padding.** A record never straddles the end of the data area: if it
//!   does not fit in the tail, a padding record fills the tail and the record
//!   goes at offset 0.
//! - **Early wrap.** With [`Producer::set_early_wrap`] (off unless set), a
//!   record that would start at or past the set offset goes to offset 0
//!   the same way, after an end padding record, when the producer's copy
//!   of the released position says the ring is nearly empty: at most half
//!   of the bytes before that offset unreleased, and room at offset 0. The
//!   producer refreshes that copy after a publication once per set
//!   offset's worth of bytes of a lap, off the message's path. Round trips
//!   then keep reusing the first few KiB of the ring, whose lines both
//!   cores still hold, instead of moving through all of it; a burst right
//!   after an early wrap meets a full ring sooner. The consumer is
//!   unchanged: end padding from any nonzero offset was always valid.
//! - **Line padding.** With [`Producer::set_line_padding`] (off unless
//!   set), a publishing commit of a whole reservation whose
//!   record is smaller than a cache line, leaving less than the record's
//!   size in its line, puts a padding record after it up to the line's end,
//!   stored before the publication's Release store. The next message, if
//!   alike, starts a line instead of straddling two; the consumer skips the
//!   padding in the line it already holds and then polls the next line's
//!   first word. The plan of a reservation that may publish counts that
//!   padding. Round trips of small messages gain (most with a read-only
//!   consumer mapping); streams of small messages published one by one
//!   lose rate, so it is a setting.
//! - **Non-temporal copies of large payloads.** Copying sends of payloads
//!   of at least [`Producer::set_nontemporal_threshold`] bytes write their
//!   whole cache lines with non-temporal stores on x86-64, then a store
//!   fence, so the Release store that publishes them cannot pass them. The
//!   consumer then reads them from memory instead of fetching every line
//!   from the producer's cache, at about the same speed wherever the two
//!   cores are. Which path is faster depends on the processor, so the
//!   default does too ([`default_nontemporal_threshold`]: 16 KiB on AMD,
//!   and from 2 KiB for copying sends that follow each other back to back,
//!   a stream; off elsewhere), and so does where the two cores are: on AMD,
//!   over a ring larger than the core's L2 cache, the producer times its
//!   reads of the consumer's released position and writes messages of
//!   8 KiB or more with ordinary stores while they say the consumer's core
//!   shares its L3. It is a setting.
//! - **Lazy release.** The consumer stores its released position on its own
//!   line only after [`Consumer::set_release_threshold`] bytes (default: a
//!   quarter of the capacity), when it finds the ring empty (a blocking
//!   receive too, as soon as it starts to wait), and before it sleeps. The
//!   producer reads that line only when its cached copy says the ring is
//!   full, with early wrap once per wrap distance of a lap, and under the
//!   distance rule (above) before a large copy now and then.
//! - **Batching.** [`Grant::commit_staged`] writes a record's commit word
//!   except for the first staged record's; [`Producer::publish`] stores that
//!   one with Release, making the whole batch visible at once.
//! - **No read-modify-write on the hot path.** Only loads, stores and (in the
//!   default sleeping mode) one SeqCst fence per publication or checked release. The
//!   role claim at attach is the only compare-exchange.
//! - **Waiting.** A blocked side polls `spin_budget` times, then announces
//!   sleep by storing a nonzero episode number in its own `sleeping` word,
//!   issues a SeqCst fence, re-checks, and waits on the *peer's* `seq` word
//!   (through [`Wait`]). After publishing (or releasing) a side issues a
//!   SeqCst fence, loads the peer's `sleeping` word and, if it holds an
//!   episode not yet woken, stores that episode into its own `seq` and wakes
//!   it. The two fences make a Dekker pair: either the sleeper's re-check sees
//!   the publication or the publisher sees the announcement, so no wake-up is
//!   lost. (A blocking receive that finds the ring empty stores its released
//!   position at once without this check; the consumer's next release with
//!   the check, which the release threshold, the slow path before sleeping
//!   and the drop all reach, covers it.) Pure-spin mode
//!   ([`Config::pure_spin`]) skips the fence and the load.
//!   Both handles run this one implementation (`src/sleep.rs`).
//!
//! The protocol is model-checked with loom (`src/loom_tests.rs`).
//!
//! # Trust
//!
//! The peer may be buggy, crash at any instruction, or write anything into
//! the region at any time. Every value that decides where ring-core reads or
//! writes is copied out of shared memory once and validated: header fields
//! at attach, each commit word (committed
//! bit, length against the maximum payload, the end of the data area, and
//! the space the producer may have written), padding (must end exactly at
//! the end of the data area from a nonzero offset, or at the end of the
//! cache line it starts inside, not at a line start; only end padding may
//! follow padding), and the consumer's released position (8-aligned, only
//! forward, never past what was published). Whatever the bytes, ring-core
//! reads and writes only inside the region, never panics and never loops
//! without bound; a broken invariant returns [`Error::Corrupt`] and poisons
//! the handle. A reservation that was never committed is never delivered.
//! What a hostile peer *can* do is send well-formed garbage, or change a
//! payload's bytes or a record's type id (read from the header each time it
//! is asked for) while the consumer holds the record.
//!
//! # Region layout (version 3)
//!
//! All fields are native-endian, fixed width, at the offsets below; the
//! region starts 128-byte aligned. Lines written by different sides are
//! separate 128-byte blocks.
//!
//! | offset | size | field | written by |
//! |---|---|---|---|
//! | 0 | 8 | `magic` = `u64::from_le_bytes(*b"MEMTUBE1")`, stored last by init | init |
//! | 8 | 4 | `version` = 3 | init |
//! | 12 | 4 | `flags`: bit 0 pure-spin, bit 1 split layout; other bits 0 | init |
//! | 16 | 4 | `capacity`: data-area bytes, power of two, 64..=2^31 | init |
//! | 20 | 4 | `max_payload` = capacity / 2 − 8 | init |
//! | 24 | 4 | `data_offset` = 640 | init |
//! | 28 | 4 | `consumer_offset` = 384, or 0 with the split layout | init |
//! | 32 | 96 | reserved, zero | |
//! | 128 | 8 | producer: messages published (`u64`) | producer |
//! | 136 | 8 | producer: payload bytes published | producer |
//! | 144 | 8 | producer: times a reservation found the ring full | producer |
//! | 152 | 8 | producer: wake calls made | producer |
//! | 256 | 4 | producer `state`: 0 free, 1 attached, 2 closed | producer (claim: compare-exchange 0→1) |
//! | 260 | 4 | producer `sleeping`: 0 awake, else its sleep episode | producer |
//! | 264 | 4 | producer `seq`: the word the consumer sleeps on | producer |
//! | 268 | 4 | producer `wflags`: bit 0, it wakes lightly (no fence; docs/PROTOCOL.md 3.6) | producer (at attach or take-over) |
//! | 272 | 8 | producer `holder`: who holds the role ([`Holder`]), 0 if not recorded | producer (at attach or take-over) |
//! | C+0 | 4 | consumer `released`: byte position (wrapping `u32`) released | consumer |
//! | C+8 | 8 | consumer: messages released | consumer |
//! | C+16 | 8 | consumer: payload bytes released | consumer |
//! | C+24 | 8 | consumer: wake calls made | consumer |
//! | C+128 | 4 | consumer `state` | consumer |
//! | C+132 | 4 | consumer `sleeping` | consumer |
//! | C+136 | 4 | consumer `seq`: the word the producer sleeps on | consumer |
//! | C+140 | 4 | consumer `wflags` | consumer (at attach or take-over) |
//! | C+144 | 8 | consumer `holder` | consumer (at attach or take-over) |
//! | 640 | capacity | data area | producer |
//!
//! `C` is 384 in the single-region layout; with the split layout the
//! consumer block (256 bytes) is at offset 0 of its own region and bytes
//! 384..640 of the main region are unused. All other bytes of the control
//! block are reserved and zero.
//!
//! **Positions** are byte counts since the start, wrapping at 2^32; a
//! position's offset in the data area is `position & (capacity − 1)`.
//!
//! **Records** start at 8-aligned offsets of the data area:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | commit word: 0 = nothing yet; else bit 0 = committed (must be 1), bit 1 = padding, bits 2..32 = payload length |
//! | 4 | 4 | type id (messages only) |
//! | 8 | len | payload, then unspecified bytes up to the next multiple of 8 |
//!
//! A record occupies `8 + round_up(len, 8)` bytes. A padding record's
//! length is `capacity − offset − 8` (an end pad; it never starts at offset
//! 0) or, from an offset inside a 64-byte line, the rest of that line
//! minus 8 (a line pad). Only an end pad may follow a line pad, and nothing
//! follows an end pad but a message at offset 0. A producer places a record
//! of size `s` at position `h` only if
//! `(h − released) + padding + s + line_padding + 8 <= capacity`, clears
//! the commit word after it (after its line padding, if any), and
//! publishes records in order with Release stores of their commit words. A consumer reads the commit word at its position with
//! Acquire, validates it, delivers or skips it, advances by the record size,
//! and stores its position into `released` with Release (lazily).
//!
//! # Features
//!
//! - `std` (default): `SpinWait::std()` and `Default` for it (std clock, OS
//!   yield). The crate is `#![no_std]` either way; embedded users set
//!   `default-features = false`.
//! - `defmt`: `defmt::Format` on the public types.
//!
//! Positions, commit words and wait words are 32-bit atomics, native
//! everywhere. Only the statistics counters are 64-bit; they come from
//! `portable-atomic`, so targets without native 64-bit atomics
//! (`thumbv7em-none-eabihf`, checked in CI) build. There its fallback is a
//! per-process lock around each counter store: sound within one address space
//! (the usual case on such targets) but not for a monitor in another process,
//! and not for a ring driven from an interrupt handler that can preempt the
//! other side on the same core.

#![no_std]
// Under `--cfg loom` the raw-region entry points are compiled out.
#![cfg_attr(loom, allow(unused, dead_code))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(any(feature = "std", test))]
extern crate std;

mod consumer;
mod copy;
mod data;
mod error;
pub mod handshake;
mod holder;
mod layout;
mod producer;
mod ring;
mod sleep;
mod sync;
mod wait;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use consumer::{Consumer, Message, Peek};
pub use copy::{default_nontemporal_threshold, default_stream_nontemporal_threshold};
pub use error::{Corruption, Error};
pub use holder::Holder;
#[cfg(not(loom))]
pub use holder::{attach_consumer_as, attach_producer_as, take_over_consumer, take_over_producer};
pub use layout::{
    max_payload, region_size, CONSUMER_BLOCK_OFFSET, CONSUMER_BLOCK_SIZE, CONTROL_SIZE,
    DATA_OFFSET, MAGIC, MAX_CAPACITY, MIN_CAPACITY, RECORD_ALIGN, RECORD_HEADER, REGION_ALIGN,
    VERSION,
};
pub use producer::{DetachedGrant, Grant, Producer};
#[cfg(not(loom))]
pub use ring::{attach_consumer, attach_producer, init, split, split_with_consumer_block};
pub use ring::{Config, Monitor, RawRegion, RegionBuf, RoleState, Stats};
pub use sleep::{prepare_sleep, sleep_many, SleepPlan, SleepWord};
pub use wait::{SpinWait, Wait, WAIT_ANY_SLICE};

/// The atomic type of the words that [`Wait`] blocks on.
pub mod atomic {
    pub use crate::sync::AtomicU32;
}

/// Raw layout constants for implementations in other languages and for tests
/// that forge regions: flags, role states and commit-word bits.
pub mod raw {
    pub use crate::layout::{
        CACHE_LINE, COMMITTED, FLAG_PURE_SPIN, FLAG_SPLIT, LEN_SHIFT, PADDING, STATE_ATTACHED,
        STATE_CLOSED, STATE_FREE,
    };
}
