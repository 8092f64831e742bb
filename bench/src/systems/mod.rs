//! The systems measured: each has a main side (which times) and a peer side
//! (which echoes, or sends). Both sides know the run's parameters from the
//! mailbox, so they agree on every count without talking.
//!
//! [`SYSTEMS`] is the one table of them: name, kind, sizes, place in a
//! round, and the code, a [`Bench`] of the family's module:
//! - [`floors`]: the hardware floors (one line, two lines, ring, pair and
//!   record floors) and memcpy on one core;
//! - [`facade`]: memtube's connections (`listen` / `connect`);
//! - [`ring`]: ring-core alone, between two threads or two processes;
//! - [`kernel`]: the kernel paths (unix socket, pipe, eventfd, futex);
//! - [`peers`]: the other libraries, behind cargo features.
//!
//! Adding a system: its main and peer sides in its family's module (a type
//! implementing [`Bench`], or a value of an existing one), and one row in
//! [`SYSTEMS`]. A name is what results compare by (`results.json`,
//! `bench/tools/targets.py`): never change one.

mod facade;
mod floors;
mod kernel;
mod peers;
mod ring;

pub use facade::selfloop_memtube;
pub use ring::selfloop_raw;

use crate::shm::Shm;
use crate::{BoxError, Spin, SIZES, TIMEOUT};
use hdrhistogram::Histogram;
use std::hint::spin_loop;
use std::time::{Duration, Instant};

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Round trips, timed one by one (HDR histogram).
    RoundTrip,
    /// One-way streaming: messages per second.
    Stream,
    /// A sleeping receiver's wake-up: send-to-receipt times.
    Wake,
}

/// How many round trips or messages a run has (`Mode::count` reads the
/// mode's figures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// `Mode::probe` (the level probe).
    Probe,
    /// `Mode::round_trips` divided by this, then by 1 + payload / 2 KiB; at
    /// least 300.
    RoundTrips(u64),
    /// `Mode::round_trips / 40`, at least 300 (the kernel paths).
    Kernel,
    /// `Mode::stream_bytes` of messages, 1000 to 2 million.
    Stream,
    /// Four times `Mode::stream_bytes` of blocks, at least 1000 (memcpy).
    Memcpy,
    /// `Mode::wakes`.
    Wakes,
}

/// The sections of a round, in the order they run. Within a section the
/// systems run in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The floors, each system at all its sizes in turn.
    Floors,
    /// The record floors, size by size (each size: every system).
    RecordFloors,
    /// memtube's round trips next to the other libraries', size by size.
    RoundTrips,
    /// memtube's variants, ring-core alone and the kernel paths, each
    /// system at all its sizes in turn.
    Variants,
    /// The one-way streams, size by size.
    Streams,
    /// memcpy and the wake-ups, each system at all its sizes in turn.
    Last,
}

impl Section {
    const ORDER: [Section; 6] = [
        Section::Floors,
        Section::RecordFloors,
        Section::RoundTrips,
        Section::Variants,
        Section::Streams,
        Section::Last,
    ];

    /// Whether the section runs all its systems at one size before the
    /// next size (A 8, B 8, A 32, B 32 ...), rather than each system at
    /// all its sizes in turn (A 8, A 32, B 8, B 32 ...).
    fn by_size(self) -> bool {
        matches!(
            self,
            Section::RecordFloors | Section::RoundTrips | Section::Streams
        )
    }
}

/// A system's code: both sides of its runs.
pub trait Bench: Sync {
    /// Prepare a run before it is posted (the peer has not started it).
    fn prepare(&self, _ctx: &Ctx, _run: Run) -> Result<(), BoxError> {
        Ok(())
    }

    /// The main side of a run: it measures. `echo_cpu` is the peer's CPU
    /// (for an echo on a thread of this process).
    fn main(&self, ctx: &mut Ctx, run: Run, echo_cpu: Option<usize>) -> Result<Measured, BoxError>;

    /// The peer side of a run (never posted for a system without a peer).
    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError>;
}

/// One row of [`SYSTEMS`].
pub struct System {
    /// The name in tables, JSON and plots: unique per kind, and what old
    /// results compare by.
    pub name: &'static str,
    /// What its runs measure.
    pub kind: Kind,
    /// Where its runs go in a round.
    pub section: Section,
    /// The payload sizes a round runs it at (none: only on demand).
    pub sizes: &'static [usize],
    /// How many round trips or messages a run has.
    pub count: Count,
    /// Whether the peer process takes part (else it stays asleep).
    pub peer: bool,
    /// Whether it moves a word, not a payload (its latency curve is
    /// plotted next to the 32-byte payloads').
    pub word: bool,
    /// Whether this build has it (the other libraries are behind features).
    pub built: bool,
    /// Its code.
    pub bench: &'static dyn Bench,
}

