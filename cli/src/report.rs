//! From two snapshots of a ring's counters to what the monitor shows:
//! rates, fill level, the stuck flag; and the JSON of `stat --json`.

use crate::discover::{RingView, Scan, Skipped};
use crate::procfs;
use memtube_ring::{RoleState, Stats, RECORD_ALIGN, RECORD_HEADER};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// Fill level (its upper bound, [`fill_max`]) from which a ring whose
/// consumer released nothing over the interval counts as stuck.
pub const STUCK_FILL: f64 = 0.9;

/// The version of the JSON document of `stat --json`: raised when a field
/// changes meaning or goes away (new fields may appear without it).
pub const SCHEMA: u32 = 1;

/// Per-second rates over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Messages published per second.
    pub messages: f64,
    /// Payload bytes published per second.
    pub bytes: f64,
    /// Messages released (consumed) per second.
    pub released: f64,
    /// Times the producer found the ring full, per second.
    pub full: f64,
    /// Wake calls (both sides) per second.
    pub wakes: f64,
}

/// What is shown of one side of a ring.
#[derive(Clone, Debug, Default)]
pub struct Side {
    /// Its process, if known.
    pub pid: Option<u32>,
    /// That process's uid and command name.
    pub uid: Option<u32>,
    /// See `uid`.
    pub comm: String,
    /// The role's state in the region.
    pub state: RoleState,
    /// Whether the process holding the role still runs: `None` if not known.
    pub alive: Option<bool>,
}

impl Side {
    /// `holder`: the holder recorded in the region, only if its pid can be
    /// trusted (same pid namespace).
    fn new(pid: Option<u32>, state: RoleState, holder: Option<memtube_ring::Holder>) -> Side {
        let alive = match (holder, pid) {
            (Some(h), _) => Some(!memtube::ring::is_gone(h)),
            (None, Some(p)) => Some(procfs::state(p).is_some_and(|s| s != 'Z' && s != 'X')),
            (None, None) => None,
        };
        Side {
            pid,
            uid: pid.and_then(procfs::uid),
            comm: pid.map(procfs::comm).unwrap_or_default(),
            state,
            alive,
        }
    }

    /// The state as one word: `attached`, `closed`, `free`, `invalid`, and
    /// `gone` for an attached role whose process no longer runs.
    pub fn word(&self) -> &'static str {
        match (self.state, self.alive) {
            (RoleState::Attached, Some(false)) => "gone",
            (RoleState::Attached, _) => "attached",
            (RoleState::Closed, _) => "closed",
            (RoleState::Free, _) => "free",
            (RoleState::Invalid(_), _) => "invalid",
        }
    }
}

/// One ring's row.
#[derive(Clone, Debug)]
pub struct RingReport {
    /// `dev:ino` of its main region.
    pub id: String,
    /// Data-area bytes.
    pub capacity: u32,
    /// Whether it has a separate consumer block (isolation).
    pub isolated: bool,
    /// Whether the consumer block was paired by creation order only.
    pub paired_by_guess: bool,
    /// The processes that map it.
    pub mapped_by: Vec<u32>,
    /// How producer and consumer were told apart.
    pub roles: &'static str,
    /// The producer side.
    pub producer: Side,
    /// The consumer side.
    pub consumer: Side,
    /// The last counters.
    pub stats: Stats,
    /// Messages published and not yet released.
    pub in_flight: u64,
    /// Bytes of the data area those take at least (payload plus a record
    /// header each; alignment and padding records are not counted), at
    /// most the capacity.
    pub fill_bytes: u64,
    /// `fill_bytes / capacity`.
    pub fill: f64,
    /// Bytes of the data area those take at most, not counting padding
    /// records: payload plus header plus alignment ([`fill_max`]).
    pub fill_bytes_max: u64,
    /// `fill_bytes_max / capacity`.
    pub fill_max: f64,
    /// Whether the holders recorded in the region were used (not when a
    /// process of the ring is in another pid namespace).
    pub holders_trusted: bool,
    /// Rates over the interval, if two snapshots were taken.
    pub rates: Option<Rates>,
    /// Stuck: see [`stuck`]; `None` without an interval.
    pub stuck: Option<bool>,
    /// Time since the region was created.
    pub age: Option<Duration>,
}

