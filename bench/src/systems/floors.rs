//! The hardware floors: one word, or a record, ping-ponged through the
//! shared page with nothing else (what any shared-memory transport pays at
//! least), blocks moved from one core to the other with nothing else (the
//! large streams' floor), and memcpy on one core (the streams' ceiling).

use super::{lat, read_all, time_round_trips, wait_for, Bench, Ctx, Measured, Run};
use crate::shm::{self, Shm};
use crate::BoxError;
use hdrhistogram::Histogram;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One word ping-ponged in one area: the level probe, the one- and
/// two-line floors, the ring floors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// The level probe's line.
    Probe,
    /// One line.
    One,
    /// Ping in one line, pong in another.
    Two,
    /// The next line of 64 KiB per message.
    Ring64K,
    /// The next line of 1 KiB per message.
    Ring1K,
    /// As `Ring64K`, clearing the next message's word first.
    RingClear64K,
}

impl Bench for Floor {
    fn prepare(&self, ctx: &Ctx, _run: Run) -> Result<(), BoxError> {
        floor_reset(&ctx.shm, *self);
        Ok(())
    }

    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(floor_main(&ctx.shm, *self, run.count))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        floor_peer(&ctx.shm, *self, run.count)
    }
}

/// The ring floor over two areas, one per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitFloor {
    /// Two read-write areas of 64 KiB.
    Ring64K,
    /// Two read-write areas of 1 KiB.
    Ring1K,
    /// Two areas of 64 KiB, each mapped read-only by its reader.
    RingRo64K,
}

impl Bench for SplitFloor {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(split_floor_main(&ctx.shm, *self, run.count, run.id))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        split_floor_peer(&ctx.shm, *self, run.count, run.id)
    }
}

/// The record pair floor: 32-byte records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairFloor {
    /// Both directions in one area.
    Shared,
    /// One area per direction.
    Split,
}

impl Bench for PairFloor {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(pair_floor_main(&ctx.shm, *self, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        pair_floor_peer(&ctx.shm, *self, run)
    }
}

/// The record floor: ring-core's protocol with nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFloor {
    /// Read-write areas, packed records.
    Rw,
    /// Read-only readers, line-padded records.
    RoPadded,
}

impl Bench for RecordFloor {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(record_floor_main(&ctx.shm, *self, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        record_floor_peer(&ctx.shm, *self, run)
    }
}

/// The transfer floor: the peer writes blocks into an area of `area` bytes
/// (as a stream's ring) split into slots of the payload's size, the main
/// process reads every byte of each (as the streams' reader) and hands the
/// slot back; one counter of blocks written, one of blocks read, each in a
/// line of its own. No ring, no records, no API: what moving the bytes from
/// one core to the other costs, written the way `nontemporal` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Non-temporal stores (x86-64), then a store fence, as ring-core's
    /// non-temporal copy; else ordinary stores (`memcpy`).
    pub nontemporal: bool,
    /// Bytes of the area (at most `shm::TRANSFER_LEN`).
    pub area: usize,
}

impl Bench for Transfer {
    fn prepare(&self, ctx: &Ctx, _run: Run) -> Result<(), BoxError> {
        ctx.shm
            .u64(shm::TRANSFER_PUBLISHED)
            .store(0, Ordering::Relaxed);
        ctx.shm
            .u64(shm::TRANSFER_RELEASED)
            .store(0, Ordering::Relaxed);
        Ok(())
    }

    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        transfer_read(&ctx.shm, *self, run)
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        transfer_write(&ctx.shm, *self, run)
    }
}

/// The slots of the transfer floor's area for `len`-byte blocks.
fn transfer_slots(sys: Transfer, len: usize) -> Result<u64, BoxError> {
    if len == 0 || len % 64 != 0 || len > sys.area || sys.area > shm::TRANSFER_LEN {
        return Err(format!(
            "transfer floor: {len}-byte blocks do not fit a {}-byte area",
            sys.area
        )
        .into());
    }
    Ok((sys.area / len) as u64)
}