impl System {
    /// A system of both processes, moving a payload, built in, with its
    /// kind's count (the fast round trips', a stream's, the wake-ups').
    const fn new(
        name: &'static str,
        kind: Kind,
        section: Section,
        sizes: &'static [usize],
        bench: &'static dyn Bench,
    ) -> Self {
        System {
            name,
            kind,
            section,
            sizes,
            count: match kind {
                Kind::RoundTrip => Count::RoundTrips(1),
                Kind::Stream => Count::Stream,
                Kind::Wake => Count::Wakes,
            },
            peer: true,
            word: false,
            built: true,
            bench,
        }
    }

    /// Another count.
    const fn count(self, count: Count) -> Self {
        System { count, ..self }
    }

    /// Runs in the main process alone.
    const fn one_process(self) -> Self {
        System {
            peer: false,
            ..self
        }
    }

    /// Moves a word, not a payload.
    const fn word(self) -> Self {
        System { word: true, ..self }
    }

    /// Built only if `built` (a cargo feature).
    const fn built(self, built: bool) -> Self {
        System { built, ..self }
    }
}

/// The large rings' capacity (streams and transfer floors "4 MiB").
const BIG_RING: u32 = 4 * 1024 * 1024;
/// Tachyon's bus size for payloads up to 4 KiB (the "1 MiB ring" stream).
const MIB_RING: u32 = 1024 * 1024;

/// The sizes where the non-temporal copy knob's fixed settings run (below
/// a cache line it has no whole line to write).
const NT_SIZES: [usize; 4] = [256, 1024, 4096, 65536];

/// Names the report compares with.
pub mod names {
    /// The level probe.
    pub const PROBE: &str = "floor probe";
    /// The ring floor of 64 KiB (round trips' `over_ring_floor`).
    pub const RING_FLOOR_64K: &str = "ring floor: 64 KiB";
    /// iceoryx2 (round trips and streams).
    pub const ICEORYX2: &str = "iceoryx2";
    /// Tachyon (round trips and streams).
    pub const TACHYON: &str = "tachyon";
    /// memcpy on one core (streams' `over_memcpy`).
    pub const MEMCPY: &str = "memcpy (one core)";
    /// The transfer floor with ordinary stores (streams' `over_transfer`).
    pub const TRANSFER_PLAIN: &str = "transfer floor: ordinary stores";
    /// The transfer floor with non-temporal stores.
    pub const TRANSFER_NT: &str = "transfer floor: non-temporal stores";
    /// The transfer floors over 4 MiB (the streams named "4 MiB ring"
    /// compare with these).
    pub const TRANSFER_PLAIN_4M: &str = "transfer floor, 4 MiB: ordinary stores";
    /// See [`TRANSFER_PLAIN_4M`].
    pub const TRANSFER_NT_4M: &str = "transfer floor, 4 MiB: non-temporal stores";
    /// The futex round trip and wake-up (wake-ups' `over_futex_wake`).
    pub const FUTEX: &str = "futex";
    /// The single copying stream (the fan-in streams' `over_single_pair`).
    pub const COPY: &str = "memtube copy";
}

