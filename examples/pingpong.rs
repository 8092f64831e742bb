//! Round-trip latency between two processes over memtube (two rings, one
//! each way, through `memtube::listen` / `memtube::connect`), next to the
//! hardware floor: one cache line ping-ponged between the same two CPUs.
//!
//! ```text
//! cargo run --release --example pingpong            # about 11-15 s
//! cargo run --release --example pingpong -- --quick # about 2 s
//! ```
//!
//! The program starts its own peer: it re-executes itself with
//! `--echo FD` (FD: an inherited memfd holding the floor lines). The main
//! process listens on an abstract socket and accepts one duplex connection
//! per case; the echo process connects for each case.
//!
//! One round trip: the main process writes a payload (its first 8 bytes are
//! a sequence number) into the *ping* ring; the echo process receives it in
//! place and copies it into the *pong* ring; the main process receives that
//! and checks the length and the sequence number. The rings have a 16 KiB
//! data area (256 KiB for the 64 KiB payload, whose largest message must
//! fit in half the ring).
//!
//! The floor is the same exchange with no ring at all: one `AtomicU64` in a
//! 128-byte line of a page both processes map; the main process stores an
//! odd value `2s + 1`, the echo process answers `2s + 2`. A ring cannot beat
//! it: one message has to move at least the line that holds it to the other
//! core and back.
//!
//! Every sample is the time between two `Instant::now()` calls around one
//! round trip, so it includes one clock read (printed as "timer overhead").
//! Samples go into preallocated `Vec<u64>`s and are sorted for percentiles.
//!
//! The latency level of a shared VM can shift every few seconds, so:
//! - the floor is measured on its own before and after all the cases, and a
//!   warning is printed if the two medians differ by more than 30 %;
//! - within each case, the same two processes alternate blocks of 1000 floor
//!   round trips and 1000 ring round trips, so the case's floor column saw
//!   the same levels as its ring samples. `p50/floor` divides by that
//!   interleaved floor; `net` does the same after taking the timer overhead
//!   out of both. The first round trip of each block (a phase switch) is not
//!   recorded.

use memtube::ring::max_payload;
use memtube::{listen, Connection, Options, Receiver, Sender};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::MemfdFlags;
use std::error::Error;
use std::hint::spin_loop;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Data-area bytes of each ring: fits the 4096-byte payload (max payload 8184).
const CAP: u32 = 16 * 1024;
/// For the 64 KiB payload (max payload 131064).
const BIG_CAP: u32 = 256 * 1024;

/// Payload sizes measured, each in pure-spin and in default mode (with
/// isolation, the default), and all but 64 KiB in pure-spin mode without
/// isolation ("no-isol").
const SIZES: [usize; 4] = [32, 256, 4096, 65536];

/// Round trips per block when a case alternates floor and ring blocks.
const BLOCK: usize = 1000;

/// Blocking calls give up after this long instead of hanging on a dead peer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Differences between the two floors above this fraction are reported.
const LEVEL_SHIFT: f64 = 0.30;

/// Sent by the main process to stop a floor echo (odd, like requests).
const STOP: u64 = u64::MAX;

/// The shared floor page: line `i` (128 bytes each) for case `i`; the
/// separate floor runs use the last two lines.
const PAGE: usize = 4096;
const LINES: usize = PAGE / 128 - 1;
const FLOOR_BEFORE: usize = LINES - 2;
const FLOOR_AFTER: usize = LINES - 1;
/// The last line holds the echo process's "pinning failed" flag.
const PIN_FLAG: usize = LINES;

type BoxError = Box<dyn Error + Send + Sync>;

/// How long and how many round trips one measurement takes.
#[derive(Clone, Copy)]
struct Budget {
    /// Untimed round trips first.
    warmup: usize,
    /// At most this many samples (per series).
    samples: usize,
    /// At most about this long after the warm-up.
    time: Duration,
}

struct Plan {
    timer: Budget,
    floor: Budget,
    case: Budget,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let b = |warmup, samples, ms| Budget {
            warmup,
            samples,
            time: Duration::from_millis(ms),
        };
        if quick {
            Plan {
                timer: b(1_000, 20_000, 20),
                floor: b(5_000, 200_000, 100),
                case: b(4_000, 200_000, 200),
            }
        } else {
            Plan {
                timer: b(10_000, 200_000, 100),
                floor: b(50_000, 2_000_000, 800),
                case: b(20_000, 2_000_000, 1_200),
            }
        }
    }
}

