//! The figures of a run: `headline.svg` (p50 round trip by payload
//! size: memtube, the other libraries, the one-line floor),
//! `percentiles.svg` (32 B round-trip percentile curves, at most six),
//! `throughput.svg` (one-way streams by payload size, at most six) and,
//! when the run has the poll set's fan-in streams, `fanin.svg` (aggregate
//! messages/s by number of clients, one line per payload size, the single
//! pair at 1 client).
//!
//! Which series a figure draws is decided by pure functions
//! ([`headline`], [`percentiles`], [`throughput`], [`fanin`]) over [`Row`]s, the
//! summaries of one run (a live run's, or `results.json`'s read back), so
//! tests check the selection without parsing SVG. Diagnostics (variants,
//! ring-core alone, other kernel paths, record floors) stay in the tables.

use crate::BoxError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// What a row measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RowKind {
    /// Round trips (latency).
    RoundTrip,
    /// One-way streams (throughput).
    Stream,
    /// Wake-ups of a sleeping receiver (latency).
    Wake,
}

/// One system at one payload size, summarised over its kept rounds.
#[derive(Clone, Debug)]
pub struct Row {
    /// The system's name (as in the tables).
    pub system: String,
    /// What it measured.
    pub kind: RowKind,
    /// Payload bytes.
    pub len: usize,
    /// Latency: the median of the kept runs' p50s (ns).
    pub p50_ns: Option<f64>,
    /// Latency: (quantile, ns) of the kept runs' samples merged.
    pub percentiles: Vec<(f64, f64)>,
    /// Stream: the median of the kept runs' GB/s.
    pub gb_per_s: Option<f64>,
    /// Stream: the median of the kept runs' messages/s.
    pub messages_per_s: Option<f64>,
}

/// Everything the figures are drawn from.
pub struct Data {
    /// The CPU model: every figure's title names it.
    pub machine: String,
    /// More about the machine (CPUs, placement), under the title.
    pub detail: String,
    /// The summaries.
    pub rows: Vec<Row>,
}

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Look {
    /// A solid line with a marker at each point.
    Line,
    /// A floor: a dashed black line (a marker where it is one point).
    Floor,
}

/// One line of a figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's label.
    pub label: String,
    /// Its colour (Okabe–Ito: distinct for colour-blind readers too).
    pub colour: RGBColor,
    /// Its marker (a second cue beside the colour).
    pub marker: Marker,
    /// Line or floor.
    pub look: Look,
    /// (x, y) in data units: x is bytes (size figures), nines
    /// (percentile figure) or clients (fan-in figure), y is ns, GB/s or
    /// millions of messages/s.
    pub points: Vec<(f64, f64)>,
    /// Written on the plot beside the series' first point (the floors').
    pub note: Option<String>,
}

/// A point's shape.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled triangle.
    Triangle,
    /// A filled square.
    Square,
    /// A cross.
    Cross,
    /// A hollow circle.
    Ring,
    /// A hollow square.
    Box,
}

/// The Okabe–Ito palette.
mod okabe_ito {
    use plotters::style::RGBColor;
    pub const BLACK: RGBColor = RGBColor(0x00, 0x00, 0x00);
    pub const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
    pub const SKY_BLUE: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
    pub const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
    pub const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
    pub const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
    pub const PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
}

/// The names the figures draw (as in `systems::SYSTEMS`).
mod name {
    pub const DEFAULT: &str = "memtube default";
    pub const PURE_SPIN: &str = "memtube pure-spin";
    pub const TACHYON: &str = "tachyon";
    pub const ICEORYX2: &str = "iceoryx2";
    pub const FLOOR: &str = "floor: one line";
    pub const FUTEX: &str = "futex";
    pub const COPY: &str = "memtube copy";
    pub const ZERO_COPY: &str = "memtube zero-copy";
    pub const BATCHED: &str = "memtube batched";
    /// The poll set's fan-in streams: this, then "N clients".
    pub const FAN_IN_PREFIX: &str = "memtube poll set fan-in: ";
    /// The transfer floors over the streams' ring size (stream rows, if any).
    pub const TRANSFER_FLOOR_PREFIX: &str = "transfer floor:";
    /// The throughput figure's floor line: the faster of those.
    pub const TRANSFER_FLOOR_LABEL: &str =
        "transfer floor (no ring, same area; the faster of ordinary and non-temporal stores)";
}

/// At most this many series in a figure.
pub const MAX_SERIES: usize = 6;

/// The percentile figure's quantiles (p50 … p99.99).
pub const QUANTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