/// Every system. The order within a family and a [`Section`] is the order
/// of a round's runs (A B C ... A B C); the families' order is the order of
/// the latency plot's lines.
pub static SYSTEMS: &[System] = &[
    // ------------------------------------------------------------ floors
    // The level probe (one line, short), run before and after each run;
    // first: [`Sys::PROBE`].
    System::new(
        names::PROBE,
        Kind::RoundTrip,
        Section::Floors,
        &[],
        &floors::Floor::Probe,
    )
    .count(Count::Probe)
    .word(),
    // One cache line ping-ponged.
    System::new(
        "floor: one line",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::Floor::One,
    )
    .word(),
    // Ping in one line, pong in another 128 bytes away.
    System::new(
        "floor: two lines",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::Floor::Two,
    )
    .word(),
    // One word per message, each message (ping, then pong) on the next
    // line of 64 KiB.
    System::new(
        names::RING_FLOOR_64K,
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::Floor::Ring64K,
    )
    .word(),
    // The same over 1 KiB (16 lines).
    System::new(
        "ring floor: 1 KiB",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::Floor::Ring1K,
    )
    .word(),
    // The 64 KiB ring floor where each side, before publishing a message,
    // also clears the word its next message will use (memtube's "clear the
    // next header" write): two lines written per message.
    System::new(
        "ring floor + clear-ahead: 64 KiB",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::Floor::RingClear64K,
    )
    .word(),
    // The ring floor over two areas of 64 KiB, one per direction (as
    // memtube's two rings): pings move through one, pongs through the other.
    System::new(
        "ring floor, two areas: 64 KiB each",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::SplitFloor::Ring64K,
    )
    .word(),
    // The ring floor over two areas of 1 KiB (16 lines each), one per
    // direction: whether the 16-line ring floor's speed survives separate
    // areas (as memtube's rings with early wrap have).
    System::new(
        "ring floor, two areas: 1 KiB each",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::SplitFloor::Ring1K,
    )
    .word(),
    // A 32-byte record per message (header word stored last, payload copied
    // by the echo) over 16 lines, both directions interleaved in one area
    // (ping in the first line of a 128-byte pair, pong in the second): what
    // a duplex layout sharing one area could reach.
    System::new(
        "record pair floor: both directions in one area",
        Kind::RoundTrip,
        Section::Floors,
        &[32],
        &floors::PairFloor::Shared,
    ),
    // The same over two areas of 8 lines, one per direction (as memtube's
    // two rings).
    System::new(
        "record pair floor: one area per direction",
        Kind::RoundTrip,
        Section::Floors,
        &[32],
        &floors::PairFloor::Split,
    ),
    // The two-area ring floor where each process's only mapping of the
    // area it reads is read-only (as a memtube consumer's view of the
    // producer's pages with isolation on).
    System::new(
        "ring floor, two areas, read-only reader: 64 KiB each",
        Kind::RoundTrip,
        Section::Floors,
        &[8],
        &floors::SplitFloor::RingRo64K,
    )
    .word(),
    // ring-core's protocol and nothing else (32-byte, 256-byte and 1 KiB
    // messages): each message is a record (header word, payload) at the
    // next position of a 16 KiB area per direction; the writer stores the
    // payload, then the header (Release), and clears ahead (small records)
    // or clears the next header first (larger ones) as ring-core does; the
    // reader waits for the header and reads the payload a word at a time;
    // the echo copies it into its own area. No bookkeeping, no validation,
    // no API: what ring-core's code adds is the difference.
    System::new(
        "record floor: ring-core protocol, minimal code",
        Kind::RoundTrip,
        Section::RecordFloors,
        &[32, 256, 1024],
        &floors::RecordFloor::Rw,
    ),
    // The same where each process's only mapping of the records it reads
    // is read-only, and records are line-padded (each starts a cache line),
    // as a memtube consumer's view and producer's default with isolation on.
    System::new(
        "record floor, read-only reader, line padding",
        Kind::RoundTrip,
        Section::RecordFloors,
        &[32, 256, 1024],
        &floors::RecordFloor::RoPadded,
    ),
    // Blocks moved from the peer's core to the main process's with nothing
    // else: the peer copies each into a slot of an area as large as the
    // streams' ring, the main process reads every byte and hands the slot
    // back (large streams' floor), with ordinary stores ...
    System::new(
        names::TRANSFER_PLAIN,
        Kind::Stream,
        Section::Streams,
        &[4096, 65536],
        &floors::Transfer {
            nontemporal: false,
            area: facade::STREAM_CAPACITY as usize,
        },
    ),
    // ... and with non-temporal stores (x86-64).
    System::new(
        names::TRANSFER_NT,
        Kind::Stream,
        Section::Streams,
        &[4096, 65536],
        &floors::Transfer {
            nontemporal: true,
            area: facade::STREAM_CAPACITY as usize,
        },
    )
    .built(cfg!(target_arch = "x86_64")),
    // The same over 4 MiB, more than a core's private caches hold (the
    // blocks leave the writer's cache before the reader comes).
    System::new(
        names::TRANSFER_PLAIN_4M,
        Kind::Stream,
        Section::Streams,
        &[65536],
        &floors::Transfer {
            nontemporal: false,
            area: BIG_RING as usize,
        },
    ),
    System::new(
        names::TRANSFER_NT_4M,
        Kind::Stream,
        Section::Streams,
        &[65536],
        &floors::Transfer {
            nontemporal: true,
            area: BIG_RING as usize,
        },
    )
    .built(cfg!(target_arch = "x86_64")),
    // memcpy of the payload on one core (no peer).
    System::new(
        names::MEMCPY,
        Kind::Stream,
        Section::Last,
        &[65536],
        &floors::Memcpy,
    )
    .count(Count::Memcpy)
    .one_process(),
    // ------------------------------------------------------------ memtube
    // listen/connect, duplex, pure spin.
    System::new(
        "memtube pure-spin",
        Kind::RoundTrip,
        Section::RoundTrips,
        &SIZES,
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true)),
    ),
    // listen/connect, duplex, default (spin, then sleep).
    System::new(
        "memtube default",
        Kind::RoundTrip,
        Section::RoundTrips,
        &SIZES,
        &facade::RoundTrip::new(|o| o.duplex(true)),
    ),
    // A server with a poll set (default mode) echoing round trips over
    // one of its connections, the others idle: the cost of serving many
    // connections from one wait, next to "memtube default" in each round.
    // Round trips from async handles in a tokio runtime against a blocking
    // echo (readiness on): next to "memtube default" in each round.
    System::new(
        "memtube async (tokio)",
        Kind::RoundTrip,
        Section::RoundTrips,
        &[32],
        &facade::AsyncRoundTrip,
    ),
    System::new(
        "memtube poll set: 1 connection",
        Kind::RoundTrip,
        Section::RoundTrips,
        &[32],
        &facade::PollRoundTrip { connections: 1 },
    ),
    System::new(
        "memtube poll set: 64 connections, 1 active",
        Kind::RoundTrip,
        Section::RoundTrips,
        &[32],
        &facade::PollRoundTrip { connections: 64 },
    ),
    // Pure spin with non-temporal copies off, and on at every size: the
    // two fixed settings of that knob the default is held against.
    System::new(
        "memtube pure-spin, non-temporal copy off",
        Kind::RoundTrip,
        Section::Variants,
        &NT_SIZES,
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true))
            .sender(|tx| tx.set_nontemporal_threshold(u32::MAX)),
    ),
    System::new(
        "memtube pure-spin, non-temporal copy always",
        Kind::RoundTrip,
        Section::Variants,
        &NT_SIZES,
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true))
            .sender(|tx| tx.set_nontemporal_threshold(0)),
    ),
    // The same three over 4 MiB rings (larger than a core's L2: the
    // distance rule's case).
    System::new(
        "memtube pure-spin, 4 MiB rings",
        Kind::RoundTrip,
        Section::Variants,
        &[65536],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true).capacity(BIG_RING)),
    ),
    System::new(
        "memtube pure-spin, 4 MiB rings, non-temporal copy off",
        Kind::RoundTrip,
        Section::Variants,
        &[65536],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true).capacity(BIG_RING))
            .sender(|tx| tx.set_nontemporal_threshold(u32::MAX)),
    ),
    System::new(
        "memtube pure-spin, 4 MiB rings, non-temporal copy always",
        Kind::RoundTrip,
        Section::Variants,
        &[65536],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true).capacity(BIG_RING))
            .sender(|tx| tx.set_nontemporal_threshold(0)),
    ),
    // Pure spin with isolation off (one shared region per ring; line
    // padding and early wrap on, their defaults in duplex connections).
    System::new(
        "memtube pure-spin, isolation off",
        Kind::RoundTrip,
        Section::Variants,
        &[32, 256, 1024],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true).isolation(false)),
    ),
    // The same with line padding off.
    System::new(
        "memtube pure-spin, isolation off, line padding off",
        Kind::RoundTrip,
        Section::Variants,
        &[32],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true).isolation(false))
            .sender(|tx| tx.set_line_padding(false)),
    ),
    // The same with early wrap off (line padding on).
    System::new(
        "memtube pure-spin, isolation off, early wrap off",
        Kind::RoundTrip,
        Section::Variants,
        &[256, 1024],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true).isolation(false))
            .sender(|tx| tx.set_early_wrap(u32::MAX)),
    ),
    // Pure spin (isolation on) with early wrap from 4 KiB.
    System::new(
        "memtube pure-spin, early wrap 4 KiB",
        Kind::RoundTrip,
        Section::Variants,
        &[8, 32, 256, 1024],
        &facade::RoundTrip::new(|o| o.duplex(true).pure_spin(true))
            .sender(|tx| tx.set_early_wrap(4096)),
    ),
    // Pure spin over rings of 64 KiB, the default capacity (the other
    // round-trip rows use 16 KiB rings up to 4 KiB payloads).
    System::new(
        "memtube pure-spin, 64 KiB rings",
        Kind::RoundTrip,
        Section::Variants,
        &[32, 256, 1024],
        &facade::RoundTrip::new(|o| o.capacity(64 * 1024).duplex(true).pure_spin(true)),
    ),
    // Pure spin, isolation off, over rings of 64 KiB.
    System::new(
        "memtube pure-spin, isolation off, 64 KiB rings",
        Kind::RoundTrip,
        Section::Variants,
        &[32, 256, 1024],
        &facade::RoundTrip::new(|o| {
            o.capacity(64 * 1024)
                .duplex(true)
                .pure_spin(true)
                .isolation(false)
        }),
    ),
    // One way: reserve, produce the payload in place (fill), commit.
    System::new(
        "memtube zero-copy",
        Kind::Stream,
        Section::Streams,
        &SIZES,
        &facade::Stream::new(facade::Way::ZeroCopy),
    ),
    // Fan-in: one sender thread over N connections in turn, one poll set
    // receiving (the aggregate rate; the single pair is "memtube copy").
    System::new(
        "memtube poll set fan-in: 2 clients",
        Kind::Stream,
        Section::Streams,
        &[32, 1024],
        &facade::PollStream { clients: 2 },
    ),
    System::new(
        "memtube poll set fan-in: 8 clients",
        Kind::Stream,
        Section::Streams,
        &[32, 1024],
        &facade::PollStream { clients: 8 },
    ),
    System::new(
        "memtube poll set fan-in: 64 clients",
        Kind::Stream,
        Section::Streams,
        &[32, 1024],
        &facade::PollStream { clients: 64 },
    ),
    // One way: `send_blocking` copies the payload in.
    System::new(
        names::COPY,
        Kind::Stream,
        Section::Streams,
        &SIZES,
        &facade::Stream::new(facade::Way::Copy),
    ),
    // The same in pure-spin mode: what the default mode's wake-up check
    // costs a stream (one zero-copy, one copying).
    System::new(
        "memtube zero-copy, pure spin",
        Kind::Stream,
        Section::Streams,
        &[8, 32, 256],
        &facade::Stream::new(facade::Way::ZeroCopy).pure_spin(),
    ),
    System::new(
        "memtube copy, pure spin",
        Kind::Stream,
        Section::Streams,
        &[8, 32, 256],
        &facade::Stream::new(facade::Way::Copy).pure_spin(),
    ),
    // The same with line padding off (on by default with isolation); line
    // padding applies to messages under a cache line only.
    System::new(
        "memtube copy, line padding off",
        Kind::Stream,
        Section::Streams,
        &[8, 32],
        &facade::Stream::new(facade::Way::Copy).sender(|tx| tx.set_line_padding(false)),
    ),
    // The same with non-temporal copies off, and on at every size (the
    // default depends on the machine: `Sender::set_nontemporal_threshold`).
    System::new(
        "memtube copy, non-temporal copy off",
        Kind::Stream,
        Section::Streams,
        &NT_SIZES,
        &facade::Stream::new(facade::Way::Copy).sender(|tx| tx.set_nontemporal_threshold(u32::MAX)),
    ),
    System::new(
        "memtube copy, non-temporal copy always",
        Kind::Stream,
        Section::Streams,
        &NT_SIZES,
        &facade::Stream::new(facade::Way::Copy).sender(|tx| tx.set_nontemporal_threshold(0)),
    ),
    // Copying streams over a 4 MiB ring (against the 4 MiB transfer
    // floors), with the default non-temporal setting and the two fixed
    // ones (the distance rule's case: a ring larger than a core's L2).
    System::new(
        "memtube copy, 4 MiB ring",
        Kind::Stream,
        Section::Streams,
        &[65536],
        &facade::Stream::new(facade::Way::Copy).capacity(BIG_RING),
    ),
    System::new(
        "memtube copy, 4 MiB ring, non-temporal copy off",
        Kind::Stream,
        Section::Streams,
        &[65536],
        &facade::Stream::new(facade::Way::Copy)
            .capacity(BIG_RING)
            .sender(|tx| tx.set_nontemporal_threshold(u32::MAX)),
    ),
    System::new(
        "memtube copy, 4 MiB ring, non-temporal copy always",
        Kind::Stream,
        Section::Streams,
        &[65536],
        &facade::Stream::new(facade::Way::Copy)
            .capacity(BIG_RING)
            .sender(|tx| tx.set_nontemporal_threshold(0)),
    ),
    // Copying streams over a 1 MiB ring: the size of Tachyon's buses for
    // these payloads (its own benchmark's 1 MiB), so that the two compare
    // at one ring size (64 KiB: the 4 MiB ring above; Tachyon's bus holds
    // 64 messages, 8 MiB).
    System::new(
        "memtube copy, 1 MiB ring",
        Kind::Stream,
        Section::Streams,
        &[8, 32, 256, 1024, 4096],
        &facade::Stream::new(facade::Way::Copy).capacity(MIB_RING),
    ),
    // One way: `send_staged`, `publish` every 16 messages.
    System::new(
        "memtube batched",
        Kind::Stream,
        Section::Streams,
        &SIZES,
        &facade::Stream::new(facade::Way::Batch),
    ),
    // Default mode: the receiver sleeps, the sender sends at random
    // intervals.
    System::new(
        "memtube default",
        Kind::Wake,
        Section::Last,
        &[32],
        &facade::Wake,
    ),
    // The same, the receiver awaiting in a tokio runtime (readiness
    // descriptor).
    System::new(
        "memtube async (tokio)",
        Kind::Wake,
        Section::Last,
        &[32],
        &facade::AsyncWake,
    ),
    // ------------------------------------------------------------ ring-core alone
    // `split` between two threads of the main process (pure spin).
    System::new(
        "memtube (ring-core) two threads",
        Kind::RoundTrip,
        Section::Variants,
        &[32],
        &ring::Threads,
    )
    .one_process(),
    // `init`/`attach` over the shared memfd between the two processes (pure
    // spin, one region per ring, no platform wrapper).
    System::new(
        "memtube (ring-core) two processes, raw",
        Kind::RoundTrip,
        Section::Variants,
        &[32],
        &ring::Processes,
    ),
    // ------------------------------------------------------------ kernel paths
    // Unix stream socket pair.
    System::new(
        "unix socket",
        Kind::RoundTrip,
        Section::Variants,
        &[32],
        &kernel::Kernel::Uds,
    )
    .count(Count::Kernel),
    // Two pipes.
    System::new(
        "pipe",
        Kind::RoundTrip,
        Section::Variants,
        &[32],
        &kernel::Kernel::Pipe,
    )
    .count(Count::Kernel),
    // Two eventfds.
    System::new(
        "eventfd",
        Kind::RoundTrip,
        Section::Variants,
        &[8],
        &kernel::Kernel::Eventfd,
    )
    .count(Count::Kernel)
    .word(),
    // Two futex words.
    System::new(
        names::FUTEX,
        Kind::RoundTrip,
        Section::Variants,
        &[8],
        &kernel::Kernel::Futex,
    )
    .count(Count::Kernel)
    .word(),
    // A sleeping receiver woken through one futex word.
    System::new(
        names::FUTEX,
        Kind::Wake,
        Section::Last,
        &[8],
        &kernel::WakeFutex,
    ),
    // ------------------------------------------------------------ other libraries
    // iceoryx2 publish-subscribe, busy polling.
    System::new(
        names::ICEORYX2,
        Kind::RoundTrip,
        Section::RoundTrips,
        &SIZES,
        &peers::Iceoryx2,
    )
    .count(Count::RoundTrips(4))
    .built(cfg!(feature = "iceoryx2")),
    // Tachyon (`tachyon-ipc`), pure spin.
    System::new(
        names::TACHYON,
        Kind::RoundTrip,
        Section::RoundTrips,
        &SIZES,
        &peers::Tachyon,
    )
    .built(cfg!(feature = "tachyon")),
    // iceoryx2 one way: loan, copy in, send.
    System::new(
        names::ICEORYX2,
        Kind::Stream,
        Section::Streams,
        &SIZES,
        &peers::Iceoryx2,
    )
    .built(cfg!(feature = "iceoryx2")),
    // Tachyon one way: `send` (copy in).
    System::new(
        names::TACHYON,
        Kind::Stream,
        Section::Streams,
        &SIZES,
        &peers::Tachyon,
    )
    .built(cfg!(feature = "tachyon")),
];