/// The page of floor lines that both processes map (an inherited memfd).
struct FloorPage {
    ptr: *mut u8,
}

impl FloorPage {
    /// Map `PAGE` bytes of `fd` shared, read-write.
    fn map(fd: BorrowedFd<'_>) -> Result<Self, BoxError> {
        // SAFETY: a fresh mapping at an address the kernel picks (no
        // MAP_FIXED) aliases nothing; it is never unmapped (the process
        // exits with it), so references into it live for 'static.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::POPULATE,
                fd,
                0,
            )?
        };
        Ok(FloorPage { ptr: p.cast() })
    }

    /// Line `i` (< 32): an `AtomicU64` alone in its 128-byte line.
    fn line(&self, i: usize) -> &'static AtomicU64 {
        assert!(i <= LINES);
        // SAFETY: `i * 128` is inside the page-aligned, never-unmapped
        // `PAGE`-byte mapping and 8-aligned; the memfd starts zeroed and is
        // only ever accessed atomically, by both processes.
        unsafe { &*(self.ptr.add(i * 128) as *const AtomicU64) }
    }
}

/// The two allowed CPUs the processes are pinned to (main, echo), read
/// before anything is pinned (a child inherits its parent's mask). The
/// string says why not, if not.
fn cpus_for_pinning() -> Result<(usize, usize), String> {
    let Some(ids) = core_affinity::get_core_ids() else {
        return Err("not pinned: cannot read the CPU affinity mask".into());
    };
    if ids.len() < 2 {
        return Err(format!(
            "not pinned: only {} CPU allowed, both processes share it",
            ids.len()
        ));
    }
    Ok((ids[0].id, ids[1].id))
}

/// Pin the calling process to `cpu`.
fn pin(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// Sorted round-trip times in nanoseconds.
struct Summary {
    sorted: Vec<u64>,
}

impl Summary {
    fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Summary { sorted: samples }
    }

    /// Nearest-rank percentile, `q` in 0..=1.
    fn pct(&self, q: f64) -> u64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0;
        }
        let rank = (q * n as f64).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    fn p50(&self) -> u64 {
        self.pct(0.5)
    }
}

/// Run `count` round trips, each with a fresh sequence number from `seq`;
/// record each one's time in `out` (if any), except the first `skip`.
fn timed<F>(
    count: usize,
    skip: usize,
    seq: &mut u64,
    mut out: Option<&mut Vec<u64>>,
    round_trip: &mut F,
) -> Result<(), BoxError>
where
    F: FnMut(u64) -> Result<(), BoxError>,
{
    let mut prev = Instant::now();
    for i in 0..count {
        round_trip(*seq)?;
        *seq += 1;
        let now = Instant::now();
        if i >= skip {
            if let Some(out) = out.as_deref_mut() {
                out.push((now - prev).as_nanos() as u64);
            }
        }
        prev = now;
    }
    Ok(())
}

/// Warm up, then time round trips in blocks until the sample or time budget
/// is spent.
fn measure<F>(budget: Budget, mut round_trip: F) -> Result<Summary, BoxError>
where
    F: FnMut(u64) -> Result<(), BoxError>,
{
    let mut seq = 0;
    timed(budget.warmup, 0, &mut seq, None, &mut round_trip)?;
    let mut samples = Vec::with_capacity(budget.samples);
    let start = Instant::now();
    while samples.len() + BLOCK <= budget.samples && start.elapsed() < budget.time {
        timed(BLOCK, 0, &mut seq, Some(&mut samples), &mut round_trip)?;
    }
    Ok(Summary::new(samples))
}

/// The main side of one floor round trip: request `2 seq + 1`, await `+ 1`.
fn floor_round_trip(line: &AtomicU64, seq: u64) -> Result<(), BoxError> {
    let req = 2 * seq + 1;
    line.store(req, Ordering::Release);
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    while line.load(Ordering::Acquire) != req + 1 {
        spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 65_536 == 0 && since.get_or_insert_with(Instant::now).elapsed() > TIMEOUT {
            return Err("floor: the echo process did not answer".into());
        }
    }
    Ok(())
}