/// Messages in flight and the bytes they take at least.
pub fn fill(s: &Stats, capacity: u32) -> (u64, u64) {
    // Counters a hostile peer wrote may go backwards or be huge: never
    // overflow on them.
    let msgs = s.messages_committed.saturating_sub(s.messages_released);
    let bytes = s.bytes_committed.saturating_sub(s.bytes_released);
    let used = bytes.saturating_add(msgs.saturating_mul(u64::from(RECORD_HEADER)));
    (msgs, used.min(u64::from(capacity)))
}

/// Messages in flight and the bytes they take at most, not counting
/// padding records: each record is its payload, an 8-byte header and at
/// most 7 bytes of alignment.
pub fn fill_max(s: &Stats, capacity: u32) -> (u64, u64) {
    let msgs = s.messages_committed.saturating_sub(s.messages_released);
    let bytes = s.bytes_committed.saturating_sub(s.bytes_released);
    let per = u64::from(RECORD_HEADER + RECORD_ALIGN - 1);
    let used = bytes.saturating_add(msgs.saturating_mul(per));
    (msgs, used.min(u64::from(capacity)))
}

/// A ring is stuck when its consumer still holds its role, messages wait
/// in it, the consumer released nothing over the interval, and the
/// producer may need room: the ring may be [`STUCK_FILL`] full (by the
/// upper bound [`fill_max`]: a producer blocked in one `send` since before
/// the interval counted its one full event already, and a ring of small
/// messages is fuller than the lower bound says), or the producer found it
/// full during the interval.
pub fn stuck(a: &Stats, b: &Stats, capacity: u32) -> bool {
    let (in_flight, used) = fill_max(b, capacity);
    let released_nothing =
        b.messages_released == a.messages_released && b.bytes_released == a.bytes_released;
    let fill = used as f64 / f64::from(capacity.max(1));
    b.consumer == RoleState::Attached
        && in_flight > 0
        && released_nothing
        && (fill >= STUCK_FILL || b.full_events > a.full_events)
}

/// Rates from `a` to `b`, `secs` apart.
pub fn rates(a: &Stats, b: &Stats, secs: f64) -> Rates {
    let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs.max(1e-9);
    Rates {
        messages: per(a.messages_committed, b.messages_committed),
        bytes: per(a.bytes_committed, b.bytes_committed),
        released: per(a.messages_released, b.messages_released),
        full: per(a.full_events, b.full_events),
        wakes: per(
            a.producer_wakes.saturating_add(a.consumer_wakes),
            b.producer_wakes.saturating_add(b.consumer_wakes),
        ),
    }
}

/// The row of `v`, from its counters `before` (if any, `secs` earlier) and `now`.
pub fn report(v: &RingView, before: Option<(&Stats, f64)>, now: Stats) -> RingReport {
    let (in_flight, fill_bytes) = fill(&now, v.capacity);
    let (_, fill_bytes_max) = fill_max(&now, v.capacity);
    let trusted = !v.foreign_pid_ns;
    let holder = |h: Option<memtube_ring::Holder>| h.filter(|_| trusted);
    RingReport {
        id: v.name(),
        capacity: v.capacity,
        isolated: v.consumer_block.is_some(),
        paired_by_guess: v.consumer_block.is_some_and(|(_, g)| g),
        mapped_by: v.mappers.keys().copied().collect(),
        roles: v.roles.name(),
        producer: Side::new(v.producer_pid, now.producer, holder(now.producer_holder)),
        consumer: Side::new(v.consumer_pid, now.consumer, holder(now.consumer_holder)),
        in_flight,
        fill_bytes,
        fill: fill_bytes as f64 / f64::from(v.capacity.max(1)),
        fill_bytes_max,
        fill_max: fill_bytes_max as f64 / f64::from(v.capacity.max(1)),
        holders_trusted: trusted,
        rates: before.map(|(a, secs)| rates(a, &now, secs)),
        stuck: before.map(|(a, _)| stuck(a, &now, v.capacity)),
        age: v
            .created
            .and_then(|c| SystemTime::now().duration_since(c).ok()),
        stats: now,
    }
}

/// Take the counters of every ring of `scan` now, and again after
/// `interval` (if not zero); rings whose region became invalid are moved
/// to `skipped`.
pub fn measure(scan: &Scan, interval: Duration) -> (Vec<RingReport>, Vec<Skipped>) {
    let first: Vec<_> = scan.rings.iter().map(|v| v.stats()).collect();
    let t0 = std::time::Instant::now();
    if !interval.is_zero() {
        std::thread::sleep(interval);
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut skipped = scan.skipped.clone();
    for (v, a) in scan.rings.iter().zip(first) {
        let b = if interval.is_zero() { a } else { v.stats() };
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let before = (!interval.is_zero()).then_some((&a, secs));
                rows.push(report(v, before, b));
            }
            (Err(e), _) | (_, Err(e)) => skipped.push(Skipped {
                id: v.name(),
                pids: v.mappers.keys().copied().collect(),
                reason: format!("invalid ring: {e}"),
            }),
        }
    }
    (rows, skipped)
}

