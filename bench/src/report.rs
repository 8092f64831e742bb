//! Summaries over the kept rounds, and the outputs: a markdown table
//! (stdout and `results.md`), `results.json` with every raw figure, and the
//! figures of [`crate::plots`].

use crate::plots::{self, size_name};
use crate::systems::{names, Kind, Measured, Sys};
use crate::{BoxError, Mode, Record, LEVEL_TOLERANCE};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The machine the figures come from.
#[derive(Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs available to the process.
    pub cpus: usize,
    /// /proc/sys/kernel/osrelease.
    pub kernel: String,
    /// Where the two processes ran.
    pub pinning: String,
    /// How the two CPUs relate (SMT siblings, shared cache, ...).
    pub placement: String,
    /// Both processes' scheduler policies.
    pub scheduler: String,
    /// "release" or "debug".
    pub build: String,
    /// Optional baselines compiled in.
    pub features: Vec<String>,
    /// The defaults memtube picked for this machine.
    pub defaults: String,
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A run that failed (recorded, not measured; its round goes on).
#[derive(Serialize)]
pub struct Failure {
    /// Round number.
    pub round: usize,
    /// The system.
    pub system: &'static str,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// What went wrong.
    pub error: String,
}

/// Percentiles of one histogram (ns).
#[derive(Serialize, Deserialize, Clone, Copy, Default)]
#[serde(default)]
pub struct Pcts {
    count: u64,
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    p9999: u64,
    max: u64,
    /// Mean of the samples up to p99 (ns): finer than the percentiles,
    /// which move in steps of the ~10 ns clock, and free of the rare
    /// interruptions that dominate a plain mean.
    mean_to_p99: f64,
}

fn pcts(h: &Histogram<u64>) -> Pcts {
    Pcts {
        count: h.len(),
        min: h.min(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        p9999: h.value_at_quantile(0.9999),
        max: h.max(),
        mean_to_p99: mean_to(h, h.value_at_quantile(0.99)),
    }
}

/// The mean of the recorded values up to `limit`.
fn mean_to(h: &Histogram<u64>, limit: u64) -> f64 {
    let (mut sum, mut n) = (0f64, 0u64);
    for v in h.iter_recorded() {
        if v.value_iterated_to() > limit {
            break;
        }
        sum += h.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64;
        n += v.count_at_value();
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The median and the spread of a figure over rounds.
#[derive(Serialize, Deserialize, Clone, Copy)]
pub struct Spread {
    median: f64,
    min: f64,
    max: f64,
    rounds: usize,
}

fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        rounds: n,
    })
}

/// One raw run in the JSON.
#[derive(Serialize)]
struct RunJson {
    round: usize,
    run: u64,
    system: &'static str,
    kind: &'static str,
    payload_bytes: usize,
    count: u64,
    floor_before_p50_ns: u64,
    floor_after_p50_ns: u64,
    kept: bool,
    latency_ns: Option<Pcts>,
    messages: Option<u64>,
    seconds: Option<f64>,
    messages_per_s: Option<f64>,
    gb_per_s: Option<f64>,
}

/// One system and size over all rounds.
#[derive(Serialize)]
struct Summary {
    system: &'static str,
    kind: &'static str,
    payload_bytes: usize,
    rounds_kept: usize,
    rounds_dropped: usize,
    /// Latency: p50 / the run's own floor; stream: ns per message / floor.
    over_floor: Option<Spread>,
    /// Latency only: p50 / the ring floor (64 KiB) of the same round.
    over_ring_floor: Option<Spread>,
    /// p50 (latency) or messages/s (stream) / iceoryx2's, same round and size.
    over_iceoryx2: Option<Spread>,
    /// The same against Tachyon.
    over_tachyon: Option<Spread>,
    /// Stream: GB/s / memcpy's GB/s (64 KiB), same round.
    over_memcpy: Option<Spread>,
    /// Stream: messages/s / the faster transfer floor's (ordinary or
    /// non-temporal stores), same round and size.
    over_transfer_floor: Option<Spread>,
    /// Wake-up: p50 / the futex wake-up's, same round.
    over_futex_wake: Option<Spread>,
    /// Fan-in stream: the aggregate messages/s / the single pair's
    /// ("memtube copy"), same round and size.
    over_single_pair: Option<Spread>,
    /// Latency: p50 over kept rounds (ns).
    p50_ns: Option<Spread>,
    /// Latency: each kept run's p99.9 / its own p50 (same level by construction).
    p999_over_p50: Option<Spread>,
    /// Latency: percentiles of all kept rounds' samples merged.
    merged_ns: Option<Pcts>,
    /// Stream: messages/s over kept rounds.
    messages_per_s: Option<Spread>,
    /// Stream: GB/s over kept rounds.
    gb_per_s: Option<Spread>,
}