/// A system: a row of [`SYSTEMS`], ordered as the table (the latency plot's
/// lines follow this order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sys(u16);

impl std::fmt::Debug for Sys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.name(), self.kind())
    }
}

impl Sys {
    /// The level probe, run before and after each run (the first row).
    pub const PROBE: Sys = Sys(0);

    /// Every system, in table order.
    pub fn all() -> impl Iterator<Item = Sys> {
        (0..SYSTEMS.len() as u16).map(Sys)
    }

    /// The system of `kind` called `name`.
    pub fn find(kind: Kind, name: &str) -> Option<Sys> {
        Sys::all().find(|s| s.kind() == kind && s.name() == name)
    }

    /// Its row.
    pub fn row(self) -> &'static System {
        // A `Sys` is only made from an index of the table.
        &SYSTEMS[usize::from(self.0)]
    }

    /// The code sent through the mailbox.
    pub fn code(self) -> u64 {
        u64::from(self.0)
    }

    /// The system of a code.
    pub fn from_code(c: u64) -> Option<Sys> {
        (c < SYSTEMS.len() as u64).then_some(Sys(c as u16))
    }

    /// The name in tables, JSON and plots.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// What the system's runs measure.
    pub fn kind(self) -> Kind {
        self.row().kind
    }

    /// Whether the peer process takes part (else it stays asleep).
    pub fn needs_peer(self) -> bool {
        self.row().peer
    }
}

