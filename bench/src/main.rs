//! memtube's benchmark: round-trip latency, one-way throughput and wake-up
//! latency between two processes pinned to two CPUs, next to the hardware
//! floors, the kernel paths and other IPC libraries, in interleaved rounds.
//!
//! ```text
//! cargo run --release -p memtube-bench -- --quick   # well under a minute
//! cargo run --release -p memtube-bench -- --full    # a few minutes
//! cargo run --release -p memtube-bench --features iceoryx2,tachyon -- --full
//! bench/tools/langs.sh --quick   # every language binding's round trip (--langs)
//! cargo run --release -p memtube-bench -- --full --fifo   # SCHED_FIFO + mlockall, for every system
//! ```
//!
//! The program starts its peer by re-executing itself (`--peer ...`); the two
//! share a memfd page (the command mailbox, the floor lines) and the kernel
//! baselines' descriptors. Each round runs every system once (A B C ... A B C);
//! each run is framed by a short one-line floor probe before and after, and
//! kept only if the two probes are at the same level (this VM's cross-core
//! latency jumps between levels every few seconds). Every figure is reported
//! as a ratio to its own run's floor, then summarised over the kept rounds.

mod langs;
mod plots;
mod report;
mod shm;
mod systems;
mod topology;

use rustix::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::error::Error;
use std::hint::spin_loop;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use systems::{Count, Ctx, Fds, Kind, Measured, Run, Sys};

/// Errors of the benchmark.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Any wait for the peer gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Payload sizes of the round trips and the streams.
pub const SIZES: [usize; 6] = [8, 32, 256, 1024, 4096, 65536];

/// Probes more than this factor apart mean the level changed during the run.
pub const LEVEL_TOLERANCE: f64 = 1.25;

/// Counts spins; says when [`TIMEOUT`] has passed (checks the clock rarely).
#[derive(Default)]
pub struct Spin {
    n: u32,
    since: Option<Instant>,
}

impl Spin {
    /// A fresh count.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one spin; true once [`TIMEOUT`] has passed since the first check.
    #[inline]
    pub fn expired(&mut self) -> bool {
        self.n = self.n.wrapping_add(1);
        self.n % 65_536 == 0 && self.since.get_or_insert_with(Instant::now).elapsed() > TIMEOUT
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the same clock in both processes).
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// How long each run is.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Mode {
    /// "quick" or "full".
    pub name: &'static str,
    /// Rounds (each runs every system once).
    pub rounds: usize,
    /// Round trips of a fast 8-byte run (fewer for slow systems and big payloads).
    pub round_trips: u64,
    /// Bytes of a streaming run.
    pub stream_bytes: u64,
    /// Messages of a wake-up run.
    pub wakes: u64,
    /// Round trips of each level probe.
    pub probe: u64,
}

impl Mode {
    fn quick() -> Self {
        Mode {
            name: "quick",
            rounds: 4,
            round_trips: 20_000,
            stream_bytes: 4 << 20,
            wakes: 25,
            probe: 2_000,
        }
    }

    fn full() -> Self {
        Mode {
            name: "full",
            rounds: 15,
            round_trips: 150_000,
            stream_bytes: 48 << 20,
            wakes: 150,
            probe: 5_000,
        }
    }

    /// Round trips or messages of a run.
    fn count(&self, sys: Sys, len: usize) -> u64 {
        let len = len as u64;
        match sys.row().count {
            Count::Probe => self.probe,
            Count::RoundTrips(n) => (self.round_trips / n / (1 + len / 2048)).max(300),
            Count::Kernel => (self.round_trips / 40).max(300),
            Count::Stream => (self.stream_bytes / len).clamp(1000, 2_000_000),
            Count::Memcpy => (4 * self.stream_bytes / len).max(1000),
            Count::Wakes => self.wakes,
        }
    }
}

/// Debugging aid: only the runs whose system's name contains `only` (or
/// one of several words separated by `|`), ignoring case (`only` comes
/// lowercased).
fn select(mut plan: Vec<(Sys, usize)>, only: Option<&str>) -> Vec<(Sys, usize)> {
    if let Some(word) = only {
        plan.retain(|(sys, _)| {
            let name = sys.name().to_lowercase();
            word.split('|').any(|w| name.contains(w))
        });
    }
    plan
}