/// The transfer floor's reader: wait for block `n`, read all of it, release.
fn transfer_read(shm: &Shm, sys: Transfer, run: Run) -> Result<Measured, BoxError> {
    let slots = transfer_slots(sys, run.len)?;
    let (published, released) = (
        shm.u64(shm::TRANSFER_PUBLISHED),
        shm.u64(shm::TRANSFER_RELEASED),
    );
    let mut start = None;
    let mut sum = 0u64;
    for n in 0..run.count {
        wait_for("transfer floor", || published.load(Ordering::Acquire) > n)?;
        start.get_or_insert_with(Instant::now);
        let at = (n % slots) as usize * run.len;
        // SAFETY: the slot lies inside the area (`transfer_slots`), which
        // stays mapped; the writer published block `n` (Acquire above) and
        // writes this slot again only after we release it below, so no one
        // writes these bytes while the slice lives.
        let block = unsafe { std::slice::from_raw_parts(shm.transfer().add(at), run.len) };
        sum = sum.wrapping_add(read_all(block, n, run.len)?);
        released.store(n + 1, Ordering::Release);
    }
    black_box(sum);
    Ok(Measured::Stream {
        // Timed from the first block's arrival, as the streams.
        messages: run.count.saturating_sub(1),
        seconds: start.map_or(0.0, |s| s.elapsed().as_secs_f64()),
    })
}

/// The transfer floor's writer: wait for a free slot, copy block `n` in
/// (its first 8 bytes its number, as the streams' payloads), publish.
fn transfer_write(shm: &Shm, sys: Transfer, run: Run) -> Result<(), BoxError> {
    let slots = transfer_slots(sys, run.len)?;
    let (published, released) = (
        shm.u64(shm::TRANSFER_PUBLISHED),
        shm.u64(shm::TRANSFER_RELEASED),
    );
    let mut payload = vec![0x5au8; run.len];
    for n in 0..run.count {
        wait_for("transfer floor writer", || {
            released.load(Ordering::Acquire) + slots > n
        })?;
        payload[..8].copy_from_slice(&n.to_ne_bytes());
        let at = (n % slots) as usize * run.len;
        // SAFETY: the slot lies inside the area (`transfer_slots`), which
        // stays mapped; the reader released the block that used it last
        // (Acquire above) and reads it again only after we publish below.
        let dst = unsafe { shm.transfer().add(at) };
        if sys.nontemporal {
            // SAFETY: `dst` is valid for `run.len` bytes (above), does not
            // overlap our own `payload`, and is 64-aligned (a page-aligned
            // area, slots a multiple of 64 bytes long: `transfer_slots`).
            unsafe { copy_nontemporal(dst, &payload)? }
        } else {
            // SAFETY: `dst` is valid for `run.len` bytes (above) and does
            // not overlap our own `payload`.
            unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), dst, run.len) }
        }
        published.store(n + 1, Ordering::Release);
    }
    Ok(())
}

/// Copy `src` (a multiple of 64 bytes) to the 64-aligned `dst` with
/// non-temporal stores, then a store fence (so the publishing Release store
/// cannot pass them).
///
/// # Safety
/// `dst` is valid for `src.len()` bytes, 64-aligned, and does not overlap `src`.
unsafe fn copy_nontemporal(dst: *mut u8, src: &[u8]) -> Result<(), BoxError> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let s = src.as_ptr();
        for i in (0..src.len() / 64 * 64).step_by(64) {
            // SAFETY: `i + 64 <= src.len()`: in both buffers (the caller's
            // contract); `dst + i` is 64-aligned (16 needed); SSE2 is part
            // of x86-64.
            unsafe {
                let from = s.add(i).cast::<__m128i>();
                let to = dst.add(i).cast::<__m128i>();
                let (a, b) = (_mm_loadu_si128(from), _mm_loadu_si128(from.add(1)));
                let (c, d) = (_mm_loadu_si128(from.add(2)), _mm_loadu_si128(from.add(3)));
                _mm_stream_si128(to, a);
                _mm_stream_si128(to.add(1), b);
                _mm_stream_si128(to.add(2), c);
                _mm_stream_si128(to.add(3), d);
            }
        }
        // SAFETY: SSE is part of x86-64.
        unsafe { _mm_sfence() };
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (dst, src);
        Err("transfer floor: non-temporal stores are x86-64 only".into())
    }
}

/// memcpy on one core (no peer).
pub struct Memcpy;

impl Bench for Memcpy {
    fn main(&self, _: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        Ok(memcpy(run))
    }