/// The runs of a round, in order: every system this build has, at its sizes.
pub fn plan() -> Vec<(Sys, usize)> {
    let mut v = Vec::new();
    for section in Section::ORDER {
        let rows: Vec<Sys> = Sys::all()
            .filter(|s| s.row().section == section && s.row().built)
            .collect();
        if section.by_size() {
            let mut sizes: Vec<usize> = rows.iter().flat_map(|s| s.row().sizes).copied().collect();
            sizes.sort_unstable();
            sizes.dedup();
            for len in sizes {
                v.extend(
                    rows.iter()
                        .filter(|s| s.row().sizes.contains(&len))
                        .map(|&s| (s, len)),
                );
            }
        } else {
            for &s in &rows {
                v.extend(s.row().sizes.iter().map(|&len| (s, len)));
            }
        }
    }
    v
}

/// The descriptors both processes hold: created by the main process before
/// the peer starts, inherited by it.
pub struct Fds {
    /// Unix stream socket: this process's end.
    pub uds: rustix::fd::OwnedFd,
    /// Pipe this process reads.
    pub pipe_r: rustix::fd::OwnedFd,
    /// Pipe this process writes.
    pub pipe_w: rustix::fd::OwnedFd,
    /// Eventfd this process reads (the other writes).
    pub ev_r: rustix::fd::OwnedFd,
    /// Eventfd this process writes.
    pub ev_w: rustix::fd::OwnedFd,
}

