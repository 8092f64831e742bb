//! The systems measured: each has a main side (which times) and a peer side
//! (which echoes, or sends). Both sides know the run's parameters from the
//! mailbox, so they agree on every count without talking.

use crate::shm::{self, Shm};
use crate::{mono_ns, BoxError, Spin, TIMEOUT};
use hdrhistogram::Histogram;
use memtube::{Direction, Options};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::thread::futex;
use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

/// Every system, in the order of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sys {
    /// The level probe (one line, short), run before and after each run.
    Probe,
    /// One cache line ping-ponged.
    FloorOne,
    /// Ping in one line, pong in another 128 bytes away.
    FloorTwo,
    /// One word per message, each message (ping, then pong) on the next line of 64 KiB.
    RingFloor64K,
    /// The same over 1 KiB (16 lines).
    RingFloor1K,
    /// The 64 KiB ring floor where each side, before publishing a message,
    /// also clears the word its next message will use (memtube's
    /// "clear the next header" write): two lines written per message.
    RingFloorClear64K,
    /// The ring floor over two areas of 64 KiB, one per direction (as
    /// memtube's two rings): pings move through one, pongs through the other.
    RingFloorSplit64K,
    /// The ring floor over two areas of 1 KiB (16 lines each), one per
    /// direction: whether the 16-line ring floor's speed survives
    /// separate areas (as memtube's rings with early wrap have).
    RingFloorSplit1K,
    /// A 32-byte record per message (header word stored last, payload
    /// copied by the echo) over 16 lines, both directions interleaved in
    /// one area (ping in the first line of a 128-byte pair, pong in the
    /// second): what a duplex layout sharing one area could reach.
    PairFloorShared,
    /// The same over two areas of 8 lines, one per direction (as memtube's
    /// two rings).
    PairFloorSplit,
    /// The same where each process's only mapping of the area it reads is
    /// read-only (as a memtube consumer's view of the producer's pages with
    /// isolation on).
    RingFloorSplitRo64K,
    /// ring-core's protocol and nothing else (32-byte, 256-byte and 1 KiB
    /// messages): each message is a record (header word, payload) at the
    /// next position of a 16 KiB area per direction; the writer stores the
    /// payload, then the header (Release), and clears ahead (small records)
    /// or clears the next header first (larger ones) as ring-core does; the
    /// reader waits for the header and reads the payload a word at a time;
    /// the echo copies it into its own area. No bookkeeping, no validation,
    /// no API: what ring-core's code adds is the difference.
    RecordFloor,
    /// The same where each process's only mapping of the records it reads
    /// is read-only, and records are line-padded (each starts a cache line),
    /// as a memtube consumer's view and producer's default with isolation on.
    RecordFloorRo,
    /// memtube listen/connect, duplex, pure spin.
    MemtubeSpin,
    /// memtube listen/connect, duplex, default (spin, then sleep).
    MemtubeDefault,
    /// memtube pure spin with isolation off (one shared region per ring;
    /// line padding and early wrap on, their defaults in duplex connections).
    MemtubeSpinNoIso,
    /// As `MemtubeSpinNoIso` with early wrap off.
    MemtubeSpinNoIsoNoWrap,
    /// As `MemtubeSpinNoIso` with line padding off.
    MemtubeSpinNoIsoNoPad,
    /// As `MemtubeSpin` (isolation on) with early wrap from 4 KiB.
    MemtubeSpinWrap,
    /// As `MemtubeSpin`, with non-temporal copies off.
    MemtubeSpinCached,
    /// As `MemtubeSpin` over rings of 64 KiB, the default capacity (the
    /// other round-trip rows use 16 KiB rings up to 4 KiB payloads).
    MemtubeSpin64K,
    /// As `MemtubeSpinNoIso` over rings of 64 KiB.
    MemtubeSpinNoIso64K,
    /// ring-core `split` between two threads of the main process (pure spin).
    MemtubeThreads,
    /// ring-core `init`/`attach` over the shared memfd between the two
    /// processes (pure spin, one region per ring, no platform wrapper).
    RingCoreProcesses,
    /// Unix stream socket pair.
    Uds,
    /// Two pipes.
    Pipe,
    /// Two eventfds.
    Eventfd,
    /// Two futex words.
    Futex,
    /// iceoryx2 publish-subscribe, busy polling.
    Iceoryx2,
    /// Tachyon (`tachyon-ipc`), pure spin.
    Tachyon,
    /// memtube one way: reserve, produce the payload in place (fill), commit.
    StreamZeroCopy,
    /// memtube one way: `send_blocking` copies the payload in.
    StreamCopy,
    /// The same with line padding off (on by default with isolation).
    StreamCopyNoPad,
    /// The same with non-temporal copies off (on from 16 KiB by default).
    StreamCopyCached,
    /// memtube one way: `send_staged`, `publish` every 16 messages.
    StreamBatch,
    /// iceoryx2 one way: loan, copy in, send.
    Iceoryx2Stream,
    /// Tachyon one way: `send` (copy in).
    TachyonStream,
    /// memcpy of the payload on one core (no peer).
    Memcpy,
    /// memtube default mode: the receiver sleeps, the sender sends at random intervals.
    WakeMemtube,
    /// The same over one futex word.
    WakeFutex,
}

/// Every system with its code (index).
pub const ALL: [Sys; 40] = [
    Sys::Probe,
    Sys::FloorOne,
    Sys::FloorTwo,
    Sys::RingFloor64K,
    Sys::RingFloor1K,
    Sys::RingFloorClear64K,
    Sys::RingFloorSplit64K,
    Sys::RingFloorSplit1K,
    Sys::PairFloorShared,
    Sys::PairFloorSplit,
    Sys::RingFloorSplitRo64K,
    Sys::RecordFloor,
    Sys::RecordFloorRo,
    Sys::MemtubeSpin,
    Sys::MemtubeDefault,
    Sys::MemtubeSpinNoIso,
    Sys::MemtubeSpinNoIsoNoWrap,
    Sys::MemtubeSpinNoIsoNoPad,
    Sys::MemtubeSpinWrap,
    Sys::MemtubeSpinCached,
    Sys::MemtubeSpin64K,
    Sys::MemtubeSpinNoIso64K,
    Sys::MemtubeThreads,
    Sys::RingCoreProcesses,
    Sys::Uds,
    Sys::Pipe,
    Sys::Eventfd,
    Sys::Futex,
    Sys::Iceoryx2,
    Sys::Tachyon,
    Sys::StreamZeroCopy,
    Sys::StreamCopy,
    Sys::StreamCopyNoPad,
    Sys::StreamCopyCached,
    Sys::StreamBatch,
    Sys::Iceoryx2Stream,
    Sys::TachyonStream,
    Sys::Memcpy,
    Sys::WakeMemtube,
    Sys::WakeFutex,
];