/// The echo side of the floor: answer up to `count` requests (`None`: until
/// `STOP`). `last` is the last answer written. Returns false on `STOP`, or
/// when no request came for `TIMEOUT` (the main process is gone).
fn floor_echo(line: &AtomicU64, last: &mut u64, count: Option<usize>) -> bool {
    let mut answered = 0;
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    while count.is_none_or(|c| answered < c) {
        let v = line.load(Ordering::Acquire);
        if v == *last || v & 1 == 0 {
            spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 65_536 == 0 && since.get_or_insert_with(Instant::now).elapsed() > TIMEOUT {
                return false;
            }
            continue;
        }
        if v == STOP {
            return false;
        }
        line.store(v + 1, Ordering::Release);
        *last = v + 1;
        answered += 1;
        since = None;
    }
    true
}

/// One cache line ping-ponged between the two processes, on its own.
fn floor(budget: Budget, line: &AtomicU64) -> Result<Summary, BoxError> {
    let result = measure(budget, |seq| floor_round_trip(line, seq));
    line.store(STOP, Ordering::Release);
    result
}

/// One case on an accepted duplex connection: `len`-byte messages over the
/// ping ring and back over the pong ring, in blocks alternating with floor
/// blocks on `line`. Returns (ring, floor) summaries.
fn case(
    conn: Connection,
    line: &AtomicU64,
    len: usize,
    budget: Budget,
) -> Result<(Summary, Summary), BoxError> {
    let (Some(mut ping_tx), Some(mut pong_rx)) = conn.into_split() else {
        return Err("duplex connection without two rings".into());
    };
    let mut payload = vec![0xa5u8; len];
    let mut ring_rt = |seq: u64| -> Result<(), BoxError> {
        payload[..8].copy_from_slice(&seq.to_ne_bytes());
        ping_tx.send_timeout(&payload, 7, TIMEOUT)?;
        let m = pong_rx.recv_timeout(TIMEOUT)?;
        if m.len() != len || m[..8] != seq.to_ne_bytes() || m.type_id() != 7 {
            return Err(format!("echo mismatch at round trip {seq}").into());
        }
        Ok(())
    };
    let mut floor_rt = |seq: u64| floor_round_trip(line, seq);
    let mut run = || -> Result<(Vec<u64>, Vec<u64>), BoxError> {
        let (mut ring_seq, mut floor_seq) = (0, 0);
        let mut ring = Vec::with_capacity(budget.samples);
        let mut floor = Vec::with_capacity(budget.samples);
        for _ in 0..budget.warmup.div_ceil(BLOCK) {
            timed(BLOCK, 0, &mut floor_seq, None, &mut floor_rt)?;
            timed(BLOCK, 0, &mut ring_seq, None, &mut ring_rt)?;
        }
        let start = Instant::now();
        while ring.len() + BLOCK <= budget.samples && start.elapsed() < budget.time {
            timed(BLOCK, 1, &mut floor_seq, Some(&mut floor), &mut floor_rt)?;
            timed(BLOCK, 1, &mut ring_seq, Some(&mut ring), &mut ring_rt)?;
        }
        Ok((ring, floor))
    };
    let result = run();
    // Ends the echo's schedule: STOP on the line (dropping our rings
    // closes them too, if the echo is in a ring block).
    line.store(STOP, Ordering::Release);
    let (ring, floor) = result?;
    Ok((Summary::new(ring), Summary::new(floor)))
}

