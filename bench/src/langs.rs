//! `--langs DIR`: the 32-byte round trip of every language binding, against
//! itself and against Rust, in interleaved rounds framed by the one-line
//! floor probe (the same probe and the same level rule as every other run).
//!
//! DIR holds one interop peer per language, `DIR/interop-LANG` (built by
//! `bench/tools/langs.sh`: examples/interop.rs, examples/c/interop.c,
//! bindings/python/tests/peer.py and each binding's `build-peer.sh`), all
//! with examples/interop.rs's command line. A run starts the echo
//! (`--listen ADDR --echo --spin`) pinned to the peer's CPU and the pinger
//! (`--connect ADDR --ping N --spin`) on this process's CPU (inherited),
//! and takes the pinger's own percentiles: each language times its round
//! trips with its own monotonic clock, one reading per round trip.
//!
//! The pairs of a round: Rust ↔ Rust, then for each other language X:
//! X ↔ X, X pinging a Rust echo, Rust pinging an X echo. Each run's p50 is
//! reported over its own floor and over the Rust ↔ Rust run of the same
//! round (the overhead of the binding), then summarised (median) over the
//! kept rounds.

use crate::{BoxError, LEVEL_TOLERANCE, TIMEOUT};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The languages, in report order; Rust is the reference and must be there.
pub const LANGS: [&str; 6] = ["rust", "c", "python", "go", "node", "java"];

/// Round trips per run, at least (a tenth of them, untimed, warm up the
/// JIT of Java and Node.js: Java's C2 compiler needs about 10 000 calls).
pub const MIN_ROUND_TRIPS: u64 = 200_000;

/// The payload of every round trip (bytes).
pub const SIZE: usize = 32;

/// One pair: who pings, who echoes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Pair {
    /// The timing side.
    pub ping: &'static str,
    /// The echoing side.
    pub echo: &'static str,
}

/// One run's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LangRun {
    /// Round number (from 0).
    pub round: usize,
    /// The pair.
    pub pair: Pair,
    /// Round trips timed.
    pub round_trips: u64,
    /// The pinger's p50, p99, p99.9 (ns).
    pub p50_ns: u64,
    /// p99 (ns).
    pub p99_ns: u64,
    /// p99.9 (ns).
    pub p999_ns: u64,
    /// Floor probe p50 before and after (ns).
    pub floor_ns: (u64, u64),
    /// Whether the two probes were at the same level.
    pub kept: bool,
}

/// The pairs of one round.
pub fn pairs(langs: &[&'static str]) -> Vec<Pair> {
    let mut v = vec![Pair {
        ping: "rust",
        echo: "rust",
    }];
    for &x in langs.iter().filter(|&&l| l != "rust") {
        v.push(Pair { ping: x, echo: x });
        v.push(Pair {
            ping: x,
            echo: "rust",
        });
        v.push(Pair {
            ping: "rust",
            echo: x,
        });
    }
    v
}

/// The languages whose peers are in `dir`, in [`LANGS`] order.
pub fn available(dir: &Path) -> Result<Vec<&'static str>, BoxError> {
    let langs: Vec<_> = LANGS
        .into_iter()
        .filter(|l| dir.join(format!("interop-{l}")).exists())
        .collect();
    if !langs.contains(&"rust") {
        return Err(format!(
            "{}: no interop-rust (build the peers with bench/tools/langs.sh)",
            dir.display()
        )
        .into());
    }
    Ok(langs)
}