#[derive(Serialize)]
struct Output<'a> {
    tool: &'static str,
    mode: Mode,
    level_tolerance: f64,
    machine: &'a Machine,
    elapsed_s: f64,
    runs_total: usize,
    runs_kept: usize,
    runs_dropped: usize,
    kept_per_round: Vec<usize>,
    dropped_per_round: Vec<usize>,
    summaries: Vec<Summary>,
    failed_runs: &'a [Failure],
    runs: Vec<RunJson>,
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::RoundTrip => "round_trip",
        Kind::Stream => "stream",
        Kind::Wake => "wake_up",
    }
}

fn floor_of(r: &Record) -> f64 {
    (r.floor.0 + r.floor.1) as f64 / 2.0
}

fn p50(r: &Record) -> Option<f64> {
    match &r.measured {
        Measured::Latency(h) => Some(h.value_at_quantile(0.5) as f64),
        Measured::Stream { .. } => None,
    }
}

fn rate(r: &Record) -> Option<f64> {
    match r.measured {
        Measured::Stream { messages, seconds } if seconds > 0.0 => Some(messages as f64 / seconds),
        _ => None,
    }
}

/// Everything about the runs, indexed by (system, size) and round.
struct Index<'a> {
    by: BTreeMap<(Sys, usize), BTreeMap<usize, &'a Record>>,
}

impl<'a> Index<'a> {
    fn new(records: &'a [Record]) -> Self {
        let mut by: BTreeMap<(Sys, usize), BTreeMap<usize, &Record>> = BTreeMap::new();
        for r in records {
            by.entry((r.run.sys, r.run.len))
                .or_default()
                .insert(r.round, r);
        }
        Index { by }
    }

    fn kept(&self, sys: Sys, len: usize, round: usize) -> Option<&'a Record> {
        self.by
            .get(&(sys, len))
            .and_then(|m| m.get(&round))
            .copied()
            .filter(|r| r.kept)
    }

    /// Per-round ratios f(this) / f(other), over rounds where both were kept.
    fn ratio(
        &self,
        this: &[&Record],
        other: (Option<Sys>, usize),
        f: impl Fn(&Record) -> Option<f64>,
    ) -> Option<Spread> {
        let v = this
            .iter()
            .filter_map(|r| {
                let o = self.kept(other.0?, other.1, r.round)?;
                Some(f(r)? / f(o)?)
            })
            .collect();
        spread(v)
    }
}

/// Each (system, size)'s histograms of its kept rounds, merged.
type Merged = BTreeMap<(Sys, usize), Histogram<u64>>;