/// The echo process: floor before, one connection per case, floor after.
fn echo_main(fd: i32, addr: &str, cpu: Option<usize>) -> Result<(), BoxError> {
    // SAFETY: the main process passed this inherited descriptor's number
    // on our command line and nothing else in this process owns it.
    let fd = unsafe { <OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(fd) };
    let page = FloorPage::map(fd.as_fd())?;
    if cpu.is_some_and(|c| !pin(c)) {
        page.line(PIN_FLAG).store(1, Ordering::Relaxed);
    }
    floor_echo(page.line(FLOOR_BEFORE), &mut 0, None);
    for (k, _) in cases().iter().enumerate() {
        let conn = memtube::connect(addr, &Options::new().duplex(true))?;
        let (Some(mut pong_tx), Some(mut ping_rx)) = conn.into_split() else {
            return Err("duplex connection without two rings".into());
        };
        let line = page.line(k);
        let mut last = 0;
        'case: while floor_echo(line, &mut last, Some(BLOCK)) {
            for _ in 0..BLOCK {
                if !echo_one(&mut ping_rx, &mut pong_tx)? {
                    break 'case;
                }
            }
        }
    }
    floor_echo(page.line(FLOOR_AFTER), &mut 0, None);
    Ok(())
}

/// Echo one message: receive it in place, copy it into the pong ring.
/// Returns false when the main process closed the case.
fn echo_one(rx: &mut Receiver, tx: &mut Sender) -> Result<bool, BoxError> {
    let m = match rx.recv_timeout(TIMEOUT) {
        Ok(m) => m,
        Err(memtube::Error::Closed) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match tx.send_timeout(&m, m.type_id(), TIMEOUT) {
        Ok(()) => Ok(true),
        Err(memtube::Error::Closed) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The cases: (name, options, payload length).
fn cases() -> Vec<(String, Options, usize)> {
    let mut v = Vec::new();
    for pure_spin in [true, false] {
        for &len in &SIZES {
            let cap = if max_payload(CAP) as usize >= len {
                CAP
            } else {
                BIG_CAP
            };
            let mode = if pure_spin { "pure-spin" } else { "default  " };
            let o = Options::new()
                .duplex(true)
                .capacity(cap)
                .pure_spin(pure_spin);
            v.push((format!("{mode} {len:>5} B"), o, len));
        }
    }
    // The fastest configuration for round trips: isolation off (duplex
    // senders then pad small messages to their line and wrap early).
    for &len in &SIZES[..3] {
        let o = Options::new()
            .duplex(true)
            .capacity(CAP)
            .pure_spin(true)
            .isolation(false);
        v.push((format!("no-isol   {len:>5} B"), o, len));
    }
    v
}

/// Kills the echo process if the main one returns early.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `p50 / floor`, raw and net of the clock read that both include.
fn ratios(p50: u64, floor: u64, timer: u64) -> (f64, f64) {
    let raw = p50 as f64 / floor.max(1) as f64;
    let net = p50.saturating_sub(timer) as f64 / floor.saturating_sub(timer).max(1) as f64;
    (raw, net)
}

fn relative_diff(a: u64, b: u64) -> f64 {
    let (lo, hi) = (a.min(b) as f64, a.max(b) as f64);
    if lo == 0.0 {
        0.0
    } else {
        (hi - lo) / lo
    }
}

/// The CPU model from /proc/cpuinfo, where there is one.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

const HEADER: &str =
    "case                     samples      min      p50      p90      p99    p99.9      max    floor  p50/floor    net";

fn row(name: &str, s: &Summary, floor: Option<u64>, timer: u64) {
    let (floor, raw, net) = match floor {
        Some(f) => {
            let (raw, net) = ratios(s.p50(), f, timer);
            (f.to_string(), format!("{raw:.2}x"), format!("{net:.2}x"))
        }
        None => ("-".into(), "-".into(), "-".into()),
    };
    println!(
        "{name:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>6}",
        s.sorted.len(),
        s.pct(0.0),
        s.p50(),
        s.pct(0.90),
        s.pct(0.99),
        s.pct(0.999),
        s.sorted.last().copied().unwrap_or(0),
        floor,
        raw,
        net,
    );
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, fd, addr, cpu] = args.as_slice() {
        if flag == "--echo" {
            return echo_main(fd.parse()?, addr, cpu.parse().ok());
        }
    }
    let mut quick = false;
    for arg in &args {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("usage: pingpong [--quick]   (build with --release)");
                return Ok(());
            }
            other => {
                return Err(format!("unknown argument {other:?}; usage: pingpong [--quick]").into())
            }
        }
    }
    let plan = Plan::new(quick);
    let run_start = Instant::now();

    println!("memtube pingpong: two-process round trips over a duplex connection (ping ring, pong ring), {CAP}-byte data area each ({BIG_CAP} for 64 KiB)");
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = cpu_model();
    println!(
        "cpu: {} ({cpus} CPUs available)",
        model.as_deref().unwrap_or("model unknown")
    );

    // The floor page, inherited by the echo process (no close-on-exec).
    let memfd = rustix::fs::memfd_create("memtube-floor", MemfdFlags::empty())?;
    rustix::fs::ftruncate(&memfd, PAGE as u64)?;
    let page = FloorPage::map(memfd.as_fd())?;
    let addr = format!("@memtube-pingpong-{}", std::process::id());
    let listener = listen(addr.as_str(), &Options::new().duplex(true))?;
    let cpus = cpus_for_pinning();
    let echo_cpu = cpus.as_ref().map_or("-".to_string(), |c| c.1.to_string());
    let exe = std::env::current_exe()?;
    let mut peer = Peer(
        Command::new(exe)
            .args(["--echo", &memfd.as_raw_fd().to_string(), &addr, &echo_cpu])
            .spawn()?,
    );
    match cpus {
        Ok((m, e)) if pin(m) => {
            println!("pinning: ok, main process on CPU {m}, echo process on CPU {e}")
        }
        Ok((m, _)) => println!("pinning: setting the main process's affinity to CPU {m} failed"),
        Err(why) => println!("pinning: {why}"),
    }

    let timer = measure(plan.timer, |_| Ok(()))?.p50();
    println!(
        "timer overhead: p50 {timer} ns per sample (Instant::now; included in every row below)"
    );
    println!(
        "mode {}: each case alternates {BLOCK}-round-trip floor and ring blocks for up to {:.1} s; times in ns",
        if quick { "--quick" } else { "full" },
        plan.case.time.as_secs_f64()
    );
    println!();
    println!("{HEADER}");

    let floor_before = floor(plan.floor, page.line(FLOOR_BEFORE))?;
    row("floor (before)", &floor_before, None, timer);

    let mut p50s = Vec::new();
    for (k, (name, options, len)) in cases().into_iter().enumerate() {
        // Each case is its own connection with its own rings and options.
        let conn = listener.accept_with(&options, Some(TIMEOUT))?;
        let (ring, interleaved_floor) = case(conn, page.line(k), len, plan.case)?;
        row(&name, &ring, Some(interleaved_floor.p50()), timer);
        p50s.push((name, ring.p50()));
    }

    let floor_after = floor(plan.floor, page.line(FLOOR_AFTER))?;
    row("floor (after)", &floor_after, None, timer);
    println!("floor: p50 of the floor blocks interleaved with the case; p50/floor: raw ratio; net: both less the timer");
    println!();

    let status = peer.0.wait()?;
    if !status.success() {
        return Err(format!("the echo process failed: {status}").into());
    }
    drop(listener);

    let (before, after) = (floor_before.p50(), floor_after.p50());
    let shift = relative_diff(before, after);
    if shift > LEVEL_SHIFT {
        println!(
            "LEVEL SHIFT: floor p50 before {before} ns, after {after} ns ({:.0} % apart, > {:.0} %): the machine's latency level changed during the run; the interleaved floor column still matches each case",
            shift * 100.0,
            LEVEL_SHIFT * 100.0
        );
    } else {
        println!(
            "floor stable: p50 before {before} ns, after {after} ns ({:.0} % apart, <= {:.0} %)",
            shift * 100.0,
            LEVEL_SHIFT * 100.0
        );
    }
    println!("p50 as a multiple of the separate floor runs' p50 (raw, and net of the {timer} ns clock read):");
    println!("  {:<20} {:>15} {:>15}", "", "floor before", "floor after");
    for (name, p50) in &p50s {
        let (b_raw, b_net) = ratios(*p50, before, timer);
        let (a_raw, a_net) = ratios(*p50, after, timer);
        println!("  {name:<20} {b_raw:>6.2}x {b_net:>6.2}x  {a_raw:>6.2}x {a_net:>6.2}x");
    }
    if page.line(PIN_FLAG).load(Ordering::Relaxed) != 0 {
        println!("WARNING: pinning the echo process failed; its runs were unpinned");
    }
    println!("total time {:.1} s", run_start.elapsed().as_secs_f64());
    Ok(())
}