fn side_json(s: &Side, holder: Option<memtube_ring::Holder>) -> Value {
    json!({
        "pid": s.pid,
        "uid": s.uid,
        "comm": s.pid.map(|_| s.comm.clone()),
        "state": s.word(),
        "alive": s.alive,
        "holder": holder.map(|h| h.get()),
    })
}

/// The JSON document of `stat --json`.
pub fn to_json(scan: &Scan, rows: &[RingReport], skipped: &[Skipped], interval: Duration) -> Value {
    let rings: Vec<Value> = rows
        .iter()
        .map(|r| {
            let s = &r.stats;
            json!({
                "id": r.id,
                "capacity": r.capacity,
                "isolation": r.isolated,
                "consumer_block_paired_by_guess": r.paired_by_guess,
                "mapped_by": r.mapped_by,
                "roles_from": r.roles,
                "producer": side_json(&r.producer, s.producer_holder),
                "consumer": side_json(&r.consumer, s.consumer_holder),
                "messages_committed": s.messages_committed,
                "bytes_committed": s.bytes_committed,
                "messages_released": s.messages_released,
                "bytes_released": s.bytes_released,
                "full_events": s.full_events,
                "producer_wakes": s.producer_wakes,
                "consumer_wakes": s.consumer_wakes,
                "in_flight_messages": r.in_flight,
                "fill_bytes": r.fill_bytes,
                "fill": r.fill,
                "fill_bytes_max": r.fill_bytes_max,
                "fill_max": r.fill_max,
                "holders_trusted": r.holders_trusted,
                "rates": r.rates.map(|x| json!({
                    "messages_per_s": x.messages,
                    "bytes_per_s": x.bytes,
                    "released_per_s": x.released,
                    "full_per_s": x.full,
                    "wakes_per_s": x.wakes,
                })),
                "stuck": r.stuck,
                "age_s": r.age.map(|a| a.as_secs()),
            })
        })
        .collect();
    let skipped: Vec<Value> = skipped
        .iter()
        .map(|s| json!({"id": s.id, "pids": s.pids, "reason": s.reason}))
        .collect();
    json!({
        "schema": SCHEMA,
        "interval_ms": interval.as_millis() as u64,
        "processes": scan.processes,
        "processes_not_permitted": scan.not_permitted,
        "rings": rings,
        "skipped": skipped,
    })
}

/// The STATE column: each role's state (`producer/consumer`), or `STUCK`
/// followed by the roles not attached, if any (`STUCK (consumer gone)`).
pub fn state_text(r: &RingReport) -> String {
    let (p, c) = (r.producer.word(), r.consumer.word());
    if r.stuck != Some(true) {
        return format!("{p}/{c}");
    }
    let odd: Vec<String> = [("producer", p), ("consumer", c)]
        .iter()
        .filter(|(_, w)| *w != "attached")
        .map(|(role, w)| format!("{role} {w}"))
        .collect();
    if odd.is_empty() {
        "STUCK".into()
    } else {
        format!("STUCK ({})", odd.join(", "))
    }
}

/// `1234567` as `1.2M`.
pub fn human(x: f64) -> String {
    let (v, unit) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        return format!("{x:.0}");
    };
    format!("{v:.1}{unit}")
}