fn summarize(order: &[(Sys, usize)], records: &[Record]) -> (Vec<Summary>, Merged) {
    let index = Index::new(records);
    // The systems others are compared with (absent ones give no ratio).
    let ring_floor = Sys::find(Kind::RoundTrip, names::RING_FLOOR_64K);
    let iceoryx2 = Sys::find(Kind::RoundTrip, names::ICEORYX2);
    let tachyon = Sys::find(Kind::RoundTrip, names::TACHYON);
    let futex_wake = Sys::find(Kind::Wake, names::FUTEX);
    let single_pair = Sys::find(Kind::Stream, names::COPY);
    let iceoryx2_stream = Sys::find(Kind::Stream, names::ICEORYX2);
    let tachyon_stream = Sys::find(Kind::Stream, names::TACHYON);
    let memcpy = Sys::find(Kind::Stream, names::MEMCPY);
    let transfer = [
        Sys::find(Kind::Stream, names::TRANSFER_PLAIN),
        Sys::find(Kind::Stream, names::TRANSFER_NT),
    ];
    let transfer_4m = [
        Sys::find(Kind::Stream, names::TRANSFER_PLAIN_4M),
        Sys::find(Kind::Stream, names::TRANSFER_NT_4M),
    ];
    let mut merged_all = BTreeMap::new();
    let mut out = Vec::new();
    for &(sys, len) in order {
        let Some(runs) = index.by.get(&(sys, len)) else {
            continue;
        };
        let kept: Vec<&Record> = runs.values().copied().filter(|r| r.kept).collect();
        let dropped = runs.len() - kept.len();
        let mut s = Summary {
            system: sys.name(),
            kind: kind_name(sys.kind()),
            payload_bytes: len,
            rounds_kept: kept.len(),
            rounds_dropped: dropped,
            over_floor: None,
            over_ring_floor: None,
            over_iceoryx2: None,
            over_tachyon: None,
            over_memcpy: None,
            over_transfer_floor: None,
            over_futex_wake: None,
            over_single_pair: None,
            p50_ns: None,
            p999_over_p50: None,
            merged_ns: None,
            messages_per_s: None,
            gb_per_s: None,
        };
        match sys.kind() {
            Kind::RoundTrip | Kind::Wake => {
                s.over_floor = spread(
                    kept.iter()
                        .filter_map(|r| Some(p50(r)? / floor_of(r)))
                        .collect(),
                );
                s.p50_ns = spread(kept.iter().filter_map(|r| p50(r)).collect());
                s.p999_over_p50 = spread(
                    kept.iter()
                        .filter_map(|r| match &r.measured {
                            Measured::Latency(h) => Some(
                                h.value_at_quantile(0.999) as f64
                                    / h.value_at_quantile(0.5).max(1) as f64,
                            ),
                            Measured::Stream { .. } => None,
                        })
                        .collect(),
                );
                let mut merged: Option<Histogram<u64>> = None;
                for r in &kept {
                    if let Measured::Latency(h) = &r.measured {
                        match merged.as_mut() {
                            Some(m) => {
                                let _ = m.add(h);
                            }
                            None => merged = Some(h.clone()),
                        }
                    }
                }
                s.merged_ns = merged.as_ref().map(pcts);
                if let Some(m) = merged {
                    merged_all.insert((sys, len), m);
                }
                if sys.kind() == Kind::RoundTrip {
                    s.over_ring_floor = index.ratio(&kept, (ring_floor, 8), p50);
                    if Some(sys) != iceoryx2 {
                        s.over_iceoryx2 = index.ratio(&kept, (iceoryx2, len), p50);
                    }
                    if Some(sys) != tachyon {
                        s.over_tachyon = index.ratio(&kept, (tachyon, len), p50);
                    }
                } else if Some(sys) != futex_wake {
                    s.over_futex_wake = index.ratio(&kept, (futex_wake, 8), p50);
                }
            }
            Kind::Stream => {
                s.messages_per_s = spread(kept.iter().filter_map(|r| rate(r)).collect());
                s.gb_per_s = spread(
                    kept.iter()
                        .filter_map(|r| Some(rate(r)? * len as f64 / 1e9))
                        .collect(),
                );
                s.over_floor = spread(
                    kept.iter()
                        .filter_map(|r| Some(1e9 / rate(r)? / floor_of(r)))
                        .collect(),
                );
                if Some(sys) != iceoryx2_stream && Some(sys) != memcpy {
                    s.over_iceoryx2 = index.ratio(&kept, (iceoryx2_stream, len), rate);
                }
                if Some(sys) != tachyon_stream && Some(sys) != memcpy {
                    s.over_tachyon = index.ratio(&kept, (tachyon_stream, len), rate);
                }
                // No transfer floor was measured over 1 MiB: the "1 MiB
                // ring" streams get no such ratio.
                if !transfer.contains(&Some(sys))
                    && !transfer_4m.contains(&Some(sys))
                    && Some(sys) != memcpy
                    && !sys.name().contains("1 MiB ring")
                {
                    // Against the faster of the two transfer floors over the
                    // same area as the stream's ring, same round and size
                    // (either may be missing or dropped).
                    let transfer = if sys.name().contains("4 MiB ring") {
                        transfer_4m
                    } else {
                        transfer
                    };
                    s.over_transfer_floor = spread(
                        kept.iter()
                            .filter_map(|r| {
                                let best = transfer
                                    .iter()
                                    .filter_map(|t| rate(index.kept((*t)?, len, r.round)?))
                                    .reduce(f64::max)?;
                                Some(rate(r)? / best)
                            })
                            .collect(),
                    );
                }
                if plots::fan_in_clients(sys.name()).is_some() {
                    s.over_single_pair = index.ratio(&kept, (single_pair, len), rate);
                }
                if Some(sys) != memcpy && len == 65536 {
                    // Bytes per second against memcpy's of 64 KiB blocks.
                    s.over_memcpy = index.ratio(&kept, (memcpy, 65536), |r| {
                        Some(rate(r)? * r.run.len as f64)
                    });
                }
            }
        }
        out.push(s);
    }
    (out, merged_all)
}

