//! Round-trip latency between two threads over two memtube rings, next to
//! the hardware floor: one cache line ping-ponged between the same two CPUs.
//!
//! ```text
//! cargo run --release --example pingpong            # about 10 s
//! cargo run --release --example pingpong -- --quick # about 1 s
//! ```
//!
//! One round trip: the main thread writes a payload (its first 8 bytes are
//! a sequence number) into the *ping* ring; the echo thread receives it in
//! place and copies it into the *pong* ring; the main thread receives that
//! and checks the length and the sequence number. Both rings are laid with
//! `memtube::split` over boxed `RegionBuf`s of 16 KiB data area each.
//!
//! The floor is the same exchange with no ring at all: one `AtomicU64` in a
//! 128-byte aligned line; the main thread stores an odd value `2s + 1`, the
//! echo thread answers `2s + 2`. A ring cannot beat it: one message has to
//! move at least the line that holds it to the other core and back.
//!
//! Every sample is the time between two `Instant::now()` calls around one
//! round trip, so it includes one clock read (printed as "timer overhead").
//! Samples go into preallocated `Vec<u64>`s and are sorted for percentiles.
//!
//! The latency level of a shared VM can shift every few seconds, so:
//! - the floor is measured on its own before and after all the cases, and a
//!   warning is printed if the two medians differ by more than 30 %;
//! - within each case, the same two threads alternate blocks of 1000 floor
//!   round trips and 1000 ring round trips, so the case's floor column saw
//!   the same levels as its ring samples. `p50/floor` divides by that
//!   interleaved floor; `net` does the same after taking the timer overhead
//!   out of both. The first round trip of each block (a phase switch) is not
//!   recorded.

use memtube::{region_size, split, Config, Error as RingError, RegionBuf, SpinWait};
use std::error::Error;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Data-area bytes of each ring: fits the 4096-byte payload (max payload 8184).
const CAP: u32 = 16 * 1024;
const REGION_SIZE: usize = match region_size(CAP) {
    Some(n) => n,
    None => panic!("CAP must be a power of two in MIN_CAPACITY..=MAX_CAPACITY"),
};
type Region = RegionBuf<REGION_SIZE>;

/// Payload sizes measured in pure-spin mode.
const SIZES: [usize; 5] = [8, 32, 256, 1024, 4096];

/// Round trips per block when a case alternates floor and ring blocks.
const BLOCK: usize = 1000;

/// Blocking calls give up after this long instead of hanging on a dead peer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Differences between the two floors above this fraction are reported.
const LEVEL_SHIFT: f64 = 0.30;

/// Sent by the main thread to stop a floor echo (odd, like requests).
const STOP: u64 = u64::MAX;

/// Set when pinning an echo thread failed (reported at the end; the run goes on).
static ECHO_PIN_FAILED: AtomicBool = AtomicBool::new(false);

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
                case: b(20_000, 2_000_000, 1_800),
            }
        }
    }
}

/// Which CPU each thread runs on, if pinning worked.
#[derive(Clone, Copy)]
struct Pins {
    main: Option<core_affinity::CoreId>,
    echo: Option<core_affinity::CoreId>,
}

impl Pins {
    /// Pin the calling (main) thread to the first allowed CPU and keep the
    /// second for echo threads. The string says why not, if not.
    fn setup() -> (Self, String) {
        let unpinned = Pins {
            main: None,
            echo: None,
        };
        let Some(ids) = core_affinity::get_core_ids() else {
            return (
                unpinned,
                "not pinned: cannot read the CPU affinity mask".into(),
            );
        };
        if ids.len() < 2 {
            let why = format!(
                "not pinned: only {} CPU allowed, both threads share it",
                ids.len()
            );
            return (unpinned, why);
        }
        if !core_affinity::set_for_current(ids[0]) {
            let why = format!("not pinned: setting affinity to CPU {} failed", ids[0].id);
            return (unpinned, why);
        }
        let pins = Pins {
            main: Some(ids[0]),
            echo: Some(ids[1]),
        };
        (pins, String::new())
    }

    /// Pin the calling echo thread; a failure is recorded in `ECHO_PIN_FAILED`.
    fn pin_echo(&self) {
        if let Some(core) = self.echo {
            if !core_affinity::set_for_current(core) {
                ECHO_PIN_FAILED.store(true, Ordering::Relaxed);
            }
        }
    }
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

/// A cache line of its own (128 bytes: adjacent-line prefetch pairs lines).
#[repr(C, align(128))]
struct Line(AtomicU64);

/// Stores `STOP` when dropped, so a floor echo ends even if the main side
/// returns early or panics.
struct StopOnDrop<'a>(&'a AtomicU64);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(STOP, Ordering::Release);
    }
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
            return Err("floor: the echo thread did not answer".into());
        }
    }
    Ok(())
}

/// The echo side of the floor: answer up to `count` requests (`None`: until
/// `STOP`). `last` is the last answer written. Returns false on `STOP`.
fn floor_echo(line: &AtomicU64, last: &mut u64, count: Option<usize>) -> bool {
    let mut answered = 0;
    while count.map_or(true, |c| answered < c) {
        let v = line.load(Ordering::Acquire);
        if v == *last || v & 1 == 0 {
            spin_loop();
            continue;
        }
        if v == STOP {
            return false;
        }
        line.store(v + 1, Ordering::Release);
        *last = v + 1;
        answered += 1;
    }
    true
}