/// What both sides need: the shared page, the descriptors, the listener
/// address, and the peers' long-lived state.
pub struct Ctx {
    /// The shared page.
    pub shm: Shm,
    /// The kernel-path descriptors.
    pub fds: Fds,
    /// memtube's listener address (abstract socket).
    pub addr: String,
    /// The main process's listener (None in the peer).
    pub listener: Option<memtube::Listener>,
    /// The main process's id (names sockets and services).
    #[cfg_attr(not(any(feature = "iceoryx2", feature = "tachyon")), allow(dead_code))]
    pub main_pid: u32,
    /// iceoryx2's node, created on first use.
    #[cfg(feature = "iceoryx2")]
    pub ice: Option<peers::ice::IceNode>,
}

/// One run's parameters, as posted in the mailbox.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The system.
    pub sys: Sys,
    /// Payload bytes.
    pub len: usize,
    /// Round trips or messages (warm-up included).
    pub count: u64,
    /// The run number.
    pub id: u64,
}

/// What a run's main side measured.
pub enum Measured {
    /// Times in ns.
    Latency(Histogram<u64>),
    /// Messages and the seconds they took.
    Stream {
        /// Messages counted.
        messages: u64,
        /// Seconds from the first to the last.
        seconds: f64,
    },
}

/// Prepare a run before it is posted (the peer has not started it).
pub fn prepare(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    run.sys.row().bench.prepare(ctx, run)
}