fn fmt_spread(s: &Option<Spread>) -> String {
    match s {
        Some(s) => format!("{:.2} ({:.2}–{:.2})", s.median, s.min, s.max),
        None => "–".into(),
    }
}

fn markdown(mode: Mode, machine: &Machine, summaries: &[Summary], out: &Output<'_>) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "memtube-bench --{}: {} rounds, {} runs, {} kept, {} dropped (floor probes before and after a run more than {LEVEL_TOLERANCE}× apart); {:.0} s",
        mode.name, mode.rounds, out.runs_total, out.runs_kept, out.runs_dropped, out.elapsed_s
    );
    let _ = writeln!(
        m,
        "machine: {} ({} CPUs), kernel {}; {}; the two CPUs: {}; scheduler: {}; {} build{}",
        machine.cpu_model,
        machine.cpus,
        machine.kernel,
        machine.pinning,
        machine.placement,
        machine.scheduler,
        machine.build,
        if machine.features.is_empty() {
            String::new()
        } else {
            format!(", baselines: {}", machine.features.join(", "))
        }
    );
    let _ = writeln!(
        m,
        "memtube's defaults on this machine: {}",
        machine.defaults
    );
    if !out.failed_runs.is_empty() {
        let _ = writeln!(m, "failed runs ({}, not counted):", out.failed_runs.len());
        for f in out.failed_runs {
            let _ = writeln!(m, "- round {}: {}", f.round, f.error);
        }
    }
    let _ = writeln!(m, "ratios: median over kept rounds (min–max); ×floor divides by the same run's one-line floor probe (mean of before and after)");
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "### Round trip (two processes; ns; one clock read per sample included)"
    );
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "p50: median of the kept runs' p50s; min to max: the kept runs' histograms merged (runs at different latency levels mix there); p99.9/p50 per run: each run's p99.9 over its own p50."
    );
    let _ = writeln!(m);
    let _ = writeln!(m, "| transport | size | rounds | p50 | ×floor | ×ring floor 64 KiB | ×iceoryx2 | ×Tachyon | min | p90 | p99 | p99.9 | p99.99 | max | p99.9/p50 per run |");
    let _ = writeln!(
        m,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in summaries.iter().filter(|s| s.kind == "round_trip") {
        let p = s.merged_ns.unwrap_or_default();
        let _ = writeln!(
            m,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.system,
            size_name(s.payload_bytes),
            s.rounds_kept,
            s.rounds_kept + s.rounds_dropped,
            s.p50_ns.map_or("–".into(), |x| format!("{:.0}", x.median)),
            fmt_spread(&s.over_floor),
            fmt_spread(&s.over_ring_floor),
            fmt_spread(&s.over_iceoryx2),
            fmt_spread(&s.over_tachyon),
            p.min,
            p.p90,
            p.p99,
            p.p999,
            p.p9999,
            p.max,
            fmt_spread(&s.p999_over_p50),
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "### One-way streaming (the receiver reads every byte in place)"
    );
    let _ = writeln!(m);
    let _ = writeln!(m, "| transport | size | rounds | messages/s | GB/s | ns per message ×floor | ×iceoryx2 | ×Tachyon | ×transfer floor | ×memcpy 64 KiB |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|");
    for s in summaries.iter().filter(|s| s.kind == "stream") {
        let _ = writeln!(
            m,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} |",
            s.system,
            size_name(s.payload_bytes),
            s.rounds_kept,
            s.rounds_kept + s.rounds_dropped,
            s.messages_per_s
                .map_or("–".into(), |x| format!("{:.0}", x.median)),
            s.gb_per_s
                .map_or("–".into(), |x| format!("{:.2}", x.median)),
            fmt_spread(&s.over_floor),
            fmt_spread(&s.over_iceoryx2),
            fmt_spread(&s.over_tachyon),
            fmt_spread(&s.over_transfer_floor),
            fmt_spread(&s.over_memcpy),
        );
    }
    let _ = writeln!(m);
    m.push_str(&fan_in_table(summaries));
    let _ = writeln!(
        m,
        "### Wake-up of a sleeping receiver (send at random 1–4 ms intervals; send to receipt, ns)"
    );
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "| transport | rounds | p50 | ×futex wake-up | ×floor | p90 | p99 | max |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|");
    for s in summaries.iter().filter(|s| s.kind == "wake_up") {
        let p = s.merged_ns.unwrap_or_default();
        let _ = writeln!(
            m,
            "| {} | {}/{} | {} | {} | {} | {} | {} | {} |",
            s.system,
            s.rounds_kept,
            s.rounds_kept + s.rounds_dropped,
            s.p50_ns.map_or("–".into(), |x| format!("{:.0}", x.median)),
            fmt_spread(&s.over_futex_wake),
            fmt_spread(&s.over_floor),
            p.p90,
            p.p99,
            p.max,
        );
    }
    m
}