impl Sys {
    /// The code sent through the mailbox.
    pub fn code(self) -> u64 {
        ALL.iter().position(|&s| s == self).unwrap_or(0) as u64
    }

    /// The system of a code.
    pub fn from_code(c: u64) -> Option<Sys> {
        ALL.get(c as usize).copied()
    }

    /// The name in tables, JSON and plots.
    pub fn name(self) -> &'static str {
        match self {
            Sys::Probe => "floor probe",
            Sys::FloorOne => "floor: one line",
            Sys::FloorTwo => "floor: two lines",
            Sys::RingFloor64K => "ring floor: 64 KiB",
            Sys::RingFloor1K => "ring floor: 1 KiB",
            Sys::RingFloorClear64K => "ring floor + clear-ahead: 64 KiB",
            Sys::RingFloorSplit64K => "ring floor, two areas: 64 KiB each",
            Sys::RingFloorSplit1K => "ring floor, two areas: 1 KiB each",
            Sys::PairFloorShared => "record pair floor: both directions in one area",
            Sys::PairFloorSplit => "record pair floor: one area per direction",
            Sys::RingFloorSplitRo64K => "ring floor, two areas, read-only reader: 64 KiB each",
            Sys::RecordFloor => "record floor: ring-core protocol, minimal code",
            Sys::RecordFloorRo => "record floor, read-only reader, line padding",
            Sys::MemtubeSpin => "memtube pure-spin",
            Sys::MemtubeDefault => "memtube default",
            Sys::MemtubeSpinNoIso => "memtube pure-spin, isolation off",
            Sys::MemtubeSpinNoIsoNoWrap => "memtube pure-spin, isolation off, early wrap off",
            Sys::MemtubeSpinNoIsoNoPad => "memtube pure-spin, isolation off, line padding off",
            Sys::MemtubeSpinWrap => "memtube pure-spin, early wrap 4 KiB",
            Sys::MemtubeSpinCached => "memtube pure-spin, non-temporal copy off",
            Sys::MemtubeSpin64K => "memtube pure-spin, 64 KiB rings",
            Sys::MemtubeSpinNoIso64K => "memtube pure-spin, isolation off, 64 KiB rings",
            Sys::MemtubeThreads => "memtube (ring-core) two threads",
            Sys::RingCoreProcesses => "memtube (ring-core) two processes, raw",
            Sys::Uds => "unix socket",
            Sys::Pipe => "pipe",
            Sys::Eventfd => "eventfd",
            Sys::Futex => "futex",
            Sys::Iceoryx2 => "iceoryx2",
            Sys::Tachyon => "tachyon",
            Sys::StreamZeroCopy => "memtube zero-copy",
            Sys::StreamCopy => "memtube copy",
            Sys::StreamCopyNoPad => "memtube copy, line padding off",
            Sys::StreamCopyCached => "memtube copy, non-temporal copy off",
            Sys::StreamBatch => "memtube batched",
            Sys::Iceoryx2Stream => "iceoryx2",
            Sys::TachyonStream => "tachyon",
            Sys::Memcpy => "memcpy (one core)",
            Sys::WakeMemtube => "memtube default",
            Sys::WakeFutex => "futex",
        }
    }

    /// What the system's runs measure.
    pub fn kind(self) -> Kind {
        match self {
            Sys::StreamZeroCopy
            | Sys::StreamCopy
            | Sys::StreamCopyNoPad
            | Sys::StreamCopyCached
            | Sys::StreamBatch
            | Sys::Iceoryx2Stream
            | Sys::TachyonStream
            | Sys::Memcpy => Kind::Stream,
            Sys::WakeMemtube | Sys::WakeFutex => Kind::Wake,
            _ => Kind::RoundTrip,
        }
    }

    /// Whether the peer process takes part (else it stays asleep).
    pub fn needs_peer(self) -> bool {
        !matches!(self, Sys::MemtubeThreads | Sys::Memcpy)
    }
}