/// The main side of a run.
pub fn run_main(ctx: &mut Ctx, run: Run, echo_cpu: Option<usize>) -> Result<Measured, BoxError> {
    run.sys.row().bench.main(ctx, run, echo_cpu)
}

/// The peer side of a run.
pub fn run_peer(ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
    run.sys.row().bench.peer(ctx, run)
}

// ---------------------------------------------------------------- shared by the families

/// A latency run's outcome.
fn lat(h: Result<Histogram<u64>, BoxError>) -> Result<Measured, BoxError> {
    h.map(Measured::Latency)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Time `count` round trips (one clock read per sample: the time between
/// consecutive reads), recording all but the first `count / 10`.
pub fn time_round_trips<F>(count: u64, mut rt: F) -> Result<Histogram<u64>, BoxError>
where
    F: FnMut(u64) -> Result<(), BoxError>,
{
    let warm = count / 10;
    let mut h = histogram();
    let mut prev = Instant::now();
    for s in 0..count {
        rt(s)?;
        let now = Instant::now();
        if s >= warm {
            h.saturating_record((now - prev).as_nanos() as u64);
        }
        prev = now;
    }
    Ok(h)
}

/// Wait until `cond` holds, spinning; error after [`TIMEOUT`].
#[inline]
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), BoxError> {
    let mut spin = Spin::new();
    while !cond() {
        spin_loop();
        if spin.expired() {
            return Err(format!("{what}: no answer within {TIMEOUT:?}").into());
        }
    }
    Ok(())
}

/// Read every byte of a streamed payload in place (a wrapping sum) and
/// check its sequence number.
#[inline]
fn read_all(m: &[u8], n: u64, len: usize) -> Result<u64, BoxError> {
    if m.len() != len || m[..8] != n.to_ne_bytes() {
        let got = m
            .get(..8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])));
        return Err(format!(
            "stream: message {n}: {} bytes (want {len}), sequence {got:?}",
            m.len()
        )
        .into());
    }
    let mut sum = 0u64;
    for w in m.chunks_exact(8) {
        sum = sum.wrapping_add(u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])));
    }
    Ok(sum)
}