/// One cache line ping-ponged between the two threads, on its own.
fn floor(budget: Budget, pins: Pins) -> Result<Summary, BoxError> {
    let line = Line(AtomicU64::new(0));
    let line = &line.0;
    thread::scope(|s| {
        let echo = s.spawn(move || {
            pins.pin_echo();
            floor_echo(line, &mut 0, None);
        });
        let stop = StopOnDrop(line);
        let result = measure(budget, |seq| floor_round_trip(line, seq));
        drop(stop);
        echo.join().map_err(|_| "floor echo thread panicked")?;
        result
    })
}

/// One case: `len`-byte messages over a ping ring and a pong ring, in
/// blocks alternating with floor blocks. Returns (ring, floor) summaries.
fn case(
    ping: &mut Region,
    pong: &mut Region,
    config: Config,
    len: usize,
    budget: Budget,
    pins: Pins,
) -> Result<(Summary, Summary), BoxError> {
    let (ping_tx, mut ping_rx) = split(ping.as_mut_slice(), config, SpinWait::std())?;
    let (mut pong_tx, mut pong_rx) = split(pong.as_mut_slice(), config, SpinWait::std())?;
    let line = Line(AtomicU64::new(0));
    let line = &line.0;
    // `move`: if the main side fails or panics, `ping_tx` and `stop` are
    // dropped before the scope joins, so the echo thread, waiting on the ping
    // ring or on the line, sees `Closed` or `STOP` and ends.
    thread::scope(move |s| {
        let stop = StopOnDrop(line);
        let mut ping_tx = ping_tx;
        let echo = s.spawn(move || -> Result<u64, BoxError> {
            pins.pin_echo();
            let mut last = 0;
            let mut echoed = 0u64;
            // The same schedule as the main side: a floor block, a ring block, ...
            while floor_echo(line, &mut last, Some(BLOCK)) {
                for _ in 0..BLOCK {
                    let m = match ping_rx.recv_blocking(Some(TIMEOUT)) {
                        Ok(m) => m,
                        Err(RingError::Closed) => return Ok(echoed),
                        Err(e) => return Err(e.into()),
                    };
                    // Read the payload in place, copy it into the pong ring.
                    pong_tx.send_blocking(&m, m.type_id(), Some(TIMEOUT))?;
                    echoed += 1;
                }
            }
            Ok(echoed)
        });

        let mut payload = vec![0xa5u8; len];
        let mut sent = 0u64;
        let mut ring_rt = |seq: u64| -> Result<(), BoxError> {
            payload[..8].copy_from_slice(&seq.to_ne_bytes());
            ping_tx.send_blocking(&payload, 7, Some(TIMEOUT))?;
            sent += 1;
            let m = pong_rx.recv_blocking(Some(TIMEOUT))?;
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
        drop(stop);
        drop(ping_tx);
        let echoed = echo.join().map_err(|_| "echo thread panicked")??;
        let (ring, floor) = result?;
        if echoed != sent {
            return Err(format!("the echo thread echoed {echoed} of {sent} messages").into());
        }
        Ok((Summary::new(ring), Summary::new(floor)))
    })
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
    let mut quick = false;
    for arg in std::env::args().skip(1) {
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

    println!("memtube pingpong: two-thread round trips over two rings (ping, pong), {CAP}-byte data area each");
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let model = cpu_model();
    println!(
        "cpu: {} ({cpus} CPUs available)",
        model.as_deref().unwrap_or("model unknown")
    );
    let (pins, why) = Pins::setup();
    match (pins.main, pins.echo) {
        (Some(m), Some(e)) => println!(
            "pinning: ok, main thread on CPU {}, echo thread on CPU {}",
            m.id, e.id
        ),
        _ => println!("pinning: {why}"),
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

    let floor_before = floor(plan.floor, pins)?;
    row("floor (before)", &floor_before, None, timer);

    let mut ping = Box::new(Region::new());
    let mut pong = Box::new(Region::new());
    let mut cases: Vec<(String, Config, usize)> = SIZES
        .iter()
        .map(|&len| {
            (
                format!("pure-spin {len:>5} B"),
                Config::new(CAP).pure_spin(true),
                len,
            )
        })
        .collect();
    cases.push((format!("default   {:>5} B", 32), Config::new(CAP), 32));

    let mut p50s = Vec::new();
    for (name, config, len) in &cases {
        let (ring, interleaved_floor) = case(&mut ping, &mut pong, *config, *len, plan.case, pins)?;
        row(name, &ring, Some(interleaved_floor.p50()), timer);
        p50s.push((name.clone(), ring.p50()));
    }

    let floor_after = floor(plan.floor, pins)?;
    row("floor (after)", &floor_after, None, timer);
    println!("floor: p50 of the floor blocks interleaved with the case; p50/floor: raw ratio; net: both less the timer");
    println!();

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
    if ECHO_PIN_FAILED.load(Ordering::Relaxed) {
        println!("WARNING: pinning an echo thread failed at least once; those runs were unpinned");
    }
    println!("total time {:.1} s", run_start.elapsed().as_secs_f64());
    Ok(())
}