/// The fan-in streams (N clients into one poll set) beside the single pair
/// of the same size, sizes ascending, then clients; a blank line after.
/// Empty if the run has no fan-in rows.
fn fan_in_table(summaries: &[Summary]) -> String {
    let streams = || summaries.iter().filter(|s| s.kind == "stream");
    let mut fan_in: Vec<(usize, &Summary)> = streams()
        .filter_map(|s| Some((plots::fan_in_clients(s.system)?, s)))
        .collect();
    if fan_in.is_empty() {
        return String::new();
    }
    let mut sizes: Vec<usize> = fan_in.iter().map(|(_, s)| s.payload_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    // The single pair first at each size (1 client, ×1 by definition).
    for &len in &sizes {
        if let Some(s) = streams().find(|s| s.system == names::COPY && s.payload_bytes == len) {
            fan_in.push((1, s));
        }
    }
    fan_in.sort_by_key(|(n, s)| (s.payload_bytes, *n));
    let mut m = String::new();
    let _ = writeln!(m, "### Fan-in through one poll set");
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "N clients (one sender thread writing N connections in turn) into one receiver's poll set; M msg/s: all clients' messages together, median over kept rounds; × single pair: each round's aggregate messages/s over the same round's \"{}\" (one connection) of that size, median over the rounds where both were kept (min–max).",
        names::COPY
    );
    let _ = writeln!(m);
    let _ = writeln!(m, "| clients | size | M msg/s | × single pair |");
    let _ = writeln!(m, "|---|---|---|---|");
    for (n, s) in fan_in {
        let (clients, ratio) = if n == 1 && s.system == names::COPY {
            ("1 (single pair)".to_string(), "1.00".to_string())
        } else {
            (n.to_string(), fmt_spread(&s.over_single_pair))
        };
        let _ = writeln!(
            m,
            "| {clients} | {} | {} | {ratio} |",
            size_name(s.payload_bytes),
            s.messages_per_s
                .map_or("–".into(), |x| format!("{:.2}", x.median / 1e6)),
        );
    }
    let _ = writeln!(m);
    m
}

/// The figures' rows: every summary, with the merged histograms'
/// percentile curves (the percentile figure's quantiles).
fn figure_rows(summaries: &[Summary], merged: &Merged) -> Vec<plots::Row> {
    summaries
        .iter()
        .map(|s| {
            let sys = Sys::all().find(|x| x.name() == s.system && kind_name(x.kind()) == s.kind);
            let percentiles = sys
                .and_then(|sys| merged.get(&(sys, s.payload_bytes)))
                .map(|h| {
                    plots::QUANTILES
                        .iter()
                        .map(|&q| (q, h.value_at_quantile(q) as f64))
                        .collect()
                })
                .unwrap_or_default();
            plots::Row {
                system: s.system.to_string(),
                kind: row_kind(s.kind),
                len: s.payload_bytes,
                p50_ns: s.p50_ns.map(|x| x.median),
                percentiles,
                gb_per_s: s.gb_per_s.map(|x| x.median),
                messages_per_s: s.messages_per_s.map(|x| x.median),
            }
        })
        .collect()
}