    fn peer(&self, _: &mut Ctx, _: Run) -> Result<(), BoxError> {
        Ok(())
    }
}

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
fn split_lines(shm: &Shm, sys: SplitFloor, s: u64, main: bool) -> (&AtomicU64, &AtomicU64) {
    let lines = if sys == SplitFloor::Ring1K {
        16
    } else {
        shm::AREA / 64
    };
    let at = (s as usize % lines) * 64;
    if sys == SplitFloor::RingRo64K {
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

fn split_floor_main(
    shm: &Shm,
    sys: SplitFloor,
    count: u64,
    id: u64,
) -> Result<Histogram<u64>, BoxError> {
    time_round_trips(count, |s| {
        let (ping, pong) = split_lines(shm, sys, s, true);
        ping.store(split_value(id, s), Ordering::Release);
        wait_for("two-area ring floor", || {
            pong.load(Ordering::Acquire) == split_value(id, s)
        })
    })
}

fn split_floor_peer(shm: &Shm, sys: SplitFloor, count: u64, id: u64) -> Result<(), BoxError> {
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
fn pair_lines(sys: PairFloor, s: u64, main: bool) -> (usize, usize) {
    let k = (s % 8) as usize;
    let (mine, theirs) = if sys == PairFloor::Shared {
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

fn pair_floor_main(shm: &Shm, sys: PairFloor, run: Run) -> Result<Histogram<u64>, BoxError> {
    time_round_trips(run.count, |s| {
        let (out, inc) = pair_lines(sys, s, true);
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

fn pair_floor_peer(shm: &Shm, sys: PairFloor, run: Run) -> Result<(), BoxError> {
    for s in 0..run.count {
        let (out, inc) = pair_lines(sys, s, false);
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
fn record_areas(sys: RecordFloor, main: bool) -> (RecordArea, RecordArea) {
    match (sys, main) {
        (RecordFloor::RoPadded, _) => (RecordArea::Own, RecordArea::Other),
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
fn record_floor_main(shm: &Shm, sys: RecordFloor, run: Run) -> Result<Histogram<u64>, BoxError> {
    let (out, inc) = record_areas(sys, true);
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
fn record_floor_peer(shm: &Shm, sys: RecordFloor, run: Run) -> Result<(), BoxError> {
    let (out, inc) = record_areas(sys, false);
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
fn floor_main(shm: &Shm, sys: Floor, count: u64) -> Result<Histogram<u64>, BoxError> {
    match sys {
        Floor::Probe | Floor::One => {
            let line = shm.u64(if sys == Floor::Probe {
                shm::PROBE_LINE
            } else {
                shm::ONE_LINE
            });
            time_round_trips(count, |s| {
                line.store(2 * s + 1, Ordering::Release);
                wait_for("floor", || line.load(Ordering::Acquire) == 2 * s + 2)
            })
        }
        Floor::Two => {
            let (ping, pong) = (shm.u64(shm::TWO_PING), shm.u64(shm::TWO_PONG));
            time_round_trips(count, |s| {
                ping.store(s + 1, Ordering::Release);
                wait_for("two-line floor", || pong.load(Ordering::Acquire) == s + 1)
            })
        }
        _ => {
            let (off, lines) = ring_area(sys);
            let clear = sys == Floor::RingClear64K;
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

fn ring_area(sys: Floor) -> (usize, usize) {
    if sys != Floor::Ring1K {
        (shm::RING64, 1024)
    } else {
        (shm::RING1K, 16)
    }
}

/// Zero the words of a floor before its run (the peer has not started).
fn floor_reset(shm: &Shm, sys: Floor) {
    match sys {
        Floor::Probe => shm.u64(shm::PROBE_LINE).store(0, Ordering::Relaxed),
        Floor::One => shm.u64(shm::ONE_LINE).store(0, Ordering::Relaxed),
        Floor::Two => {
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

fn floor_peer(shm: &Shm, sys: Floor, count: u64) -> Result<(), BoxError> {
    match sys {
        Floor::Probe | Floor::One => {
            let line = shm.u64(if sys == Floor::Probe {
                shm::PROBE_LINE
            } else {
                shm::ONE_LINE
            });
            for s in 0..count {
                wait_for("floor echo", || line.load(Ordering::Acquire) == 2 * s + 1)?;
                line.store(2 * s + 2, Ordering::Release);
            }
        }
        Floor::Two => {
            let (ping, pong) = (shm.u64(shm::TWO_PING), shm.u64(shm::TWO_PONG));
            for s in 0..count {
                wait_for("two-line echo", || ping.load(Ordering::Acquire) == s + 1)?;
                pong.store(s + 1, Ordering::Release);
            }
        }
        _ => {
            let (off, lines) = ring_area(sys);
            let clear = sys == Floor::RingClear64K;
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