/// One run's outcome.
pub struct Record {
    /// Round number.
    pub round: usize,
    /// The run.
    pub run: Run,
    /// Probe p50 before and after (ns).
    pub floor: (u64, u64),
    /// Whether the two probes were at the same level.
    pub kept: bool,
    /// What the run measured.
    pub measured: Measured,
}

/// The main process's connection to its peer.
struct Peer {
    child: Child,
    seq: u32,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `run` on both sides (the peer's through the mailbox).
fn execute(
    ctx: &mut Ctx,
    peer: &mut Peer,
    run: Run,
    echo_cpu: Option<usize>,
) -> Result<Result<Measured, String>, BoxError> {
    systems::prepare(ctx, run)?;
    if run.sys.needs_peer() {
        let m = &ctx.shm;
        m.u64(shm::CMD_SYS).store(run.sys.code(), Ordering::Relaxed);
        m.u64(shm::CMD_LEN).store(run.len as u64, Ordering::Relaxed);
        m.u64(shm::CMD_COUNT).store(run.count, Ordering::Relaxed);
        m.u64(shm::CMD_RUN).store(run.id, Ordering::Relaxed);
        peer.seq += 1;
        m.u32(shm::CMD_SEQ).store(peer.seq, Ordering::Release);
        rustix::thread::futex::wake(
            m.u32(shm::CMD_SEQ),
            rustix::thread::futex::Flags::empty(),
            1,
        )?;
    }
    let measured = systems::run_main(ctx, run, echo_cpu);
    if run.sys.needs_peer() {
        let done = ctx.shm.u32(shm::DONE_SEQ);
        let start = Instant::now();
        while done.load(Ordering::Acquire) != peer.seq {
            if start.elapsed() > TIMEOUT * 3 || peer.child.try_wait()?.is_some() {
                let main = measured.err().map_or("ok".to_string(), |e| e.to_string());
                return Err(
                    format!("{:?}: the peer did not finish; main side: {main}", run.sys).into(),
                );
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        if ctx.shm.u64(shm::PEER_FAILED).load(Ordering::Acquire) != 0 {
            let main = measured.err().map_or("ok".to_string(), |e| e.to_string());
            return Ok(Err(format!(
                "{:?} {} B: the peer side failed (see stderr); main side: {main}",
                run.sys, run.len
            )));
        }
    }
    Ok(measured.map_err(|e| format!("{:?} {} B: {e}", run.sys, run.len)))
}

/// The peer process: pin, then run the posted commands until told to stop.
fn peer_main(args: &[String]) -> Result<(), BoxError> {
    let num = |i: usize| -> Result<i32, BoxError> {
        Ok(args.get(i).ok_or("--peer: too few arguments")?.parse()?)
    };
    // SAFETY: the main process passed these inherited descriptors' numbers
    // on our command line; nothing else in this process owns them.
    let own = |fd: i32| unsafe { OwnedFd::from_raw_fd(fd) };
    let shm_fd = own(num(0)?);
    let shm = shm::Shm::map(shm_fd.as_fd(), false)?;
    let fds = Fds {
        uds: own(num(1)?),
        pipe_r: own(num(2)?),
        pipe_w: own(num(3)?),
        ev_r: own(num(4)?),
        ev_w: own(num(5)?),
    };
    let addr = args.get(6).ok_or("--peer: no address")?.clone();
    let cpu: Option<usize> = args.get(7).and_then(|c| c.parse().ok());
    let main_pid: u32 = args.get(8).ok_or("--peer: no pid")?.parse()?;
    if cpu.is_some_and(|c| !core_affinity::set_for_current(core_affinity::CoreId { id: c })) {
        shm.u64(shm::PEER_PIN_FAILED).store(1, Ordering::Relaxed);
    }
    if std::env::var_os("MEMTUBE_BENCH_FIFO").is_some() {
        lock_memory()?;
    }
    // Die with the main process, even in the middle of a run.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    let mut ctx = Ctx {
        shm,
        fds,
        addr,
        listener: None,
        main_pid,
        #[cfg(feature = "iceoryx2")]
        ice: None,
    };
    let mut last = 0u32;
    loop {
        // Spin briefly for the next command, then sleep on the mailbox word.
        let seq_word = ctx.shm.u32(shm::CMD_SEQ);
        let mut spins = 0u32;
        let seq = loop {
            let s = seq_word.load(Ordering::Acquire);
            if s != last {
                break s;
            }
            spins += 1;
            if spins < 20_000 {
                spin_loop();
                continue;
            }
            let t = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            let _ = rustix::thread::futex::wait(
                seq_word,
                rustix::thread::futex::Flags::empty(),
                last,
                Some(&t),
            );
            if rustix::process::getppid()
                .is_none_or(|p| p.as_raw_nonzero().get() as u32 != main_pid)
            {
                return Ok(()); // the main process is gone
            }
        };
        last = seq;
        let code = ctx.shm.u64(shm::CMD_SYS).load(Ordering::Relaxed);
        let Some(sys) = systems::Sys::from_code(code) else {
            return Ok(()); // the stop command
        };
        let run = Run {
            sys,
            len: ctx.shm.u64(shm::CMD_LEN).load(Ordering::Relaxed) as usize,
            count: ctx.shm.u64(shm::CMD_COUNT).load(Ordering::Relaxed),
            id: ctx.shm.u64(shm::CMD_RUN).load(Ordering::Relaxed),
        };
        let failed = match systems::run_peer(&mut ctx, run) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("peer: {sys:?} {} B: {e}", run.len);
                1
            }
        };
        ctx.shm
            .u64(shm::PEER_FAILED)
            .store(failed, Ordering::Relaxed);
        ctx.shm.u32(shm::DONE_SEQ).store(seq, Ordering::Release);
    }
}

/// Run this process (and the processes it starts, which inherit the
/// policy) under SCHED_FIFO at priority 99, with its memory locked, as
/// Tachyon's own benchmark runs both of its processes: `--fifo` gives every
/// system of a comparison the same policy. Needs root or CAP_SYS_NICE.
fn enter_fifo() -> Result<(), BoxError> {
    let param = libc::sched_param { sched_priority: 99 };
    // SAFETY: sched_setscheduler reads `param` (a valid, initialised struct)
    // during the call only; pid 0 is this process.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(format!(
            "--fifo: sched_setscheduler(SCHED_FIFO, 99): {} (needs root or CAP_SYS_NICE)",
            std::io::Error::last_os_error()
        )
        .into());
    }
    lock_memory()
}