fn row_kind(kind: &str) -> plots::RowKind {
    match kind {
        "stream" => plots::RowKind::Stream,
        "wake_up" => plots::RowKind::Wake,
        _ => plots::RowKind::RoundTrip,
    }
}

/// The line under each figure's title: the CPUs, how the two relate, the
/// scheduler (those known).
fn machine_detail(cpus: usize, placement: &str, scheduler: &str) -> String {
    let mut d = format!("{cpus} CPUs");
    if !placement.is_empty() {
        let _ = write!(d, "; the two CPUs: {placement}");
    }
    if !scheduler.is_empty() {
        let _ = write!(d, "; {scheduler}");
    }
    d
}

/// `results.json` read back: what the figures need.
#[derive(Deserialize)]
struct Saved {
    machine: SavedMachine,
    summaries: Vec<SavedSummary>,
}

#[derive(Deserialize)]
struct SavedMachine {
    cpu_model: String,
    #[serde(default)]
    cpus: usize,
    #[serde(default)]
    placement: String,
    #[serde(default)]
    scheduler: String,
}

#[derive(Deserialize)]
struct SavedSummary {
    system: String,
    kind: String,
    payload_bytes: usize,
    p50_ns: Option<Spread>,
    merged_ns: Option<Pcts>,
    gb_per_s: Option<Spread>,
    messages_per_s: Option<Spread>,
}

/// The figures' data from a `results.json` (the percentile curves from its
/// merged percentiles: p50, p90, p99, p99.9, p99.99).
fn saved_data(json: &str) -> Result<plots::Data, BoxError> {
    let saved: Saved = serde_json::from_str(json)?;
    let rows = saved
        .summaries
        .into_iter()
        .map(|s| plots::Row {
            kind: row_kind(&s.kind),
            len: s.payload_bytes,
            p50_ns: s.p50_ns.map(|x| x.median),
            percentiles: s
                .merged_ns
                .map(|p| {
                    [
                        (0.5, p.p50),
                        (0.9, p.p90),
                        (0.99, p.p99),
                        (0.999, p.p999),
                        (0.9999, p.p9999),
                    ]
                    .map(|(q, v)| (q, v as f64))
                    .to_vec()
                })
                .unwrap_or_default(),
            gb_per_s: s.gb_per_s.map(|x| x.median),
            messages_per_s: s.messages_per_s.map(|x| x.median),
            system: s.system,
        })
        .collect();
    let m = saved.machine;
    Ok(plots::Data {
        detail: machine_detail(m.cpus, &m.placement, &m.scheduler),
        machine: m.cpu_model,
        rows,
    })
}

/// Draw `dir/results.json`'s figures again into `out`, running nothing
/// (`memtube-bench --replot DIR [--out OUT]`).
pub fn replot(dir: &Path, out: &Path) -> Result<(), BoxError> {
    let path = dir.join("results.json");
    let json = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let data = saved_data(&json)?;
    std::fs::create_dir_all(out)?;
    let files = plots::write_all(out, &data)?;
    println!("wrote {}/{}", out.display(), files.join(", "));
    Ok(())
}