/// A quantile as "nines": p90 is 1, p99 is 2, p99.9 is 3.
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The payload size as the tables write it.
pub fn size_name(len: usize) -> String {
    if len >= 1024 {
        format!("{} KiB", len / 1024)
    } else {
        format!("{len} B")
    }
}

/// The number of clients of a fan-in stream's name
/// ("memtube poll set fan-in: 8 clients" is 8); `None` for other names.
pub fn fan_in_clients(system: &str) -> Option<usize> {
    let n = system
        .strip_prefix(name::FAN_IN_PREFIX)?
        .strip_suffix(" clients")?;
    n.parse().ok().filter(|&n| n > 0)
}

fn find<'a>(rows: &'a [Row], kind: RowKind, system: &str, len: usize) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.kind == kind && r.system == system && r.len == len)
}

/// One line per system of `systems` present among `rows` of `kind`: its
/// `value` by payload size, points sorted by size.
fn by_size(
    rows: &[Row],
    kind: RowKind,
    systems: &[(&str, RGBColor, Marker)],
    value: fn(&Row) -> Option<f64>,
) -> Vec<Series> {
    systems
        .iter()
        .filter_map(|&(system, colour, marker)| {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.kind == kind && r.system == system)
                .filter_map(|r| Some((r.len as f64, value(r)?)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then(|| Series {
                label: system.to_string(),
                colour,
                marker,
                look: Look::Line,
                points,
                note: None,
            })
        })
        .collect()
}

/// The headline: the p50 round trip by payload size of memtube's default,
/// Tachyon and iceoryx2 (those present), one series each, points sorted by
/// size; then the one-line floor (8 B) as a flat line across the sizes.
pub fn headline(rows: &[Row]) -> Vec<Series> {
    use okabe_ito::*;
    let systems = [
        (name::DEFAULT, BLUE, Marker::Circle),
        (name::TACHYON, ORANGE, Marker::Triangle),
        (name::ICEORYX2, GREEN, Marker::Square),
    ];
    let mut out = by_size(rows, RowKind::RoundTrip, &systems, |r| r.p50_ns);
    let floor = find(rows, RowKind::RoundTrip, name::FLOOR, 8).and_then(|r| r.p50_ns);
    if let Some(ns) = floor {
        let xs = out.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (lo, hi) = xs.fold((8.0f64, 8.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        out.push(Series {
            label: format!("{} (8 B)", name::FLOOR),
            colour: BLACK,
            marker: Marker::Cross,
            look: Look::Floor,
            points: vec![(lo, ns), (hi, ns)],
            note: Some(format!("floor: one cache line, {}", fmt_ns(ns.round()))),
        });
    }
    out
}

/// The percentile figure: 32 B round-trip curves of memtube (default and
/// pure spin), Tachyon and iceoryx2, with the one-line floor and the futex
/// round trip (both move 8 B): those present, never more than six.
pub fn percentiles(rows: &[Row]) -> Vec<Series> {
    use okabe_ito::*;
    let wanted = [
        (
            name::DEFAULT,
            32,
            "memtube default (32 B)",
            BLUE,
            Marker::Circle,
            Look::Line,
        ),
        (
            name::PURE_SPIN,
            32,
            "memtube pure-spin (32 B)",
            SKY_BLUE,
            Marker::Ring,
            Look::Line,
        ),
        (
            name::TACHYON,
            32,
            "tachyon (32 B)",
            ORANGE,
            Marker::Triangle,
            Look::Line,
        ),
        (
            name::ICEORYX2,
            32,
            "iceoryx2 (32 B)",
            GREEN,
            Marker::Square,
            Look::Line,
        ),
        (
            name::FLOOR,
            8,
            "floor: one line (8 B)",
            BLACK,
            Marker::Cross,
            Look::Floor,
        ),
        (
            name::FUTEX,
            8,
            "futex round trip (kernel, 8 B)",
            VERMILLION,
            Marker::Box,
            Look::Line,
        ),
    ];
    wanted
        .iter()
        .filter_map(|&(system, len, label, colour, marker, look)| {
            let r = find(rows, RowKind::RoundTrip, system, len)?;
            let points: Vec<(f64, f64)> = r
                .percentiles
                .iter()
                .map(|&(q, ns)| (nines(q), ns.max(1.0)))
                .collect();
            (!points.is_empty()).then(|| Series {
                label: label.to_string(),
                colour,
                marker,
                look,
                points,
                note: None,
            })
        })
        .take(MAX_SERIES)
        .collect()
}

/// The throughput figure: GB/s by payload size of memtube's copying,
/// zero-copy and batched streams, Tachyon, iceoryx2, and the transfer floor
/// (the first stream row whose name starts with "transfer floor") if the
/// run has one: never more than six.
pub fn throughput(rows: &[Row]) -> Vec<Series> {
    use okabe_ito::*;
    let systems = [
        (name::COPY, BLUE, Marker::Circle),
        (name::ZERO_COPY, SKY_BLUE, Marker::Ring),
        (name::BATCHED, PURPLE, Marker::Box),
        (name::TACHYON, ORANGE, Marker::Triangle),
        (name::ICEORYX2, GREEN, Marker::Square),
    ];
    let mut series = by_size(rows, RowKind::Stream, &systems, |r| r.gb_per_s);
    // The transfer floor over the streams' ring size ("transfer floor: ..."
    // rows; the "transfer floor, 4 MiB" ones are for the 4 MiB rows): the
    // faster of its variants at each size.
    let mut floor: Vec<(f64, f64)> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.kind == RowKind::Stream && r.system.starts_with(name::TRANSFER_FLOOR_PREFIX))
    {
        let Some(v) = r.gb_per_s else { continue };
        let x = r.len as f64;
        match floor.iter_mut().find(|p| p.0 == x) {
            Some(p) => p.1 = p.1.max(v),
            None => floor.push((x, v)),
        }
    }
    floor.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !floor.is_empty() {
        // A floor measured at one size says its value beside its point.
        let note = match floor.as_slice() {
            [(_, v)] => Some(fmt_gbps(*v)),
            _ => None,
        };
        series.push(Series {
            label: name::TRANSFER_FLOOR_LABEL.to_string(),
            colour: BLACK,
            marker: Marker::Cross,
            look: Look::Floor,
            points: floor,
            note,
        });
    }
    series.truncate(MAX_SERIES);
    series
}

/// The fan-in figure: the aggregate rate (millions of messages/s) of the
/// poll set's fan-in streams by number of clients, one line per payload
/// size that has fan-in rows (sizes ascending, at most six); the point at 1
/// client is the single pair ("memtube copy") of that size, if measured.
/// Client counts come from the rows' names ([`fan_in_clients`]). Empty
/// when the run has no fan-in rows.
pub fn fanin(rows: &[Row]) -> Vec<Series> {
    use okabe_ito::*;
    let looks = [
        (BLUE, Marker::Circle),
        (ORANGE, Marker::Triangle),
        (GREEN, Marker::Square),
        (VERMILLION, Marker::Box),
        (PURPLE, Marker::Ring),
        (SKY_BLUE, Marker::Cross),
    ];
    let fan_in: Vec<(usize, &Row)> = rows
        .iter()
        .filter(|r| r.kind == RowKind::Stream)
        .filter_map(|r| Some((fan_in_clients(&r.system)?, r)))
        .collect();
    let mut sizes: Vec<usize> = fan_in.iter().map(|(_, r)| r.len).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
        .iter()
        .zip(looks)
        .filter_map(|(&len, (colour, marker))| {
            let single = find(rows, RowKind::Stream, name::COPY, len).map(|r| (1, r));
            let mut points: Vec<(f64, f64)> = single
                .into_iter()
                .chain(fan_in.iter().copied().filter(|(_, r)| r.len == len))
                .filter_map(|(n, r)| Some((n as f64, r.messages_per_s? / 1e6)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then(|| Series {
                label: format!("{} messages", size_name(len)),
                colour,
                marker,
                look: Look::Line,
                points,
                note: None,
            })
        })
        .collect()
}

/// The files [`write_all`] always writes.
pub const FILES: [&str; 3] = ["headline.svg", "percentiles.svg", "throughput.svg"];

/// The fan-in figure's file, written when the run has fan-in rows.
pub const FANIN_FILE: &str = "fanin.svg";

/// Draw the figures into `dir` (the three of [`FILES`], and
/// [`FANIN_FILE`] if the run has fan-in rows); the names of the files
/// written.
pub fn write_all(dir: &Path, data: &Data) -> Result<Vec<&'static str>, BoxError> {
    let [head, pct, thr] = FILES;
    Figure {
        title: format!(
            "Round trip between two processes, p50 by payload size — {}",
            data.machine
        ),
        subtitle: format!(
            "median over kept rounds of each run's p50 (lower is better); {}",
            data.detail
        ),
        x: XAxis::Size,
        y: YAxis::Nanoseconds,
        series: headline(&data.rows),
    }
    .draw(&dir.join(head))?;
    Figure {
        title: format!("Round-trip latency percentiles — {}", data.machine),
        subtitle: format!(
            "all kept rounds' samples merged (lower is better); {}",
            data.detail
        ),
        x: XAxis::Nines,
        y: YAxis::Nanoseconds,
        series: percentiles(&data.rows),
    }
    .draw(&dir.join(pct))?;
    Figure {
        title: format!("One-way streaming between two processes — {}", data.machine),
        subtitle: format!(
            "median over kept rounds; the receiver reads every byte (higher is better); {}",
            data.detail
        ),
        x: XAxis::Size,
        y: YAxis::GigabytesPerSecond,
        series: throughput(&data.rows),
    }
    .draw(&dir.join(thr))?;
    let mut files = FILES.to_vec();
    let fan = fanin(&data.rows);
    if !fan.is_empty() {
        Figure {
            title: format!(
                "Fan-in: N clients streaming into one poll set, aggregate rate — {}",
                data.machine
            ),
            subtitle: format!(
                "median over kept rounds; 1 client: \"memtube copy\" (higher is better); {}",
                data.detail
            ),
            x: XAxis::Clients,
            y: YAxis::MessagesPerSecond,
            series: fan,
        }
        .draw(&dir.join(FANIN_FILE))?;
        files.push(FANIN_FILE);
    }
    Ok(files)
}

/// What the x axis shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum XAxis {
    /// Payload bytes, log 2.
    Size,
    /// Percentiles as nines (p50 … p99.99).
    Nines,
    /// Number of clients, log 2 (1 is the single pair).
    Clients,
}

/// What the y axis shows (always log).
#[derive(Clone, Copy)]
enum YAxis {
    Nanoseconds,
    GigabytesPerSecond,
    /// Millions of messages per second.
    MessagesPerSecond,
}

struct Figure {
    title: String,
    subtitle: String,
    x: XAxis,
    y: YAxis,
    series: Vec<Series>,
}

/// Legend labels longer than this wrap at a space.
const LEGEND_CHARS: usize = 30;

/// Ticks at 1, 2, 5 × 10^k inside `lo..hi` (log axes).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    log_ticks_by(lo, hi, &[1.0, 2.0, 5.0])
}

/// Ticks at `steps` × 10^k inside `lo..hi` (log axes).
fn log_ticks_by(lo: f64, hi: f64, steps: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for k in first..=last {
        for &m in steps {
            // Rounded to 3 significant digits: no 0.30000000000000004.
            let v = m * 10f64.powi(k);
            let v = (v * 1e3).round() / 1e3;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
    }
    out
}

/// `v` with at most three decimals.
fn short(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{} ms", short(v / 1e6))
    } else if v >= 1e3 {
        format!("{} µs", short(v / 1e3))
    } else {
        format!("{} ns", short(v))
    }
}

fn fmt_gbps(v: f64) -> String {
    format!("{} GB/s", short(v))
}

fn fmt_mmsgs(v: f64) -> String {
    format!("{} M", short(v))
}

/// A client count on the fan-in figure's x axis.
fn fmt_clients(n: usize) -> String {
    if n == 1 {
        "1 (single pair)".into()
    } else {
        n.to_string()
    }
}

fn fmt_nines(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    format!("p{}", (q * 1000.0).round() / 1000.0)
}

/// Split a legend label into lines of at most [`LEGEND_CHARS`] (at spaces).
fn wrap(label: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in label.split(' ') {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= LEGEND_CHARS => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Draw a marker at `at` in `area`'s coordinates.
fn marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    m: Marker,
    colour: RGBColor,
) -> Result<(), BoxError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: plotters::coord::CoordTranslate,
    CT::From: Clone + 'static,
{
    let filled = colour.filled();
    let stroke = colour.stroke_width(2);
    let e = EmptyElement::at(at);
    let r = match m {
        Marker::Circle => area.draw(&(e + Circle::new((0, 0), 5, filled))),
        Marker::Ring => area.draw(&(e + Circle::new((0, 0), 5, stroke))),
        Marker::Triangle => area.draw(&(e + TriangleMarker::new((0, 0), 6, filled))),
        Marker::Square => area.draw(&(e + Rectangle::new([(-4, -4), (4, 4)], filled))),
        Marker::Box => area.draw(&(e + Rectangle::new([(-4, -4), (4, 4)], stroke))),
        Marker::Cross => area.draw(&(e + Cross::new((0, 0), 5, stroke))),
    };
    r.map_err(|e| e.to_string().into())
}

impl Figure {
    fn draw(&self, path: &Path) -> Result<(), BoxError> {
        const W: u32 = 1100;
        const H: u32 = 620;
        const LEGEND_W: u32 = 300;
        let root = SVGBackend::new(path, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(62);
        head.draw(&Text::new(
            self.title.as_str(),
            (16, 10),
            ("sans-serif", 20).into_font().color(&BLACK),
        ))?;
        head.draw(&Text::new(
            self.subtitle.as_str(),
            (16, 38),
            ("sans-serif", 13)
                .into_font()
                .color(&RGBColor(0x44, 0x44, 0x44)),
        ))?;
        let (plot, legend) = body.split_horizontally(W - LEGEND_W);
        self.chart(&plot)?;
        self.legend(&legend)?;
        root.present()?;
        Ok(())
    }

    fn chart<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), BoxError>
    where
        DB::ErrorType: 'static,
    {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        let (x_lo, x_hi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (y_lo, y_hi) = ys
            .filter(|y| *y > 0.0)
            .fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        let (y_lo, y_hi) = if y_lo > y_hi {
            (1.0, 10.0)
        } else {
            (y_lo / 1.4, y_hi * 1.4)
        };
        // x in axis units (log scale): bytes, or 1 / (1 - quantile) (10^nines).
        let to_x = |x: f64| match self.x {
            XAxis::Size | XAxis::Clients => x.max(1.0),
            XAxis::Nines => 10f64.powf(x),
        };
        let (x_ticks, x_range, x_desc): (Vec<f64>, _, &str) = match self.x {
            XAxis::Size => {
                let mut sizes: Vec<f64> = self
                    .series
                    .iter()
                    .filter(|s| s.look == Look::Line)
                    .flat_map(|s| s.points.iter().map(|p| to_x(p.0)))
                    .collect();
                sizes.sort_by(f64::total_cmp);
                sizes.dedup();
                let (lo, hi) = if x_lo > x_hi {
                    (8.0, 65536.0)
                } else {
                    (to_x(x_lo), to_x(x_hi))
                };
                (sizes, (lo / 1.3)..(hi * 1.3), "payload size (log scale)")
            }
            XAxis::Clients => {
                let mut clients: Vec<f64> = self
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| to_x(p.0)))
                    .collect();
                clients.sort_by(f64::total_cmp);
                clients.dedup();
                let (lo, hi) = if x_lo > x_hi {
                    (1.0, 64.0)
                } else {
                    (to_x(x_lo), to_x(x_hi))
                };
                (
                    clients,
                    (lo / 1.5)..(hi * 1.5),
                    "clients streaming at once (log scale)",
                )
            }
            XAxis::Nines => (
                [0.5, 0.9, 0.99, 0.999, 0.9999]
                    .map(|q| to_x(nines(q)))
                    .to_vec(),
                (2.0 / 1.3)..(1e4 * 1.3),
                "percentile",
            ),
        };
        let y_ticks = match self.y {
            // Rates within a decade or so: finer steps than 1, 2, 5.
            YAxis::MessagesPerSecond => log_ticks_by(y_lo, y_hi, &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]),
            _ => log_ticks(y_lo, y_hi),
        };
        let (y_desc, y_fmt): (&str, fn(f64) -> String) = match self.y {
            YAxis::Nanoseconds => ("round trip (log scale)", fmt_ns),
            YAxis::GigabytesPerSecond => ("throughput (log scale)", fmt_gbps),
            YAxis::MessagesPerSecond => (
                "million messages/s, all clients together (log scale)",
                fmt_mmsgs,
            ),
        };
        let x_fmt = |x: &f64| match self.x {
            XAxis::Size => size_name(x.round() as usize),
            XAxis::Clients => fmt_clients(x.round() as usize),
            XAxis::Nines => fmt_nines(x.log10()),
        };
        let mut chart = ChartBuilder::on(area)
            .margin_left(16)
            .margin_right(24)
            .margin_top(12)
            .margin_bottom(12)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d(
                x_range.log_scale().with_key_points(x_ticks),
                (y_lo..y_hi).log_scale().with_key_points(y_ticks),
            )?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|y| y_fmt(*y))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        for s in &self.series {
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (to_x(x), y)).collect();
            match s.look {
                Look::Line => {
                    chart.draw_series(LineSeries::new(pts.clone(), s.colour.stroke_width(2)))?;
                }
                Look::Floor if pts.len() > 1 => {
                    chart.draw_series(DashedLineSeries::new(
                        pts.clone(),
                        8,
                        5,
                        s.colour.stroke_width(2),
                    ))?;
                }
                Look::Floor => {}
            }
            // A flat floor carries one marker (at its left end); a curve one per point.
            let marks = if s.look == Look::Floor && self.x == XAxis::Size {
                &pts[..1]
            } else {
                &pts[..]
            };
            for &p in marks {
                marker(chart.plotting_area(), p, s.marker, s.colour)?;
            }
        }
        // Notes (the floors' values) above the series' first point: to its
        // right if the series goes on, else to its left.
        for s in &self.series {
            let Some(note) = &s.note else { continue };
            let (x, y) = (to_x(s.points[0].0), s.points[0].1);
            let (h, dx) = if s.points.len() > 1 {
                (HPos::Left, 14)
            } else {
                (HPos::Right, -12)
            };
            let style = ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(h, VPos::Bottom));
            chart
                .plotting_area()
                .draw(&(EmptyElement::at((x, y)) + Text::new(note.clone(), (dx, -8), style)))?;
        }
        Ok(())
    }

    fn legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), BoxError>
    where
        DB::ErrorType: 'static,
    {
        let font = ("sans-serif", 15).into_font().color(&BLACK);
        let mut y = 30;
        for s in &self.series {
            let (x0, x1) = (8, 44);
            match s.look {
                Look::Line => area.draw(&PathElement::new(
                    vec![(x0, y), (x1, y)],
                    s.colour.stroke_width(2),
                ))?,
                Look::Floor => {
                    for x in [x0, x0 + 14, x0 + 28] {
                        area.draw(&PathElement::new(
                            vec![(x, y), (x + 8, y)],
                            s.colour.stroke_width(2),
                        ))?;
                    }
                }
            }
            marker(area, ((x0 + x1) / 2, y), s.marker, s.colour)?;
            for line in wrap(&s.label) {
                area.draw(&Text::new(line, (54, y - 8), font.clone()))?;
                y += 19;
            }
            y += 12;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(system: &str, len: usize, p50: f64) -> Row {
        Row {
            system: system.into(),
            kind: RowKind::RoundTrip,
            len,
            p50_ns: Some(p50),
            percentiles: QUANTILES
                .iter()
                .map(|&q| (q, p50 * (1.0 + nines(q))))
                .collect(),
            gb_per_s: None,
            messages_per_s: None,
        }
    }

    fn stream(system: &str, len: usize, gb: f64) -> Row {
        Row {
            system: system.into(),
            kind: RowKind::Stream,
            len,
            p50_ns: None,
            percentiles: Vec::new(),
            gb_per_s: Some(gb),
            messages_per_s: Some(gb * 1e9 / len as f64),
        }
    }

    /// A stream row of `mps` messages/s.
    fn stream_rate(system: &str, len: usize, mps: f64) -> Row {
        stream(system, len, mps * len as f64 / 1e9)
    }

    /// The poll set's fan-in rows (2, 8, 64 clients at 32 B and 1 KiB, in
    /// the systems table's order) beside a full run's rows.
    fn with_fan_in() -> Vec<Row> {
        let mut rows = everything();
        for (len, single) in [(32, 26e6), (1024, 6.5e6)] {
            for n in [2, 8, 64] {
                rows.push(stream_rate(
                    &format!("memtube poll set fan-in: {n} clients"),
                    len,
                    single / n as f64,
                ));
            }
        }
        rows
    }

    /// Every system of a full run with every baseline, and a transfer floor.
    fn everything() -> Vec<Row> {
        let mut rows = Vec::new();
        for &len in &crate::SIZES {
            for s in [
                name::PURE_SPIN,
                name::DEFAULT,
                name::ICEORYX2,
                name::TACHYON,
            ] {
                rows.push(rt(s, len, 100.0 + len as f64));
            }
            for s in [
                name::ZERO_COPY,
                name::COPY,
                name::BATCHED,
                name::ICEORYX2,
                name::TACHYON,
            ] {
                rows.push(stream(s, len, len as f64 / 100.0));
            }
        }
        for s in [
            "floor: one line",
            "floor: two lines",
            "ring floor: 64 KiB",
            "eventfd",
            "futex",
        ] {
            rows.push(rt(s, 8, 80.0));
        }
        for s in [
            "memtube pure-spin, isolation off",
            "memtube (ring-core) two processes, raw",
            "unix socket",
            "pipe",
            "record floor: ring-core protocol, minimal code",
        ] {
            rows.push(rt(s, 32, 90.0));
        }
        rows.push(stream("memtube copy, line padding off", 32, 1.0));
        rows.push(stream("memcpy (one core)", 65536, 30.0));
        rows.push(stream("transfer floor: 64 KiB, core to core", 65536, 25.0));
        rows.push(stream("transfer floor: ordinary stores", 65536, 10.0));
        rows.push(stream("transfer floor: ordinary stores", 4096, 5.0));
        rows.push(stream(
            "transfer floor, 4 MiB: ordinary stores",
            65536,
            40.0,
        ));
        rows
    }

    fn labels(series: &[Series]) -> Vec<&str> {
        series.iter().map(|s| s.label.as_str()).collect()
    }

    #[test]
    fn headline_has_one_series_per_present_system_and_the_floor() {
        // iceoryx2 absent (its feature off): three lines, the floor last.
        let mut rows: Vec<Row> = everything()
            .into_iter()
            .filter(|r| r.system != name::ICEORYX2)
            .collect();
        rows.reverse(); // the points come out sorted by size anyway
        let h = headline(&rows);
        assert_eq!(
            labels(&h),
            ["memtube default", "tachyon", "floor: one line (8 B)"]
        );
        let sizes: Vec<f64> = crate::SIZES.iter().map(|&l| l as f64).collect();
        for s in &h[..2] {
            assert_eq!(s.look, Look::Line);
            assert_eq!(s.points.iter().map(|p| p.0).collect::<Vec<_>>(), sizes);
        }
        let floor = &h[2];
        assert_eq!(floor.look, Look::Floor);
        assert_eq!(
            floor.points,
            [(8.0, 80.0), (65536.0, 80.0)],
            "flat, across the sizes"
        );
        assert!(floor.note.as_deref().is_some_and(|n| n.contains("floor")));
        // Every baseline present: four series.
        assert_eq!(headline(&everything()).len(), 4);
        // No floor measured: no floor line.
        let no_floor: Vec<Row> = everything()
            .into_iter()
            .filter(|r| r.system != name::FLOOR)
            .collect();
        assert!(headline(&no_floor).iter().all(|s| s.look == Look::Line));
    }

    #[test]
    fn percentiles_draw_at_most_six_series_however_many_systems_ran() {
        let rows = everything();
        let round_trips_at_32_or_word = rows
            .iter()
            .filter(|r| r.kind == RowKind::RoundTrip && (r.len == 32 || r.len == 8))
            .count();
        assert!(round_trips_at_32_or_word > 2 * MAX_SERIES);
        let p = percentiles(&rows);
        assert_eq!(
            labels(&p),
            [
                "memtube default (32 B)",
                "memtube pure-spin (32 B)",
                "tachyon (32 B)",
                "iceoryx2 (32 B)",
                "floor: one line (8 B)",
                "futex round trip (kernel, 8 B)",
            ]
        );
        let colours: Vec<RGBColor> = p.iter().map(|s| s.colour).collect();
        for (i, c) in colours.iter().enumerate() {
            assert!(!colours[..i].contains(c), "colour {c:?} repeats");
        }
        for s in &p {
            assert_eq!(s.points.len(), QUANTILES.len());
            assert_eq!(s.points[0].0, nines(0.5));
        }
    }

    #[test]
    fn throughput_draws_the_streams_and_the_transfer_floor_if_measured() {
        let t = throughput(&everything());
        assert!(t.len() <= MAX_SERIES);
        assert_eq!(
            labels(&t),
            [
                "memtube copy",
                "memtube zero-copy",
                "memtube batched",
                "tachyon",
                "iceoryx2",
                name::TRANSFER_FLOOR_LABEL,
            ]
        );
        assert_eq!(t[5].look, Look::Floor);
        // The faster variant per size; the 4 MiB floor is not this one.
        assert_eq!(t[5].points, [(4096.0, 5.0), (65536.0, 25.0)]);
        let without: Vec<Row> = everything()
            .into_iter()
            .filter(|r| !r.system.starts_with("transfer floor"))
            .collect();
        assert_eq!(throughput(&without).len(), 5);
    }

    #[test]
    fn fan_in_clients_come_from_the_names() {
        assert_eq!(
            fan_in_clients("memtube poll set fan-in: 2 clients"),
            Some(2)
        );
        assert_eq!(
            fan_in_clients("memtube poll set fan-in: 64 clients"),
            Some(64)
        );
        assert_eq!(
            fan_in_clients("memtube poll set fan-in: 1000 clients"),
            Some(1000)
        );
        for other in [
            "memtube copy",
            "memtube poll set: 64 connections, 1 active",
            "memtube poll set fan-in: many clients",
            "memtube poll set fan-in: 0 clients",
            "memtube poll set fan-in: 8 clients, pure spin",
        ] {
            assert_eq!(fan_in_clients(other), None, "{other}");
        }
    }

    #[test]
    fn fanin_draws_one_line_per_size_from_the_single_pair_on() {
        assert!(fanin(&everything()).is_empty(), "no fan-in rows: no figure");
        let f = fanin(&with_fan_in());
        assert_eq!(labels(&f), ["32 B messages", "1 KiB messages"]);
        let close = |s: &Series, want: &[(f64, f64)]| {
            assert_eq!(s.points.len(), want.len(), "{}", s.label);
            for (p, w) in s.points.iter().zip(want) {
                assert_eq!(p.0, w.0, "{}", s.label);
                assert!((p.1 - w.1).abs() < 1e-9, "{}: {p:?} not {w:?}", s.label);
            }
        };
        // 1 client: "memtube copy" of the size (everything()'s: GB/s len/100).
        let copy_32 = 32.0 / 100.0 * 1e9 / 32.0 / 1e6;
        close(
            &f[0],
            &[
                (1.0, copy_32),
                (2.0, 13.0),
                (8.0, 3.25),
                (64.0, 26.0 / 64.0),
            ],
        );
        close(
            &f[1],
            &[
                (1.0, copy_32),
                (2.0, 3.25),
                (8.0, 6.5 / 8.0),
                (64.0, 6.5 / 64.0),
            ],
        );
        assert_ne!(f[0].colour, f[1].colour);
        // Client counts other than the systems table's are read, not assumed;
        // no single pair at the size: the line starts at its first fan-in.
        let rows = vec![
            stream_rate("memtube poll set fan-in: 4 clients", 256, 4e6),
            stream_rate("memtube poll set fan-in: 3 clients", 256, 3e6),
            stream_rate("memtube copy", 32, 1e6),
        ];
        let f = fanin(&rows);
        assert_eq!(labels(&f), ["256 B messages"]);
        close(&f[0], &[(3.0, 3.0), (4.0, 4.0)]);
    }

    #[test]
    fn write_all_writes_the_fan_in_figure_only_with_fan_in_rows() {
        let dir = std::env::temp_dir().join(format!("memtube-fanin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut data = Data {
            machine: "Test CPU 9000".into(),
            detail: "2 CPUs".into(),
            rows: everything(),
        };
        assert_eq!(write_all(&dir, &data).expect("figures drawn"), FILES);
        assert!(!dir.join(FANIN_FILE).exists());
        data.rows = with_fan_in();
        let files = write_all(&dir, &data).expect("figures drawn");
        assert_eq!(files.last(), Some(&FANIN_FILE));
        let text = std::fs::read_to_string(dir.join(FANIN_FILE)).expect("written");
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for want in [
            "32 B messages",
            "1 KiB messages",
            "1 (single pair)",
            "8",
            "64",
        ] {
            assert!(texts.contains(&want), "no text {want:?} in {texts:?}");
        }
        assert!(texts
            .iter()
            .any(|t| t.starts_with("Fan-in") && t.contains("Test CPU 9000")));
        assert!(texts.iter().any(|t| t.starts_with("million messages/s")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn write_all_writes_three_valid_svgs_with_every_legend_label() {
        let dir = std::env::temp_dir().join(format!("memtube-plots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let data = Data {
            machine: "Test CPU 9000".into(),
            detail: "2 CPUs".into(),
            rows: everything(),
        };
        let files = write_all(&dir, &data).expect("figures drawn");
        assert_eq!(files, FILES);
        let series = [
            headline(&data.rows),
            percentiles(&data.rows),
            throughput(&data.rows),
        ];
        for (file, series) in files.iter().zip(&series) {
            let text = std::fs::read_to_string(dir.join(file)).expect("written");
            assert!(text.starts_with("<svg"), "{file}");
            let doc = roxmltree::Document::parse(&text)
                .unwrap_or_else(|e| panic!("{file} is not well-formed XML: {e}"));
            let texts: Vec<&str> = doc
                .descendants()
                .filter(|n| n.tag_name().name() == "text")
                .filter_map(|n| n.text())
                .map(str::trim)
                .collect();
            assert!(
                texts.iter().any(|t| t.contains("Test CPU 9000")),
                "{file}: the machine is not named"
            );
            for s in series {
                for line in wrap(&s.label) {
                    assert!(
                        texts.contains(&line.as_str()),
                        "{file}: no legend label {line:?}"
                    );
                }
            }
        }
        assert!(!dir.join("latency.svg").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn legend_labels_wrap_at_spaces() {
        assert_eq!(wrap("memtube default"), ["memtube default"]);
        let lines = wrap("transfer floor: 64 KiB block, one core writes, the other reads");
        assert!(lines.len() > 1 && lines.iter().all(|l| l.chars().count() <= LEGEND_CHARS));
        assert_eq!(
            lines.join(" "),
            "transfer floor: 64 KiB block, one core writes, the other reads"
        );
    }

    #[test]
    fn log_ticks_are_round_numbers() {
        assert_eq!(log_ticks(90.0, 1100.0), [100.0, 200.0, 500.0, 1000.0]);
        assert_eq!(log_ticks(0.04, 0.3), [0.05, 0.1, 0.2]);
        assert_eq!(
            log_ticks_by(4.0, 40.0, &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]),
            [5.0, 7.0, 10.0, 15.0, 20.0, 30.0]
        );
        assert_eq!(fmt_ns(2000.0), "2 µs");
        assert_eq!(fmt_nines(3.0), "p99.9");
    }
}