/// Kill and reap a child on every path out.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Wait for `child` to exit, at most `limit`; its stdout's last line.
fn finish(child: &mut Reaped, limit: Duration) -> Result<String, BoxError> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait()? {
            let mut out = String::new();
            if let Some(mut s) = child.0.stdout.take() {
                s.read_to_string(&mut out)?;
            }
            let last = out.lines().last().unwrap_or_default().to_string();
            if !status.success() || !last.starts_with("ok ") {
                return Err(format!("exited with {status}: {last}").into());
            }
            return Ok(last);
        }
        if start.elapsed() > limit {
            return Err(format!("no end after {} s", limit.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The value of `key=` on a closing line.
fn field(line: &str, key: &str) -> Result<u64, BoxError> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key} in {line:?}"))?
        .parse()
        .map_err(|e| format!("{key} in {line:?}: {e}").into())
}

/// One run: the echo on `echo_cpu`, the pinger here (on this process's CPU).
pub fn run_pair(
    dir: &Path,
    pair: Pair,
    n: u64,
    echo_cpu: Option<usize>,
    addr: &str,
) -> Result<(u64, u64, u64), BoxError> {
    let exe = |lang: &str| -> PathBuf { dir.join(format!("interop-{lang}")) };
    let size = SIZE.to_string();
    let mut echo = Command::new(exe(pair.echo));
    echo.args(["--listen", addr, "--echo", "--spin", "--size", &size])
        .args(["--timeout", &TIMEOUT.as_secs().to_string()])
        .stdout(Stdio::piped());
    if let Some(cpu) = echo_cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        // SAFETY: the closure runs in the forked child before exec; it only
        // makes one system call (sched_setaffinity) on a set built before
        // the fork: no allocation, no lock, nothing that is unsafe after fork.
        unsafe {
            echo.pre_exec(move || {
                rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
            });
        }
    }
    let mut echo = Reaped(echo.spawn()?);
    let mut first = String::new();
    BufReader::new(echo.0.stdout.as_mut().ok_or("echo: no stdout")?).read_line(&mut first)?;
    if first.trim() != "listening" {
        return Err(format!("{} echo: {first:?} instead of \"listening\"", pair.echo).into());
    }
    let mut ping = Reaped(
        Command::new(exe(pair.ping))
            .args(["--connect", addr, "--ping", &n.to_string(), "--spin"])
            .args(["--size", &size, "--timeout", &TIMEOUT.as_secs().to_string()])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let limit = TIMEOUT * 6;
    let line = finish(&mut ping, limit).map_err(|e| format!("{} ping: {e}", pair.ping))?;
    finish(&mut echo, limit).map_err(|e| format!("{} echo: {e}", pair.echo))?;
    if field(&line, "count")? != n {
        return Err(format!("{} ping: {line}", pair.ping).into());
    }
    Ok((
        field(&line, "p50_ns")?,
        field(&line, "p99_ns")?,
        field(&line, "p999_ns")?,
    ))
}

/// Whether two probes are at the same level.
pub fn same_level(before: u64, after: u64) -> bool {
    before.max(after) as f64 <= LEVEL_TOLERANCE * before.min(after).max(1) as f64
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// One pair's summary over the kept rounds.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// The pair.
    pub pair: Pair,
    /// Kept rounds / rounds.
    pub kept: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Median p50 (ns).
    pub p50_ns: Option<f64>,
    /// Median p99 (ns).
    pub p99_ns: Option<f64>,
    /// Median of p50 / that run's floor (the mean of its two probes).
    pub p50_over_floor: Option<f64>,
    /// Median of p50 / the same round's Rust ↔ Rust p50 (rounds where both
    /// were kept and their floors were at the same level).
    pub p50_over_rust: Option<f64>,
    /// Median of p50 − the same round's Rust ↔ Rust p50 (ns; the same
    /// rounds): what the binding adds to a round trip, which unlike the
    /// ratio does not move with this machine's latency level.
    pub p50_minus_rust_ns: Option<f64>,
    /// Min and max of that ratio.
    pub p50_over_rust_range: Option<(f64, f64)>,
}

/// Summaries per pair, in `pairs` order.
pub fn summarize(pairs: &[Pair], runs: &[LangRun]) -> Vec<Summary> {
    let rust = Pair {
        ping: "rust",
        echo: "rust",
    };
    pairs
        .iter()
        .map(|&pair| {
            let all: Vec<_> = runs.iter().filter(|r| r.pair == pair).collect();
            let kept: Vec<_> = all.iter().filter(|r| r.kept).collect();
            let floor = |r: &LangRun| (r.floor_ns.0 + r.floor_ns.1) as f64 / 2.0;
            // The same round's Rust ↔ Rust run, if its floor was at the same
            // level as this run's (the level can change between two runs).
            let bases: Vec<(&LangRun, &LangRun)> = kept
                .iter()
                .filter_map(|r| {
                    let base = runs.iter().find(|b| {
                        b.pair == rust
                            && b.round == r.round
                            && b.kept
                            && same_level(floor(b) as u64, floor(r) as u64)
                    })?;
                    Some((**r, base))
                })
                .collect();
            let over_rust: Vec<f64> = bases
                .iter()
                .map(|(r, b)| r.p50_ns as f64 / b.p50_ns.max(1) as f64)
                .collect();
            let minus_rust: Vec<f64> = bases
                .iter()
                .map(|(r, b)| r.p50_ns as f64 - b.p50_ns as f64)
                .collect();
            let range = over_rust.iter().fold(None, |acc: Option<(f64, f64)>, &x| {
                Some(acc.map_or((x, x), |(a, b)| (a.min(x), b.max(x))))
            });
            Summary {
                pair,
                kept: kept.len(),
                rounds: all.len(),
                p50_ns: median(kept.iter().map(|r| r.p50_ns as f64).collect()),
                p99_ns: median(kept.iter().map(|r| r.p99_ns as f64).collect()),
                p50_over_floor: median(kept.iter().map(|r| r.p50_ns as f64 / floor(r)).collect()),
                p50_over_rust: median(over_rust),
                p50_minus_rust_ns: median(minus_rust),
                p50_over_rust_range: range,
            }
        })
        .collect()
}

/// Print and write (`out/langs.md`, `out/langs.json`) the summaries of
/// `runs`; an error if any run failed.
pub fn write_report(
    out: &Path,
    mode: crate::Mode,
    machine: &crate::report::Machine,
    langs: &[&'static str],
    round_trips: u64,
    runs: &[LangRun],
    failures: &[crate::report::Failure],
) -> Result<(), BoxError> {
    let summaries = summarize(&pairs(langs), runs);
    let header = format!(
        "{SIZE} B round trips, spin mode, {} ({} CPUs, kernel {}); {}; the two CPUs: {}; {} rounds of {round_trips} round trips, medians over the kept rounds",
        machine.cpu_model, machine.cpus, machine.kernel, machine.pinning, machine.placement, mode.rounds,
    );
    let md = table(&summaries, &header);
    println!("\n{md}");
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("langs.md"), &md)?;
    let json = serde_json::json!({
        "machine": machine,
        "mode": mode,
        "summaries": summaries,
        "runs": runs,
        "failures": failures,
    });
    std::fs::write(out.join("langs.json"), serde_json::to_string_pretty(&json)?)?;
    println!("wrote {}/langs.md and langs.json", out.display());
    if !failures.is_empty() {
        return Err(format!("{} runs failed", failures.len()).into());
    }
    Ok(())
}

/// The markdown table of the summaries.
pub fn table(summaries: &[Summary], header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}\n");
    let _ = writeln!(
        s,
        "| ping → echo | kept | p50 ns | p99 ns | p50 / floor | p50 / Rust↔Rust (range) | p50 − Rust↔Rust |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let f = |x: Option<f64>, d: usize| x.map_or("–".into(), |v| format!("{v:.d$}"));
    for m in summaries {
        let range = m
            .p50_over_rust_range
            .map_or(String::new(), |(a, b)| format!(" ({a:.2}–{b:.2})"));
        let _ = writeln!(
            s,
            "| {} → {} | {}/{} | {} | {} | {} | {}{range} | {} ns |",
            m.pair.ping,
            m.pair.echo,
            m.kept,
            m.rounds,
            f(m.p50_ns, 0),
            f(m.p99_ns, 0),
            f(m.p50_over_floor, 2),
            f(m.p50_over_rust, 2),
            f(m.p50_minus_rust_ns, 0),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, ping: &'static str, echo: &'static str, p50: u64, kept: bool) -> LangRun {
        LangRun {
            round,
            pair: Pair { ping, echo },
            round_trips: 1,
            p50_ns: p50,
            p99_ns: p50 * 2,
            p999_ns: p50 * 3,
            floor_ns: (100, 100),
            kept,
        }
    }

    #[test]
    fn ratios_use_the_same_rounds_rust_run_and_skip_dropped_rounds() {
        let pairs = pairs(&["rust", "go"]);
        assert_eq!(pairs.len(), 4);
        let runs = vec![
            run(0, "rust", "rust", 200, true),
            run(0, "go", "go", 300, true),
            run(1, "rust", "rust", 400, true),
            run(1, "go", "go", 800, true),
            run(2, "rust", "rust", 100, false),
            run(2, "go", "go", 5000, true),
        ];
        let s = summarize(&pairs, &runs);
        let go = &s[1];
        assert_eq!((go.kept, go.rounds), (3, 3));
        // Round 2's Rust run was dropped: only rounds 0 and 1 give ratios.
        assert_eq!(go.p50_over_rust, Some(1.75));
        assert_eq!(go.p50_over_rust_range, Some((1.5, 2.0)));
        assert_eq!(go.p50_minus_rust_ns, Some(250.0));
        assert_eq!(s[0].p50_ns, Some(300.0));
        assert_eq!(s[2].p50_ns, None);
        assert!(table(&s, "t").contains("| go → go | 3/3 | 800 |"));
        assert!(table(&s, "t").contains("| 250 ns |"));
    }

    #[test]
    fn no_ratio_across_latency_levels() {
        let pairs = pairs(&["rust", "go"]);
        let mut slow = run(0, "go", "go", 900, true);
        slow.floor_ns = (300, 310); // kept, but at another level than Rust's run
        let runs = vec![
            run(0, "rust", "rust", 200, true),
            slow,
            run(1, "rust", "rust", 210, true),
            run(1, "go", "go", 400, true),
        ];
        let s = summarize(&pairs, &runs);
        assert_eq!(
            s[1].p50_over_rust_range,
            Some((400.0 / 210.0, 400.0 / 210.0))
        );
        assert_eq!(s[1].p50_minus_rust_ns, Some(190.0));
    }

    #[test]
    fn closing_line_fields() {
        let line = "ok count=5 bytes=160 fnv=0 secs=0.1 p50_ns=180 p99_ns=270 p999_ns=1953";
        assert_eq!(field(line, "p50_ns").unwrap(), 180);
        assert_eq!(field(line, "count").unwrap(), 5);
        assert!(field(line, "p90_ns").is_err());
    }
}