/// Summarise and write everything into `dir`; print the markdown.
pub fn write_all(
    dir: &Path,
    mode: Mode,
    machine: &Machine,
    records: &[Record],
    failures: &[Failure],
    elapsed: Duration,
) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let mut order: Vec<(Sys, usize)> = Vec::new();
    for r in records {
        if !order.contains(&(r.run.sys, r.run.len)) {
            order.push((r.run.sys, r.run.len));
        }
    }
    let (summaries, merged) = summarize(&order, records);
    let rounds = records.iter().map(|r| r.round + 1).max().unwrap_or(0);
    let mut kept_per_round = vec![0; rounds];
    let mut dropped_per_round = vec![0; rounds];
    for r in records {
        if r.kept {
            kept_per_round[r.round] += 1;
        } else {
            dropped_per_round[r.round] += 1;
        }
    }
    let runs: Vec<RunJson> = records
        .iter()
        .map(|r| {
            let (latency, messages, seconds) = match &r.measured {
                Measured::Latency(h) => (Some(pcts(h)), None, None),
                Measured::Stream { messages, seconds } => (None, Some(*messages), Some(*seconds)),
            };
            let mps = rate(r);
            RunJson {
                round: r.round,
                run: r.run.id,
                system: r.run.sys.name(),
                kind: kind_name(r.run.sys.kind()),
                payload_bytes: r.run.len,
                count: r.run.count,
                floor_before_p50_ns: r.floor.0,
                floor_after_p50_ns: r.floor.1,
                kept: r.kept,
                latency_ns: latency,
                messages,
                seconds,
                messages_per_s: mps,
                gb_per_s: mps.map(|x| x * r.run.len as f64 / 1e9),
            }
        })
        .collect();
    let kept = records.iter().filter(|r| r.kept).count();
    let out = Output {
        tool: "memtube-bench",
        mode,
        level_tolerance: LEVEL_TOLERANCE,
        machine,
        elapsed_s: elapsed.as_secs_f64(),
        runs_total: records.len(),
        runs_kept: kept,
        runs_dropped: records.len() - kept,
        kept_per_round,
        dropped_per_round,
        summaries: Vec::new(),
        failed_runs: failures,
        runs,
    };
    let md = markdown(mode, machine, &summaries, &out);
    let out = Output { summaries, ..out };
    print!("{md}");
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    let data = plots::Data {
        machine: machine.cpu_model.clone(),
        detail: machine_detail(machine.cpus, &machine.placement, &machine.scheduler),
        rows: figure_rows(&out.summaries, &merged),
    };
    let files = plots::write_all(dir, &data)?;
    println!();
    println!(
        "wrote {}/results.md, results.json, {}",
        dir.display(),
        files.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::Run;

    fn histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("bounds")
    }

    /// A round-trip run of `samples` samples, all at `p50` ns.
    fn latency(round: usize, name: &str, len: usize, p50: u64, samples: u64, kept: bool) -> Record {
        let sys = Sys::find(Kind::RoundTrip, name).expect("a system of the table");
        let mut h = histogram();
        h.record_n(p50, samples).expect("in bounds");
        Record {
            round,
            run: Run {
                sys,
                len,
                count: samples,
                id: round as u64,
            },
            floor: (100, 100),
            kept,
            measured: Measured::Latency(h),
        }
    }

    /// A stream run of `messages` in one second.
    fn stream(round: usize, name: &str, len: usize, messages: u64, kept: bool) -> Record {
        let sys = Sys::find(Kind::Stream, name).expect("a system of the table");
        Record {
            round,
            run: Run {
                sys,
                len,
                count: messages,
                id: round as u64,
            },
            floor: (100, 100),
            kept,
            measured: Measured::Stream {
                messages,
                seconds: 1.0,
            },
        }
    }

    /// The fan-in rows: each round's aggregate rate over the same round's
    /// single pair, in a table after the streams; the figure's points.
    #[test]
    fn fan_in_table_pairs_rounds_with_the_single_pair() {
        let fan = |n: usize| format!("memtube poll set fan-in: {n} clients");
        let mut records = Vec::new();
        for len in [32, 1024] {
            // The single pair at 10, 20, 40 M msg/s; 8 clients at half of
            // each round's, 2 clients at the same; a dropped round far off.
            for (round, single) in [(0, 10_000_000), (1, 20_000_000), (2, 40_000_000)] {
                records.push(stream(round, names::COPY, len, single, true));
                records.push(stream(round, &fan(2), len, single, true));
                records.push(stream(round, &fan(8), len, single / 2, true));
            }
            records.push(stream(3, &fan(8), len, 1_000_000_000, false));
        }
        records.push(stream(0, names::COPY, 256, 5_000_000, true));
        let mut order = Vec::new();
        for r in &records {
            if !order.contains(&(r.run.sys, r.run.len)) {
                order.push((r.run.sys, r.run.len));
            }
        }
        let (summaries, merged) = summarize(&order, &records);
        let table = fan_in_table(&summaries);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "### Fan-in through one poll set");
        assert!(lines[2].contains("same round's \"memtube copy\""));
        let rows: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("| "))
            .collect();
        assert_eq!(
            rows,
            [
                "| clients | size | M msg/s | × single pair |",
                "| 1 (single pair) | 32 B | 20.00 | 1.00 |",
                "| 2 | 32 B | 20.00 | 1.00 (1.00–1.00) |",
                "| 8 | 32 B | 10.00 | 0.50 (0.50–0.50) |",
                "| 1 (single pair) | 1 KiB | 20.00 | 1.00 |",
                "| 2 | 1 KiB | 20.00 | 1.00 (1.00–1.00) |",
                "| 8 | 1 KiB | 10.00 | 0.50 (0.50–0.50) |",
            ]
        );
        // No fan-in rows: no table.
        assert_eq!(fan_in_table(&summaries[..1]), "");
        // The figure: 1, 2, 8 clients per size, in M msg/s.
        let f = plots::fanin(&figure_rows(&summaries, &merged));
        assert_eq!(f.len(), 2);
        for s in &f {
            assert_eq!(s.points, [(1.0, 20.0), (2.0, 20.0), (8.0, 10.0)]);
        }
    }

    /// The headline's points are the per-size medians of the kept runs'
    /// p50s: not the merged histogram's p50, and no dropped run.
    #[test]
    fn headline_points_are_medians_of_kept_runs_p50() {
        let mut records = Vec::new();
        for (len, base) in [(8, 100), (32, 110), (65536, 500)] {
            // p50s base, 2 base, 3 base; the first run has most samples
            // (the merged p50 would be `base`); a dropped run far above.
            records.push(latency(0, "memtube default", len, base, 1000, true));
            records.push(latency(1, "memtube default", len, 2 * base, 10, true));
            records.push(latency(2, "memtube default", len, 3 * base, 10, true));
            records.push(latency(
                3,
                "memtube default",
                len,
                100 * base,
                10_000,
                false,
            ));
            records.push(latency(0, names::TACHYON, len, 4 * base, 100, true));
        }
        records.push(latency(0, "floor: one line", 8, 70, 100, true));
        records.push(latency(1, "floor: one line", 8, 90, 100, true));
        records.push(latency(0, "unix socket", 32, 9000, 100, true));
        let mut order = Vec::new();
        for r in &records {
            if !order.contains(&(r.run.sys, r.run.len)) {
                order.push((r.run.sys, r.run.len));
            }
        }
        let (summaries, merged) = summarize(&order, &records);
        let rows = figure_rows(&summaries, &merged);
        let h = plots::headline(&rows);
        let labels: Vec<&str> = h.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            ["memtube default", "tachyon", "floor: one line (8 B)"]
        );
        assert_eq!(
            h[0].points,
            [(8.0, 200.0), (32.0, 220.0), (65536.0, 1000.0)]
        );
        assert_eq!(
            h[1].points,
            [(8.0, 400.0), (32.0, 440.0), (65536.0, 2000.0)]
        );
        assert_eq!(h[2].points, [(8.0, 80.0), (65536.0, 80.0)]);
        // The percentile curves come from the merged histograms.
        let p = plots::percentiles(&rows);
        assert_eq!(p.len(), 3, "default, tachyon and the floor at 32 B / 8 B");
        assert_eq!(p[0].points[0], (plots::nines(0.5), 110.0));
    }

    /// The published results.json reads back (`--replot`) into every figure.
    #[test]
    fn published_results_replot() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/bench/amd-epyc-2026-11-28/results.json");
        let json =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let data = saved_data(&json).expect("results.json reads back");
        assert!(!data.machine.is_empty());
        assert_eq!(
            plots::headline(&data.rows).len(),
            4,
            "memtube, tachyon, iceoryx2, the floor"
        );
        assert_eq!(plots::percentiles(&data.rows).len(), plots::MAX_SERIES);
        assert_eq!(plots::throughput(&data.rows).len(), 5);
        let out = std::env::temp_dir().join(format!("memtube-replot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        replot(path.parent().expect("docs/bench"), &out).expect("replot");
        for f in plots::FILES {
            assert!(out.join(f).exists(), "{f}");
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}