/// A duration as `3s`, `4m12s`, `2h05m`, `3d04h`.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(committed: u64, bytes: u64, released: u64, rbytes: u64, full: u64) -> Stats {
        Stats {
            messages_committed: committed,
            bytes_committed: bytes,
            messages_released: released,
            bytes_released: rbytes,
            full_events: full,
            consumer: RoleState::Attached,
            producer: RoleState::Attached,
            ..Stats::default()
        }
    }

    #[test]
    fn fill_counts_headers_and_saturates() {
        assert_eq!(fill(&stats(10, 80, 4, 32, 0), 1024), (6, 48 + 48));
        // Backwards or huge counters (a hostile peer): no overflow.
        assert_eq!(fill(&stats(1, 0, 5, 9, 0), 1024), (0, 0));
        assert_eq!(
            fill(&stats(u64::MAX, u64::MAX, 0, 0, 0), 1024),
            (u64::MAX, 1024)
        );
    }

    #[test]
    fn stuck_needs_a_full_ring_and_no_release() {
        let cap = 1024;
        let full = stats(100, 900, 40, 360, 3);
        // Nearly full (540 + 480 of 1024), nothing released: stuck.
        assert!(stuck(&full, &full, cap));
        // Something released: not stuck.
        assert!(!stuck(&stats(90, 810, 39, 351, 3), &full, cap));
        // Half full, nothing released, the producer not blocked: not stuck.
        let half = stats(10, 400, 5, 200, 0);
        assert!(!stuck(&half, &half, cap));
        // ... unless it found the ring full meanwhile.
        assert!(stuck(&half, &stats(10, 400, 5, 200, 1), cap));
        // Empty: never.
        let empty = stats(5, 50, 5, 50, 9);
        assert!(!stuck(&empty, &stats(5, 50, 5, 50, 10), cap));
        // The consumer closed or gone from the role: not a stuck reader.
        let mut closed = full;
        closed.consumer = RoleState::Closed;
        assert!(!stuck(&full, &closed, cap));
    }

    #[test]
    fn fill_max_counts_alignment() {
        // 6 messages of 48 bytes: at most 48 + 6 * 15.
        assert_eq!(fill_max(&stats(10, 80, 4, 32, 0), 1024), (6, 48 + 90));
        assert_eq!(fill_max(&stats(1, 0, 5, 9, 0), 1024), (0, 0));
        assert_eq!(
            fill_max(&stats(u64::MAX, u64::MAX, 0, 0, 0), 1024),
            (u64::MAX, 1024)
        );
    }

    #[test]
    fn stuck_with_small_messages_and_one_blocked_send() {
        // 255 one-byte messages fill a 4096-byte ring (16 bytes each, and
        // the 8 bytes the producer keeps free); the producer blocked in one
        // send before the interval: no new full event. The lower bound
        // says 56%, the upper 99.6%.
        let cap = 4096;
        let blocked = stats(255, 255, 0, 0, 1);
        let (_, low) = fill(&blocked, cap);
        assert!((low as f64) < STUCK_FILL * f64::from(cap));
        assert!(stuck(&blocked, &blocked, cap));
    }

    #[test]
    fn state_column() {
        let side = |state, alive| Side {
            state,
            alive,
            ..Side::default()
        };
        let mut r = RingReport {
            id: String::new(),
            capacity: 4096,
            isolated: true,
            paired_by_guess: false,
            mapped_by: Vec::new(),
            roles: "holder",
            producer: side(RoleState::Attached, Some(true)),
            consumer: side(RoleState::Attached, Some(true)),
            stats: Stats::default(),
            in_flight: 0,
            fill_bytes: 0,
            fill: 0.0,
            fill_bytes_max: 0,
            fill_max: 0.0,
            holders_trusted: true,
            rates: None,
            stuck: Some(false),
            age: None,
        };
        assert_eq!(state_text(&r), "attached/attached");
        r.stuck = Some(true);
        assert_eq!(state_text(&r), "STUCK");
        r.consumer.alive = Some(false);
        assert_eq!(state_text(&r), "STUCK (consumer gone)");
        r.producer.state = RoleState::Closed;
        assert_eq!(state_text(&r), "STUCK (producer closed, consumer gone)");
        r.stuck = None;
        assert_eq!(state_text(&r), "closed/gone");
    }

    #[test]
    fn rates_per_second() {
        let r = rates(&stats(0, 0, 0, 0, 0), &stats(500, 5000, 400, 0, 2), 0.5);
        assert_eq!(
            (r.messages, r.bytes, r.released, r.full),
            (1000.0, 10000.0, 800.0, 4.0)
        );
        // Backwards: zero, not a panic.
        assert_eq!(
            rates(&stats(9, 9, 9, 9, 9), &stats(0, 0, 0, 0, 0), 1.0).messages,
            0.0
        );
    }

    #[test]
    fn formats() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(12_345.0), "12.3k");
        assert_eq!(human(2.5e9), "2.5G");
        assert_eq!(age(Duration::from_secs(59)), "59s");
        assert_eq!(age(Duration::from_secs(252)), "4m12s");
        assert_eq!(age(Duration::from_secs(7500)), "2h05m");
        assert_eq!(age(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d04h");
    }
}