/// A small xorshift generator: the wake-ups' random send intervals.
struct Rng(u64);

impl Rng {
    /// The generator of run `id`.
    fn for_run(id: u64) -> Self {
        Rng(0x9e37_79b9_7f4a_7c15 ^ id.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Send intervals: uniform in 1..4 ms.
fn interval(rng: &mut Rng) -> Duration {
    Duration::from_micros(1000 + rng.next() % 3000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_kind() {
        for a in Sys::all() {
            for b in Sys::all().filter(|&b| b != a) {
                assert!(
                    a.kind() != b.kind() || a.name() != b.name(),
                    "two systems named {a:?}"
                );
            }
        }
    }

    #[test]
    fn the_probe_is_the_first_row_and_in_no_round() {
        assert_eq!(Sys::PROBE.name(), names::PROBE);
        assert!(plan().iter().all(|&(s, _)| s != Sys::PROBE));
    }

    /// Every system and size of the published results is still in the
    /// table under the same name and kind, so new results compare with them.
    #[test]
    fn published_systems_keep_their_names_and_sizes() {
        // One folder per machine and run: docs/bench/<machine>-<date>/results.json.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench");
        let mut published = 0;
        for entry in std::fs::read_dir(&dir).expect("docs/bench") {
            let path = entry.expect("entry").path().join("results.json");
            if path.exists() {
                published += 1;
                check_published(&path);
            }
        }
        assert!(published > 0, "no results.json under {}", dir.display());
    }

    fn check_published(path: &std::path::Path) {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let summaries = json["summaries"].as_array().expect("summaries");
        assert!(!summaries.is_empty());
        for s in summaries {
            let name = s["system"].as_str().expect("system");
            let kind = match s["kind"].as_str() {
                Some("round_trip") => Kind::RoundTrip,
                Some("stream") => Kind::Stream,
                Some("wake_up") => Kind::Wake,
                other => panic!("unknown kind {other:?}"),
            };
            let len = s["payload_bytes"].as_u64().expect("payload_bytes") as usize;
            let sys = Sys::find(kind, name).unwrap_or_else(|| {
                panic!(
                    "{}: published {name:?} ({kind:?}) is not in the table",
                    path.display()
                )
            });
            assert!(
                sys.row().sizes.contains(&len),
                "{}: published {sys:?} at {len} B no longer runs",
                path.display()
            );
        }
    }

    #[test]
    fn codes_round_trip() {
        for s in Sys::all() {
            assert_eq!(Sys::from_code(s.code()), Some(s));
        }
        assert_eq!(Sys::from_code(SYSTEMS.len() as u64), None);
        assert_eq!(Sys::from_code(u64::MAX), None);
    }

    #[test]
    fn every_built_sized_system_runs() {
        let plan = plan();
        for s in Sys::all().filter(|s| s.row().built) {
            for &len in s.row().sizes {
                assert_eq!(
                    plan.iter().filter(|&&r| r == (s, len)).count(),
                    1,
                    "{s:?} at {len} B"
                );
            }
        }
        assert_eq!(
            plan.len(),
            Sys::all()
                .filter(|s| s.row().built)
                .map(|s| s.row().sizes.len())
                .sum::<usize>()
        );
    }
}