/// Fixed payload of the systems that move a word, not a payload.
pub fn fixed_len(sys: Sys) -> Option<usize> {
    match sys {
        Sys::Probe
        | Sys::FloorOne
        | Sys::FloorTwo
        | Sys::RingFloor64K
        | Sys::RingFloor1K
        | Sys::RingFloorClear64K
        | Sys::RingFloorSplit64K
        | Sys::RingFloorSplit1K
        | Sys::RingFloorSplitRo64K
        | Sys::Eventfd
        | Sys::Futex => Some(8),
        _ => None,
    }
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
    pub ice: Option<crate::peers::ice::IceNode>,
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

/// The data-area bytes of the memtube rings for `len`-byte payloads.
pub fn ring_capacity(len: usize) -> u32 {
    if len <= 4096 {
        16 * 1024
    } else {
        256 * 1024
    }
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

// ---------------------------------------------------------------- floors

/// The line of message `m` of a ring floor over `lines` 64-byte lines at
/// `off`: every message (ping `2s`, pong `2s + 1`) moves on to the next line,
/// as in a ring that advances per message. A line's previous value is from
/// an earlier lap (smaller), never the awaited one.
fn ring_line(shm: &Shm, off: usize, lines: usize, s: u64) -> &AtomicU64 {
    shm.u64(off + (s as usize % lines) * 64)
}

/// The two-area ring floor's lines for exchange `s`: (the line this process
/// writes, the line it reads), in the read-write areas or, for the
/// read-only variant, in its own area and through its read-only mapping of
/// the peer's. `main` says which process asks.
fn split_lines(shm: &Shm, sys: Sys, s: u64, main: bool) -> (&AtomicU64, &AtomicU64) {
    let lines = if sys == Sys::RingFloorSplit1K {
        16
    } else {
        shm::AREA / 64
    };
    let at = (s as usize % lines) * 64;
    if sys == Sys::RingFloorSplitRo64K {
        (shm.own_u64(at), shm.other_u64(at))
    } else if main {
        (shm.u64(shm::SPLIT_A + at), shm.u64(shm::SPLIT_B + at))
    } else {
        (shm.u64(shm::SPLIT_B + at), shm.u64(shm::SPLIT_A + at))
    }
}

/// The value of exchange `s` of run `id`: never a value of an earlier run,
/// so the areas need no reset (the read-only variant's reader could not).
fn split_value(id: u64, s: u64) -> u64 {
    (id << 32) | (s + 1)
}

fn split_floor_main(shm: &Shm, sys: Sys, count: u64, id: u64) -> Result<Histogram<u64>, BoxError> {
    time_round_trips(count, |s| {
        let (ping, pong) = split_lines(shm, sys, s, true);
        ping.store(split_value(id, s), Ordering::Release);
        wait_for("two-area ring floor", || {
            pong.load(Ordering::Acquire) == split_value(id, s)
        })
    })
}

fn split_floor_peer(shm: &Shm, sys: Sys, count: u64, id: u64) -> Result<(), BoxError> {
    for s in 0..count {
        let (pong, ping) = split_lines(shm, sys, s, false);
        wait_for("two-area ring floor echo", || {
            ping.load(Ordering::Acquire) == split_value(id, s)
        })?;
        pong.store(split_value(id, s), Ordering::Release);
    }
    Ok(())
}

/// The record pair floor's lines for exchange `s` (32-byte records, eight
/// per direction): (the line this process writes, the line it reads).
fn pair_lines(sys: Sys, s: u64, main: bool) -> (usize, usize) {
    let k = (s % 8) as usize;
    let (mine, theirs) = if sys == Sys::PairFloorShared {
        // One area: ping at 128k, pong at 128k + 64.
        let ping = shm::SPLIT_A + 128 * k;
        (ping, ping + 64)
    } else {
        (shm::SPLIT_A + 64 * k, shm::SPLIT_B + 64 * k)
    };
    if main {
        (mine, theirs)
    } else {
        (theirs, mine)
    }
}

/// Words of a record pair floor record after its header word (32 bytes).
const PAIR_WORDS: usize = 4;

fn pair_floor_main(shm: &Shm, run: Run) -> Result<Histogram<u64>, BoxError> {
    time_round_trips(run.count, |s| {
        let (out, inc) = pair_lines(run.sys, s, true);
        let tag = split_value(run.id, s);
        for w in 1..=PAIR_WORDS {
            shm.u64(out + 8 * w).store(tag, Ordering::Relaxed);
        }
        shm.u64(out).store(tag, Ordering::Release);
        wait_for("record pair floor", || {
            shm.u64(inc).load(Ordering::Acquire) == tag
        })?;
        if shm.u64(inc + 8).load(Ordering::Relaxed) != tag {
            return Err("record pair floor: echo mismatch".into());
        }
        Ok(())
    })
}

fn pair_floor_peer(shm: &Shm, run: Run) -> Result<(), BoxError> {
    for s in 0..run.count {
        let (out, inc) = pair_lines(run.sys, s, false);
        let tag = split_value(run.id, s);
        wait_for("record pair floor echo", || {
            shm.u64(inc).load(Ordering::Acquire) == tag
        })?;
        for w in 1..=PAIR_WORDS {
            let v = shm.u64(inc + 8 * w).load(Ordering::Relaxed);
            shm.u64(out + 8 * w).store(v, Ordering::Relaxed);
        }
        shm.u64(out).store(tag, Ordering::Release);
    }
    Ok(())
}

/// Bytes of the record floor's area per direction (as ring-core's raw rings).
const RECORD_AREA: usize = 16 * 1024;
/// The largest record floor payload (bytes).
const RECORD_MAX: usize = 1024;

/// Where a record floor's records go.
#[derive(Clone, Copy)]
enum RecordArea {
    /// At this offset of the read-write mapping.
    Rw(usize),
    /// This process's area of the read-only variant (read-write here).
    Own,
    /// The peer's area of the read-only variant, through this process's
    /// only (read-only) mapping of it: loads only.
    Other,
}

impl RecordArea {
    /// Bytes from one record of a `len`-byte payload to the next: the
    /// record (an 8-byte header word, then the payload), packed in the
    /// read-write variant; in the read-only one, a record smaller than a
    /// line is line-padded (it starts a cache line, a padding word follows
    /// it), as ring-core's producer does by default in the split layout of
    /// isolation.
    fn stride(self, len: usize) -> usize {
        let rec = 8 + len;
        match self {
            RecordArea::Own | RecordArea::Other if rec < 64 => 64,
            _ => rec,
        }
    }

    /// Records per lap (the rest of the area stays unused).
    fn per_lap(self, len: usize) -> u64 {
        (RECORD_AREA / self.stride(len)) as u64
    }

    /// Bytes of a lap.
    fn lap(self, len: usize) -> u64 {
        self.per_lap(len) * self.stride(len) as u64
    }

    fn word(self, shm: &Shm, off: usize) -> &AtomicU64 {
        match self {
            RecordArea::Rw(area) => shm.u64(area + off),
            RecordArea::Own => shm.own_u64(off),
            RecordArea::Other => shm.other_u64(off),
        }
    }

    /// A pointer to byte `off` of the area (8-aligned; read-only for the
    /// peer's area of the read-only variant: a source of copies only).
    fn ptr(self, shm: &Shm, off: usize) -> *mut u8 {
        self.word(shm, off).as_ptr().cast()
    }

    /// The offset of record `s` (its header word; the payload follows).
    fn record(self, s: u64, len: usize) -> usize {
        (s % self.per_lap(len)) as usize * self.stride(len)
    }
}

/// The areas a record floor process writes and reads.
fn record_areas(sys: Sys, main: bool) -> (RecordArea, RecordArea) {
    match (sys, main) {
        (Sys::RecordFloorRo, _) => (RecordArea::Own, RecordArea::Other),
        (_, true) => (RecordArea::Rw(shm::SPLIT_A), RecordArea::Rw(shm::SPLIT_B)),
        (_, false) => (RecordArea::Rw(shm::SPLIT_B), RecordArea::Rw(shm::SPLIT_A)),
    }
}

/// The writer of a record floor area: ring-core's protocol with nothing
/// else. A record's header word is stored (Release) after its payload. After
/// a record smaller than a line, when fewer than 64 bytes past it are known
/// zero, the writer zeroes up to the cache line boundary 256 bytes ahead
/// (ring-core's clear-ahead, which takes ownership of the next lines before
/// they are needed); a larger record only gets its successor's header word
/// zeroed before its own header is stored (as ring-core's commit does when
/// nothing is cleared ahead). Header words are tagged with the run and the
/// message (unique), so no area needs a reset before a run.
struct RecordWriter<'s> {
    shm: &'s Shm,
    area: RecordArea,
    /// Payload bytes of every record (a multiple of 8, at most `RECORD_MAX`).
    len: usize,
    /// Position (bytes, counting laps) up to which the area is zero ahead.
    zeroed: u64,
}

impl<'s> RecordWriter<'s> {
    fn new(shm: &'s Shm, area: RecordArea, len: usize) -> Self {
        assert!(len % 8 == 0 && (8..=RECORD_MAX).contains(&len));
        RecordWriter {
            shm,
            area,
            len,
            zeroed: 0,
        }
    }

    /// Copy `len` payload bytes from `src` into record `s` and publish it
    /// with `header`, as ring-core's `send` (one memcpy).
    ///
    /// # Safety
    /// `src` is valid for `len` bytes, outside this writer's area.
    unsafe fn send(&mut self, s: u64, src: *const u8, header: u64) {
        let (len, area) = (self.len, self.area);
        let at = area.record(s, len);
        // SAFETY: the record lies inside the area (`per_lap` records of
        // `stride` bytes fit), which only this writer writes, and the peer
        // reads a record only after its header's Release store below;
        // `src` is valid and elsewhere (the caller).
        unsafe { std::ptr::copy_nonoverlapping(src, area.ptr(self.shm, at + 8), len) };
        let rec = 8 + len;
        let stride = area.stride(len);
        if stride > rec {
            // The line padding word after the record (ring-core's reader
            // reads it from the line it already holds; this one skips it).
            area.word(self.shm, at + rec).store(1, Ordering::Relaxed);
        }
        // Records fill each lap exactly: record `s` ends at `(s + 1) * stride`.
        let head = (s + 1) * stride as u64;
        if rec >= 64 {
            let next = (head % area.lap(len)) as usize;
            area.word(self.shm, next).store(0, Ordering::Relaxed);
            area.word(self.shm, at).store(header, Ordering::Release);
            return;
        }
        area.word(self.shm, at).store(header, Ordering::Release);
        if self.zeroed.saturating_sub(head) >= 64 {
            return;
        }
        let target = (head + 256) & !63;
        self.zeroed = self.zeroed.max(head);
        while self.zeroed < target {
            let off = (self.zeroed % area.lap(len)) as usize;
            area.word(self.shm, off).store(0, Ordering::Relaxed);
            self.zeroed += 8;
        }
    }
}

/// Wait for record `s` (header `tag`) of `len` payload bytes in `area`;
/// returns the offset of its payload.
fn record_wait(
    shm: &Shm,
    area: RecordArea,
    s: u64,
    len: usize,
    tag: u64,
) -> Result<usize, BoxError> {
    let at = area.record(s, len);
    let h = area.word(shm, at);
    wait_for("record floor", || h.load(Ordering::Acquire) == tag)?;
    Ok(at + 8)
}

/// The main side, as the memtube round trip's: it copies a payload (its
/// first word the tag) in, and checks the first word of the echo in place.
fn record_floor_main(shm: &Shm, run: Run) -> Result<Histogram<u64>, BoxError> {
    let (out, inc) = record_areas(run.sys, true);
    let mut w = RecordWriter::new(shm, out, run.len);
    let mut payload = vec![0xa5u8; run.len];
    time_round_trips(run.count, |s| {
        let tag = split_value(run.id, s);
        payload[..8].copy_from_slice(&tag.to_ne_bytes());
        // SAFETY: `payload` holds `run.len` bytes, in this process's heap.
        unsafe { w.send(s, payload.as_ptr(), tag) };
        let at = record_wait(shm, inc, s, run.len, tag)?;
        if inc.word(shm, at).load(Ordering::Relaxed) != tag {
            return Err("record floor: echo mismatch".into());
        }
        Ok(())
    })
}

/// The echo, as the memtube round trip's: one copy from the incoming record
/// into the outgoing one.
fn record_floor_peer(shm: &Shm, run: Run) -> Result<(), BoxError> {
    let (out, inc) = record_areas(run.sys, false);
    let mut w = RecordWriter::new(shm, out, run.len);
    for s in 0..run.count {
        let tag = split_value(run.id, s);
        let at = record_wait(shm, inc, s, run.len, tag)?;
        // SAFETY: the incoming record's `run.len` payload bytes lie in the
        // other area, published (the Acquire load of its header) and not
        // written until the main side's next lap.
        unsafe { w.send(s, inc.ptr(shm, at), tag) };
    }
    Ok(())
}

/// The floors' main side: one exchange of one word, request `2s+1`, answer `2s+2`.
fn floor_main(shm: &Shm, sys: Sys, count: u64) -> Result<Histogram<u64>, BoxError> {
    match sys {
        Sys::Probe | Sys::FloorOne => {
            let line = shm.u64(if sys == Sys::Probe {
                shm::PROBE_LINE
            } else {
                shm::ONE_LINE
            });
            time_round_trips(count, |s| {
                line.store(2 * s + 1, Ordering::Release);
                wait_for("floor", || line.load(Ordering::Acquire) == 2 * s + 2)
            })
        }
        Sys::FloorTwo => {
            let (ping, pong) = (shm.u64(shm::TWO_PING), shm.u64(shm::TWO_PONG));
            time_round_trips(count, |s| {
                ping.store(s + 1, Ordering::Release);
                wait_for("two-line floor", || pong.load(Ordering::Acquire) == s + 1)
            })
        }
        _ => {
            let (off, lines) = ring_area(sys);
            let clear = sys == Sys::RingFloorClear64K;
            time_round_trips(count, |s| {
                let (ping, pong) = (
                    ring_line(shm, off, lines, 2 * s),
                    ring_line(shm, off, lines, 2 * s + 1),
                );
                if clear {
                    ring_line(shm, off, lines, 2 * s + 2).store(0, Ordering::Relaxed);
                }
                ping.store(s + 1, Ordering::Release);
                wait_for("ring floor", || pong.load(Ordering::Acquire) == s + 1)
            })
        }
    }
}

fn ring_area(sys: Sys) -> (usize, usize) {
    if sys != Sys::RingFloor1K {
        (shm::RING64, 1024)
    } else {
        (shm::RING1K, 16)
    }
}

/// Zero the words of a floor before its run (the peer has not started).
fn floor_reset(shm: &Shm, sys: Sys) {
    match sys {
        Sys::Probe => shm.u64(shm::PROBE_LINE).store(0, Ordering::Relaxed),
        Sys::FloorOne => shm.u64(shm::ONE_LINE).store(0, Ordering::Relaxed),
        Sys::FloorTwo => {
            shm.u64(shm::TWO_PING).store(0, Ordering::Relaxed);
            shm.u64(shm::TWO_PONG).store(0, Ordering::Relaxed);
        }
        _ => {
            let (off, lines) = ring_area(sys);
            for i in 0..lines as u64 {
                ring_line(shm, off, lines, i).store(0, Ordering::Relaxed);
            }
        }
    }
}

fn floor_peer(shm: &Shm, sys: Sys, count: u64) -> Result<(), BoxError> {
    match sys {
        Sys::Probe | Sys::FloorOne => {
            let line = shm.u64(if sys == Sys::Probe {
                shm::PROBE_LINE
            } else {
                shm::ONE_LINE
            });
            for s in 0..count {
                wait_for("floor echo", || line.load(Ordering::Acquire) == 2 * s + 1)?;
                line.store(2 * s + 2, Ordering::Release);
            }
        }
        Sys::FloorTwo => {
            let (ping, pong) = (shm.u64(shm::TWO_PING), shm.u64(shm::TWO_PONG));
            for s in 0..count {
                wait_for("two-line echo", || ping.load(Ordering::Acquire) == s + 1)?;
                pong.store(s + 1, Ordering::Release);
            }
        }
        _ => {
            let (off, lines) = ring_area(sys);
            let clear = sys == Sys::RingFloorClear64K;
            for s in 0..count {
                let (ping, pong) = (
                    ring_line(shm, off, lines, 2 * s),
                    ring_line(shm, off, lines, 2 * s + 1),
                );
                wait_for("ring floor echo", || ping.load(Ordering::Acquire) == s + 1)?;
                if clear {
                    ring_line(shm, off, lines, 2 * s + 3).store(0, Ordering::Relaxed);
                }
                pong.store(s + 1, Ordering::Release);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- memtube

/// The options of a memtube run (both sides pass the same).
fn memtube_options(sys: Sys, len: usize) -> Options {
    let o = Options::new().capacity(ring_capacity(len));
    match sys {
        Sys::MemtubeSpin => o.duplex(true).pure_spin(true),
        Sys::MemtubeDefault => o.duplex(true),
        Sys::MemtubeSpinNoIso => o.duplex(true).pure_spin(true).isolation(false),
        Sys::MemtubeSpinNoIsoNoWrap | Sys::MemtubeSpinNoIsoNoPad => {
            o.duplex(true).pure_spin(true).isolation(false)
        }
        Sys::MemtubeSpinWrap => o.duplex(true).pure_spin(true),
        Sys::MemtubeSpinCached => o.duplex(true).pure_spin(true),
        Sys::MemtubeSpin64K => o.capacity(64 * 1024).duplex(true).pure_spin(true),
        Sys::MemtubeSpinNoIso64K => o
            .capacity(64 * 1024)
            .duplex(true)
            .pure_spin(true)
            .isolation(false),
        Sys::WakeMemtube => o
            .capacity(16 * 1024)
            .direction(Direction::ConnectorToListener),
        _ => o
            .capacity(256 * 1024)
            .direction(Direction::ConnectorToListener),
    }
}

/// The sender settings of a round-trip variant (both sides apply them).
fn configure_sender(sys: Sys, tx: &mut memtube::Sender) {
    match sys {
        Sys::MemtubeSpinCached => tx.set_nontemporal_threshold(u32::MAX),
        Sys::MemtubeSpinNoIsoNoWrap => tx.set_early_wrap(u32::MAX),
        Sys::MemtubeSpinNoIsoNoPad => tx.set_line_padding(false),
        Sys::MemtubeSpinWrap => tx.set_early_wrap(4096),
        _ => {}
    }
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_rt_main(ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let conn = listener.accept_with(Some(TIMEOUT), &memtube_options(run.sys, run.len))?;
    let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
        return Err("duplex connection without two rings".into());
    };
    configure_sender(run.sys, &mut tx);
    let mut payload = vec![0xa5u8; run.len];
    time_round_trips(run.count, |s| {
        payload[..8].copy_from_slice(&s.to_ne_bytes());
        tx.send_blocking(&payload, 7, Some(TIMEOUT))?;
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        if m.len() != run.len || m[..8] != s.to_ne_bytes() {
            return Err(format!("memtube echo mismatch at {s}").into());
        }
        Ok(())
    })
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_rt_peer(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let conn = memtube::connect(ctx.addr.as_str(), &memtube_options(run.sys, run.len))?;
    let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
        return Err("duplex connection without two rings".into());
    };
    configure_sender(run.sys, &mut tx);
    for _ in 0..run.count {
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        tx.send_blocking(&m, m.type_id(), Some(TIMEOUT))?;
    }
    Ok(())
}

/// ring-core between two threads of this process (the peer process sleeps):
/// what the process version adds is the difference.
fn memtube_threads(run: Run, echo_cpu: Option<usize>) -> Result<Histogram<u64>, BoxError> {
    use memtube::{region_size, split, Config, RegionBuf, SpinWait};
    const CAP: u32 = 16 * 1024;
    const SIZE: usize = match region_size(CAP) {
        Some(n) => n,
        None => panic!("capacity"),
    };
    let mut a = Box::new(RegionBuf::<SIZE>::new());
    let mut b = Box::new(RegionBuf::<SIZE>::new());
    let cfg = Config::new(CAP).pure_spin(true);
    let (mut ping_tx, mut ping_rx) = split(a.as_mut_slice(), cfg, SpinWait::std())?;
    let (mut pong_tx, mut pong_rx) = split(b.as_mut_slice(), cfg, SpinWait::std())?;
    let count = run.count;
    std::thread::scope(|sc| {
        let echo = sc.spawn(move || -> Result<(), memtube::Error> {
            if let Some(c) = echo_cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            for _ in 0..count {
                let m = ping_rx.recv_blocking(Some(TIMEOUT))?;
                pong_tx.send_blocking(&m, m.type_id(), Some(TIMEOUT))?;
            }
            Ok(())
        });
        let mut payload = vec![0xa5u8; run.len];
        let h = time_round_trips(count, |s| {
            payload[..8].copy_from_slice(&s.to_ne_bytes());
            ping_tx.send_blocking(&payload, 7, Some(TIMEOUT))?;
            let m = pong_rx.recv_blocking(Some(TIMEOUT))?;
            if m[..8] != s.to_ne_bytes() {
                return Err("thread echo mismatch".into());
            }
            Ok(())
        });
        let e = echo.join().map_err(|_| "echo thread panicked")?;
        e?;
        h
    })
}

fn memtube_stream_main(ctx: &Ctx, run: Run) -> Result<Measured, BoxError> {
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let mut conn = listener.accept_with(Some(TIMEOUT), &memtube_options(run.sys, run.len))?;
    let rx = conn.receiver()?;
    let mut start = None;
    let mut sum = 0u64;
    for n in 0..run.count {
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        start.get_or_insert_with(Instant::now);
        sum = sum.wrapping_add(read_all(&m, n, run.len)?);
    }
    black_box(sum);
    let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(Measured::Stream {
        messages: run.count - 1,
        seconds,
    })
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

fn memtube_stream_peer(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let mut conn = memtube::connect(ctx.addr.as_str(), &memtube_options(run.sys, run.len))?;
    let tx = conn.sender()?;
    let mut payload = vec![0x5au8; run.len];
    match run.sys {
        Sys::StreamZeroCopy => {
            for n in 0..run.count {
                let mut g = tx.reserve_blocking(run.len, Some(TIMEOUT))?;
                g[..8].copy_from_slice(&n.to_ne_bytes());
                g[8..run.len].fill(n as u8); // the payload, produced in place
                g.commit(run.len, 1);
            }
        }
        Sys::StreamCopy | Sys::StreamCopyNoPad | Sys::StreamCopyCached => {
            if run.sys == Sys::StreamCopyNoPad {
                tx.set_line_padding(false);
            }
            if run.sys == Sys::StreamCopyCached {
                tx.set_nontemporal_threshold(u32::MAX);
            }
            for n in 0..run.count {
                payload[..8].copy_from_slice(&n.to_ne_bytes());
                tx.send_blocking(&payload, 1, Some(TIMEOUT))?;
            }
        }
        _ => {
            for n in 0..run.count {
                payload[..8].copy_from_slice(&n.to_ne_bytes());
                loop {
                    match tx.send_staged(&payload, 1) {
                        Ok(()) => break,
                        Err(memtube::IpcError::Full) => {
                            tx.publish();
                            tx.wait_for_room(run.len, Some(TIMEOUT))?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if n % 16 == 15 {
                    tx.publish();
                }
            }
            tx.publish();
        }
    }
    // Dropping the sender closes the ring; the receiver still gets every message.
    Ok(())
}

/// The raw rings' configuration (the same as [`memtube_threads`]').
fn raw_config() -> memtube::Config {
    memtube::Config::new(16 * 1024).pure_spin(true)
}

/// Lay out both raw rings (before the peer attaches).
fn raw_init(shm: &Shm) -> Result<(), BoxError> {
    for off in [shm::RAW_PING, shm::RAW_PONG] {
        // SAFETY: the region lies inside the shared mapping (checked by
        // `Shm::raw`), 128-aligned; no one is attached to it now (the last
        // run's handles are dropped, the peer has not started this run).
        unsafe { memtube::init(shm.raw(off), raw_config())? };
    }
    Ok(())
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_ring_processes_main(shm: &Shm, run: Run) -> Result<Histogram<u64>, BoxError> {
    let w = memtube::SpinWait::std();
    // SAFETY: the regions lie in the never-unmapped shared mapping and were
    // laid out by `raw_init`; ring-core validates them and claims each role once.
    let (mut tx, mut rx) = unsafe {
        (
            memtube::attach_producer(shm.raw(shm::RAW_PING), w)?,
            memtube::attach_consumer(shm.raw(shm::RAW_PONG), w)?,
        )
    };
    let mut payload = vec![0xa5u8; run.len];
    time_round_trips(run.count, |s| {
        payload[..8].copy_from_slice(&s.to_ne_bytes());
        tx.send_blocking(&payload, 7, Some(TIMEOUT))?;
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        if m[..8] != s.to_ne_bytes() {
            return Err("raw echo mismatch".into());
        }
        Ok(())
    })
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_ring_processes_peer(shm: &Shm, run: Run) -> Result<(), BoxError> {
    let w = memtube::SpinWait::std();
    // SAFETY: as in `memtube_ring_processes_main`, the other role of each ring.
    let (mut rx, mut tx) = unsafe {
        (
            memtube::attach_consumer(shm.raw(shm::RAW_PING), w)?,
            memtube::attach_producer(shm.raw(shm::RAW_PONG), w)?,
        )
    };
    for _ in 0..run.count {
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        tx.send_blocking(&m, m.type_id(), Some(TIMEOUT))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- kernel paths

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), BoxError> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn read_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8]) -> Result<(), BoxError> {
    while !buf.is_empty() {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return Err("kernel path: end of file".into()),
            Ok(n) => buf = &mut buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The (read, write) descriptors of a byte-stream kernel path.
fn stream_fds(fds: &Fds, sys: Sys) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
    match sys {
        Sys::Uds => (fds.uds.as_fd(), fds.uds.as_fd()),
        Sys::Pipe => (fds.pipe_r.as_fd(), fds.pipe_w.as_fd()),
        _ => (fds.ev_r.as_fd(), fds.ev_w.as_fd()),
    }
}

fn futex_wait_change(word: &AtomicU32, want: u32) -> Result<(), BoxError> {
    futex_wait_until(word, |v| v == want)
}

fn futex_wait_at_least(word: &AtomicU32, want: u32) -> Result<(), BoxError> {
    futex_wait_until(word, |v| v >= want)
}

/// Sleep on `word` (10 ms slices) until its value satisfies `ok`.
fn futex_wait_until(word: &AtomicU32, ok: impl Fn(u32) -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = word.load(Ordering::Acquire);
        if ok(v) {
            return Ok(());
        }
        let t = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        match futex::wait(word, futex::Flags::empty(), v, Some(&t)) {
            Ok(()) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::TIMEDOUT) => {
                if Instant::now() > deadline {
                    return Err("futex: no answer".into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn kernel_main(ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    if run.sys == Sys::Futex {
        let (ping, pong) = (ctx.shm.u32(shm::FUTEX_PING), ctx.shm.u32(shm::FUTEX_PONG));
        return time_round_trips(run.count, |s| {
            let v = s as u32 + 1;
            ping.store(v, Ordering::Release);
            futex::wake(ping, futex::Flags::empty(), 1)?;
            futex_wait_change(pong, v)
        });
    }
    let (r, w) = stream_fds(&ctx.fds, run.sys);
    let mut buf = vec![0x33u8; run.len];
    time_round_trips(run.count, |_| {
        if run.sys == Sys::Eventfd {
            write_all(w, &1u64.to_ne_bytes())?;
            read_exact(r, &mut buf[..8])
        } else {
            write_all(w, &buf)?;
            read_exact(r, &mut buf)
        }
    })
}

fn kernel_peer(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    if run.sys == Sys::Futex {
        let (ping, pong) = (ctx.shm.u32(shm::FUTEX_PING), ctx.shm.u32(shm::FUTEX_PONG));
        for s in 0..run.count {
            let v = s as u32 + 1;
            futex_wait_change(ping, v)?;
            pong.store(v, Ordering::Release);
            futex::wake(pong, futex::Flags::empty(), 1)?;
        }
        return Ok(());
    }
    let (r, w) = stream_fds(&ctx.fds, run.sys);
    let mut buf = vec![0u8; run.len];
    for _ in 0..run.count {
        read_exact(r, &mut buf)?;
        write_all(w, &buf)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- wake-up

/// A small xorshift generator: the random send intervals.
struct Rng(u64);

impl Rng {
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

fn wake_main(ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    let mut h = histogram();
    if run.sys == Sys::WakeFutex {
        let (word, time) = (ctx.shm.u32(shm::WAKE_WORD), ctx.shm.u64(shm::WAKE_TIME));
        for i in 0..run.count {
            // At least message i (the receiver may have slept through one).
            futex_wait_at_least(word, i as u32 + 1)?;
            let now = mono_ns();
            h.saturating_record(now.saturating_sub(time.load(Ordering::Acquire)));
        }
        return Ok(h);
    }
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let mut conn = listener.accept_with(Some(TIMEOUT), &memtube_options(run.sys, run.len))?;
    let rx = conn.receiver()?;
    for _ in 0..run.count {
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        let now = mono_ns();
        let sent = u64::from_ne_bytes(m[..8].try_into()?);
        h.saturating_record(now.saturating_sub(sent));
    }
    Ok(h)
}

fn wake_peer(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ run.id.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    if run.sys == Sys::WakeFutex {
        let (word, time) = (ctx.shm.u32(shm::WAKE_WORD), ctx.shm.u64(shm::WAKE_TIME));
        for i in 0..run.count {
            std::thread::sleep(interval(&mut rng));
            time.store(mono_ns(), Ordering::Relaxed);
            word.store(i as u32 + 1, Ordering::Release);
            futex::wake(word, futex::Flags::empty(), 1)?;
        }
        return Ok(());
    }
    let mut conn = memtube::connect(ctx.addr.as_str(), &memtube_options(run.sys, run.len))?;
    let tx = conn.sender()?;
    let mut payload = vec![0u8; run.len.max(8)];
    for _ in 0..run.count {
        std::thread::sleep(interval(&mut rng));
        payload[..8].copy_from_slice(&mono_ns().to_ne_bytes());
        tx.send_blocking(&payload, 1, Some(TIMEOUT))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- memcpy

/// Copy `len`-byte blocks from a source into a destination that rotates
/// through 256 KiB (like a ring), `count` times, on this core alone.
fn memcpy(run: Run) -> Measured {
    let src = vec![0x11u8; run.len];
    let mut dst = vec![0u8; (256 * 1024).max(run.len)];
    let slots = dst.len() / run.len;
    let start = Instant::now();
    for i in 0..run.count as usize {
        let at = (i % slots) * run.len;
        dst[at..at + run.len].copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    Measured::Stream {
        messages: run.count,
        seconds: start.elapsed().as_secs_f64(),
    }
}

// ---------------------------------------------------------------- dispatch

/// Prepare a run before it is posted (the peer has not started it).
pub fn prepare(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    match run.sys {
        Sys::RingCoreProcesses => raw_init(&ctx.shm)?,
        Sys::Probe
        | Sys::FloorOne
        | Sys::FloorTwo
        | Sys::RingFloor64K
        | Sys::RingFloor1K
        | Sys::RingFloorClear64K => floor_reset(&ctx.shm, run.sys),
        Sys::RingFloorSplit64K
        | Sys::RingFloorSplit1K
        | Sys::PairFloorShared
        | Sys::PairFloorSplit
        | Sys::RingFloorSplitRo64K
        | Sys::RecordFloor
        | Sys::RecordFloorRo => {}
        Sys::Futex => {
            ctx.shm.u32(shm::FUTEX_PING).store(0, Ordering::Relaxed);
            ctx.shm.u32(shm::FUTEX_PONG).store(0, Ordering::Relaxed);
        }
        Sys::WakeFutex => ctx.shm.u32(shm::WAKE_WORD).store(0, Ordering::Relaxed),
        _ => {}
    }
    Ok(())
}

/// The main side of a run.
pub fn run_main(ctx: &mut Ctx, run: Run, echo_cpu: Option<usize>) -> Result<Measured, BoxError> {
    let lat = |h: Result<Histogram<u64>, BoxError>| h.map(Measured::Latency);
    match run.sys {
        Sys::Probe
        | Sys::FloorOne
        | Sys::FloorTwo
        | Sys::RingFloor64K
        | Sys::RingFloor1K
        | Sys::RingFloorClear64K => lat(floor_main(&ctx.shm, run.sys, run.count)),
        Sys::RingFloorSplit64K | Sys::RingFloorSplit1K | Sys::RingFloorSplitRo64K => {
            lat(split_floor_main(&ctx.shm, run.sys, run.count, run.id))
        }
        Sys::PairFloorShared | Sys::PairFloorSplit => lat(pair_floor_main(&ctx.shm, run)),
        Sys::RecordFloor | Sys::RecordFloorRo => lat(record_floor_main(&ctx.shm, run)),
        Sys::MemtubeSpin
        | Sys::MemtubeDefault
        | Sys::MemtubeSpinNoIso
        | Sys::MemtubeSpinNoIsoNoWrap
        | Sys::MemtubeSpinNoIsoNoPad
        | Sys::MemtubeSpinWrap
        | Sys::MemtubeSpinCached
        | Sys::MemtubeSpin64K
        | Sys::MemtubeSpinNoIso64K => lat(memtube_rt_main(ctx, run)),
        Sys::MemtubeThreads => lat(memtube_threads(run, echo_cpu)),
        Sys::RingCoreProcesses => lat(memtube_ring_processes_main(&ctx.shm, run)),
        Sys::Uds | Sys::Pipe | Sys::Eventfd | Sys::Futex => lat(kernel_main(ctx, run)),
        Sys::StreamZeroCopy
        | Sys::StreamCopy
        | Sys::StreamCopyNoPad
        | Sys::StreamCopyCached
        | Sys::StreamBatch => memtube_stream_main(ctx, run),
        Sys::Memcpy => Ok(memcpy(run)),
        Sys::WakeMemtube | Sys::WakeFutex => lat(wake_main(ctx, run)),
        Sys::Iceoryx2 | Sys::Iceoryx2Stream => crate::peers::ice_main(ctx, run),
        Sys::Tachyon | Sys::TachyonStream => crate::peers::tachyon_main(ctx, run),
    }
}

/// The peer side of a run.
pub fn run_peer(ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
    match run.sys {
        Sys::Probe
        | Sys::FloorOne
        | Sys::FloorTwo
        | Sys::RingFloor64K
        | Sys::RingFloor1K
        | Sys::RingFloorClear64K => floor_peer(&ctx.shm, run.sys, run.count),
        Sys::RingFloorSplit64K | Sys::RingFloorSplit1K | Sys::RingFloorSplitRo64K => {
            split_floor_peer(&ctx.shm, run.sys, run.count, run.id)
        }
        Sys::PairFloorShared | Sys::PairFloorSplit => pair_floor_peer(&ctx.shm, run),
        Sys::RecordFloor | Sys::RecordFloorRo => record_floor_peer(&ctx.shm, run),
        Sys::MemtubeSpin
        | Sys::MemtubeDefault
        | Sys::MemtubeSpinNoIso
        | Sys::MemtubeSpinNoIsoNoWrap
        | Sys::MemtubeSpinNoIsoNoPad
        | Sys::MemtubeSpinWrap
        | Sys::MemtubeSpinCached
        | Sys::MemtubeSpin64K
        | Sys::MemtubeSpinNoIso64K => memtube_rt_peer(ctx, run),
        Sys::RingCoreProcesses => memtube_ring_processes_peer(&ctx.shm, run),
        Sys::Uds | Sys::Pipe | Sys::Eventfd | Sys::Futex => kernel_peer(ctx, run),
        Sys::StreamZeroCopy
        | Sys::StreamCopy
        | Sys::StreamCopyNoPad
        | Sys::StreamCopyCached
        | Sys::StreamBatch => memtube_stream_peer(ctx, run),
        Sys::WakeMemtube | Sys::WakeFutex => wake_peer(ctx, run),
        Sys::Iceoryx2 | Sys::Iceoryx2Stream => crate::peers::ice_peer(ctx, run),
        Sys::Tachyon | Sys::TachyonStream => crate::peers::tachyon_peer(ctx, run),
        Sys::MemtubeThreads | Sys::Memcpy => Ok(()),
    }
}

/// Read one streamed message's bytes (for the peers' receivers).
#[cfg_attr(not(any(feature = "iceoryx2", feature = "tachyon")), allow(dead_code))]
pub fn check_stream(m: &[u8], n: u64, len: usize) -> Result<u64, BoxError> {
    read_all(m, n, len)
}

/// Spin until `cond` (for the peers), erroring after [`TIMEOUT`].
#[cfg_attr(not(any(feature = "iceoryx2", feature = "tachyon")), allow(dead_code))]
pub fn spin_until(what: &str, cond: impl FnMut() -> bool) -> Result<(), BoxError> {
    wait_for(what, cond)
}

// ---------------------------------------------------------------- instruction counts

/// One thread sends a 32-byte message and receives it, `n` times, through
/// ring-core's `split` (pure spin): the per-message cost without any waiting.
/// For instruction counts under callgrind (`--selfloop raw N`).
#[inline(never)]
pub fn selfloop_raw(n: u64) -> Result<u64, BoxError> {
    use memtube::{region_size, split, Config, RegionBuf, SpinWait};
    const CAP: u32 = 16 * 1024;
    const SIZE: usize = match region_size(CAP) {
        Some(n) => n,
        None => panic!("capacity"),
    };
    let mut a = Box::new(RegionBuf::<SIZE>::new());
    let (mut tx, mut rx) = split(
        a.as_mut_slice(),
        Config::new(CAP).pure_spin(true),
        SpinWait::std(),
    )?;
    let payload = [0xa5u8; 32];
    let mut sum = 0u64;
    for _ in 0..n {
        tx.send_blocking(&payload, 7, Some(TIMEOUT))?;
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        sum = sum.wrapping_add(u64::from(m[0]));
    }
    Ok(sum)
}

/// The same through `memtube::listen` / `connect` (one process, both ends),
/// pure spin, isolation on or off (`--selfloop memtube|memtube-noiso N`).
#[inline(never)]
pub fn selfloop_memtube(n: u64, isolation: bool) -> Result<u64, BoxError> {
    let opts = Options::new()
        .capacity(16 * 1024)
        .pure_spin(true)
        .isolation(isolation);
    let addr = format!("@memtube-bench-selfloop-{}", std::process::id());
    let listener = memtube::listen(addr.as_str(), &opts)?;
    let accept = std::thread::spawn(move || listener.accept(Some(TIMEOUT)));
    let mut out = memtube::connect(addr.as_str(), &opts)?;
    let mut inc = accept.join().map_err(|_| "accept panicked")??;
    let (tx, rx) = (out.sender()?, inc.receiver()?);
    let payload = [0xa5u8; 32];
    let mut sum = 0u64;
    for _ in 0..n {
        tx.send_blocking(&payload, 7, Some(TIMEOUT))?;
        let m = rx.recv_blocking(Some(TIMEOUT))?;
        sum = sum.wrapping_add(u64::from(m[0]));
    }
    Ok(sum)
}