/// mlockall(MCL_CURRENT), as Tachyon's benchmark does (the peer process
/// calls it for itself: locks are not inherited across exec).
fn lock_memory() -> Result<(), BoxError> {
    rustix::mm::mlockall(rustix::mm::MlockAllFlags::CURRENT)
        .map_err(|e| format!("--fifo: mlockall: {e}").into())
}

/// The scheduler policy of `pid` (field 41 of /proc/PID/stat).
fn sched_policy(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let policy = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(38))
        .and_then(|p| p.parse::<u32>().ok());
    match policy {
        Some(0) => "SCHED_OTHER".into(),
        Some(1) => "SCHED_FIFO".into(),
        Some(2) => "SCHED_RR".into(),
        Some(3) => "SCHED_BATCH".into(),
        Some(5) => "SCHED_IDLE".into(),
        Some(p) => format!("policy {p}"),
        None => "unknown".into(),
    }
}

struct Args {
    mode: Mode,
    out: PathBuf,
    only: Option<String>,
    list: bool,
    langs: Option<PathBuf>,
    fifo: bool,
}

fn parse_args(args: &[String]) -> Result<Args, BoxError> {
    let mut mode = Mode::quick();
    let mut rounds = None;
    let mut out = PathBuf::from("target/bench");
    let mut only = None;
    let mut list = false;
    let mut langs = None;
    let mut fifo = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => mode = Mode::quick(),
            "--full" => mode = Mode::full(),
            "--rounds" => rounds = Some(it.next().ok_or("--rounds N")?.parse()?),
            "--out" => out = PathBuf::from(it.next().ok_or("--out DIR")?),
            "--only" => only = Some(it.next().ok_or("--only WORD")?.to_lowercase()),
            "--list" => list = true,
            "--fifo" => fifo = true,
            "--langs" => langs = Some(PathBuf::from(it.next().ok_or("--langs DIR")?)),
            "-h" | "--help" => return Err(
                "usage: memtube-bench [--quick | --full] [--rounds N] [--out DIR] [--only WORD] [--list] [--langs DIR] [--fifo]\n       memtube-bench --selfloop raw|memtube|memtube-noiso N   (for callgrind)"
                    .into(),
            ),
            other => return Err(format!("unknown argument {other:?}; see --help").into()),
        }
    }
    if let Some(r) = rounds {
        if r == 0 {
            return Err("--rounds must be at least 1".into());
        }
        mode.rounds = r;
    }
    Ok(Args {
        mode,
        out,
        only,
        list,
        langs,
        fifo,
    })
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--peer") {
        return peer_main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--replot") {
        // Hidden: draw DIR/results.json's figures again (into OUT, else DIR),
        // running nothing.
        return match &args[1..] {
            [dir] => report::replot(dir.as_ref(), dir.as_ref()),
            [dir, flag, out] if flag == "--out" => report::replot(dir.as_ref(), out.as_ref()),
            _ => Err("--replot DIR [--out OUT]".into()),
        };
    }
    if let [flag, kind, n] = args.as_slice() {
        if flag == "--selfloop" {
            // Instruction counts per message (run under callgrind, N and 0).
            let n: u64 = n.parse()?;
            let sum = match kind.as_str() {
                "raw" => systems::selfloop_raw(n)?,
                "memtube" => systems::selfloop_memtube(n, true)?,
                "memtube-noiso" => systems::selfloop_memtube(n, false)?,
                other => {
                    return Err(
                        format!("--selfloop raw|memtube|memtube-noiso N, not {other:?}").into(),
                    )
                }
            };
            println!("{kind}: {n} messages sent and received on one thread (checksum {sum})");
            return Ok(());
        }
    }
    let Args {
        mode,
        out,
        only,
        list,
        langs,
        fifo,
    } = parse_args(&args)?;
    let langs = match langs {
        Some(dir) => Some((langs::available(&dir)?, dir)),
        None => None,
    };
    if list {
        // The runs of a round, without running them.
        for (sys, len) in select(systems::plan(), only.as_deref()) {
            let kind = match sys.kind() {
                Kind::RoundTrip => "round trip",
                Kind::Stream => "stream",
                Kind::Wake => "wake-up",
            };
            let side = if sys.needs_peer() {
                ""
            } else {
                " (one process)"
            };
            println!(
                "{kind}\t{len} B\t{} per run\t{}{side}",
                mode.count(sys, len),
                sys.name()
            );
        }
        return Ok(());
    }
    let started = Instant::now();
    if fifo {
        enter_fifo()?;
    }

    // Descriptors for the peer (inheritable: no close-on-exec).
    let (shm_fd, shm) = shm::Shm::create()?;
    let (uds_a, uds_b) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::empty(),
        None,
    )?;
    let (p1r, p1w) = rustix::pipe::pipe()?;
    let (p2r, p2w) = rustix::pipe::pipe()?;
    let e1 = rustix::event::eventfd(0, rustix::event::EventfdFlags::empty())?;
    let e2 = rustix::event::eventfd(0, rustix::event::EventfdFlags::empty())?;
    let main_pid = std::process::id();
    let addr = format!("@memtube-bench-{main_pid}");
    let listener = memtube::listen(addr.as_str(), &memtube::Options::new())?;

    let cpu_count = std::thread::available_parallelism().map_or(0, |n| n.get());
    // Read the allowed CPUs before pinning (the child inherits our mask).
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let (main_cpu, echo_cpu) = match cpus.as_slice() {
        [a, b, ..] => (Some(a.id), Some(b.id)),
        _ => (None, None),
    };
    let mut child = Command::new(std::env::current_exe()?);
    if fifo {
        child.env("MEMTUBE_BENCH_FIFO", "1");
    }
    let child = child
        .arg("--peer")
        .args(
            [
                shm_fd.as_raw_fd(),
                uds_b.as_raw_fd(),
                p1r.as_raw_fd(),
                p2w.as_raw_fd(),
                e1.as_raw_fd(),
                e2.as_raw_fd(),
            ]
            .map(|fd| fd.to_string()),
        )
        .args([
            addr.clone(),
            echo_cpu.map_or("-".into(), |c| c.to_string()),
            main_pid.to_string(),
        ])
        .spawn()?;
    let mut peer = Peer { child, seq: 0 };
    drop((uds_b, p1r, p2w, shm_fd));
    let main_pinned =
        main_cpu.is_some_and(|c| core_affinity::set_for_current(core_affinity::CoreId { id: c }));
    let mut ctx = Ctx {
        shm,
        fds: Fds {
            uds: uds_a,
            pipe_r: p2r,
            pipe_w: p1w,
            ev_r: e2,
            ev_w: e1,
        },
        addr,
        listener: Some(listener),
        main_pid,
        #[cfg(feature = "iceoryx2")]
        ice: None,
    };

    let plan = select(systems::plan(), only.as_deref());
    if langs.is_none() {
        println!(
            "memtube-bench --{}: {} rounds of {} runs each (A B C ... A B C); every run framed by a {}-round-trip one-line floor probe",
            mode.name,
            mode.rounds,
            plan.len(),
            mode.probe
        );
    }
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; build with --release for meaningful numbers");
    }
    let mut records = Vec::new();
    let mut failures = Vec::new();
    let mut run_id = 0u64;
    let probe = |ctx: &mut Ctx, peer: &mut Peer, id: u64| -> Result<u64, BoxError> {
        let run = Run {
            sys: Sys::PROBE,
            len: 8,
            count: mode.probe,
            id,
        };
        match execute(ctx, peer, run, echo_cpu)? {
            Ok(Measured::Latency(h)) => Ok(h.value_at_quantile(0.5)),
            Ok(Measured::Stream { .. }) => Err("probe: not a latency".into()),
            Err(e) => Err(e.into()),
        }
    };
    let mut lang_runs = Vec::new();
    // Enough round trips for JIT-compiled bindings (Java, Node.js) to warm
    // up in the untimed tenth before the timed ones.
    let lang_round_trips = mode.round_trips.max(langs::MIN_ROUND_TRIPS);
    if let Some((langs, dir)) = &langs {
        let pairs = langs::pairs(langs);
        println!(
            "--langs {}: {} pairs per round ({}), {} B round trips, {} per run, spin mode",
            dir.display(),
            pairs.len(),
            langs.join(", "),
            langs::SIZE,
            lang_round_trips
        );
        for round in 0..mode.rounds {
            for &pair in &pairs {
                run_id += 1;
                let before = probe(&mut ctx, &mut peer, run_id)?;
                let addr = format!("@memtube-bench-{main_pid}-lang-{run_id}");
                let (p50, p99, p999) =
                    match langs::run_pair(dir, pair, lang_round_trips, echo_cpu, &addr) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("run failed: {} → {}: {e}", pair.ping, pair.echo);
                            failures.push(report::Failure {
                                round,
                                system: "langs",
                                payload_bytes: langs::SIZE,
                                error: format!("{} → {}: {e}", pair.ping, pair.echo),
                            });
                            continue;
                        }
                    };
                let after = probe(&mut ctx, &mut peer, run_id)?;
                lang_runs.push(langs::LangRun {
                    round,
                    pair,
                    round_trips: lang_round_trips,
                    p50_ns: p50,
                    p99_ns: p99,
                    p999_ns: p999,
                    floor_ns: (before, after),
                    kept: langs::same_level(before, after),
                });
            }
            eprintln!(
                "round {}/{}: {} of {} runs kept, {:.1} s so far",
                round + 1,
                mode.rounds,
                lang_runs
                    .iter()
                    .filter(|r| r.round == round && r.kept)
                    .count(),
                pairs.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    // The plan's rounds, unless this run is --langs.
    let plan_rounds = if langs.is_some() { 0 } else { mode.rounds };
    for round in 0..plan_rounds {
        let mut kept = 0;
        for &(sys, len) in &plan {
            run_id += 1;
            let run = Run {
                sys,
                len,
                count: mode.count(sys, len),
                id: run_id,
            };
            let before = probe(&mut ctx, &mut peer, run_id)?;
            let measured = match execute(&mut ctx, &mut peer, run, echo_cpu)? {
                Ok(m) => m,
                Err(e) => {
                    // Recorded and reported; the round goes on.
                    eprintln!("run failed: {e}");
                    failures.push(report::Failure {
                        round,
                        system: sys.name(),
                        payload_bytes: len,
                        error: e,
                    });
                    continue;
                }
            };
            let after = probe(&mut ctx, &mut peer, run_id)?;
            let same =
                before.max(after) as f64 <= LEVEL_TOLERANCE * before.min(after).max(1) as f64;
            kept += usize::from(same);
            records.push(Record {
                round,
                run,
                floor: (before, after),
                kept: same,
                measured,
            });
        }
        eprintln!(
            "round {}/{}: {kept} of {} runs kept, {:.1} s so far",
            round + 1,
            mode.rounds,
            plan.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let scheduler = format!(
        "main {}, peer {}",
        sched_policy(main_pid),
        sched_policy(peer.child.id())
    );
    // Stop the peer.
    ctx.shm.u64(shm::CMD_SYS).store(u64::MAX, Ordering::Relaxed);
    peer.seq += 1;
    ctx.shm.u32(shm::CMD_SEQ).store(peer.seq, Ordering::Release);
    rustix::thread::futex::wake(
        ctx.shm.u32(shm::CMD_SEQ),
        rustix::thread::futex::Flags::empty(),
        1,
    )?;
    let status = peer.child.wait()?;
    if !status.success() {
        return Err(format!("the peer process failed: {status}").into());
    }

    let machine = report::Machine {
        cpu_model: report::cpu_model(),
        cpus: cpu_count,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        pinning: match (main_cpu, echo_cpu) {
            (Some(m), Some(e))
                if main_pinned
                    && ctx.shm.u64(shm::PEER_PIN_FAILED).load(Ordering::Relaxed) == 0 =>
            {
                format!("main process on CPU {m}, peer process on CPU {e} (sched_setaffinity)")
            }
            _ => "not pinned (fewer than two CPUs allowed, or sched_setaffinity failed)".into(),
        },
        placement: match (main_cpu, echo_cpu) {
            (Some(m), Some(e)) => topology::placement(m, e).to_string(),
            _ => topology::Placement::Unknown.to_string(),
        },
        scheduler,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        features: [
            cfg!(feature = "iceoryx2").then_some("iceoryx2"),
            cfg!(feature = "tachyon").then_some("tachyon"),
        ]
        .into_iter()
        .flatten()
        .map(String::from)
        .collect(),
        defaults: match (
            memtube::ring::default_nontemporal_threshold(),
            memtube::ring::default_stream_nontemporal_threshold(),
        ) {
            (u32::MAX, _) => "non-temporal copies off".into(),
            (t, u32::MAX) => format!("non-temporal copies from {t} B"),
            (t, s) => format!(
                "non-temporal copies from {t} B, from {s} B for sends that follow each other back to back"
            ),
        },
    };
    if let Some((langs, _)) = &langs {
        return langs::write_report(
            &out,
            mode,
            &machine,
            langs,
            lang_round_trips,
            &lang_runs,
            &failures,
        );
    }
    report::write_all(&out, mode, &machine, &records, &failures, started.elapsed())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::select;
    use crate::systems;

    /// `--only` words come lowercased; names with capitals (the "4 MiB"
    /// rows) must still be found, by any case of any part of their name.
    #[test]
    fn only_ignores_case() {
        let plan = systems::plan();
        let four = select(plan.clone(), Some("memtube copy, 4 mib ring"));
        assert!(!four.is_empty());
        assert!(four
            .iter()
            .all(|(s, _)| s.name().starts_with("memtube copy, 4 MiB ring")));
        let either = select(plan.clone(), Some("4 mib ring|tachyon"));
        assert!(either.len() > four.len());
        assert_eq!(select(plan.clone(), None).len(), plan.len());
        assert!(select(plan, Some("no such system")).is_empty());
    }
}
