//! Lost wake-ups: round trips between two threads where both sides sleep on
//! every message (spin budget 0 on all four handles: each receive and each
//! wait for room announces sleep and blocks in the futex at once), so every
//! message goes through the announce / re-check / wake protocol
//! (ring-core's `sleep.rs`, modelled under loom). A lost wake-up would leave
//! a side asleep until its timeout; the test fails on the first receive that
//! times out and reports the worst wake-up it saw.
//!
//! CI runs 20 000 round trips. The soak before a release:
//!
//! ```text
//! MEMTUBE_WAKEUP_ROUNDS=1000000 cargo test --release --test wakeup -- --nocapture
//! ```

#![cfg(target_os = "linux")]

use memtube::ring::channel;
use std::time::{Duration, Instant};

/// Far above any wake-up (microseconds), far below a hang's verdict.
const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn no_lost_wakeup_when_both_sides_sleep_on_every_message() {
    let rounds: u64 = std::env::var("MEMTUBE_WAKEUP_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let (mut ping_tx, mut ping_rx) = channel(4096).unwrap();
    let (mut pong_tx, mut pong_rx) = channel(4096).unwrap();
    for b in [&mut *ping_tx, &mut *pong_tx] {
        b.set_spin_budget(0);
    }
    for b in [&mut *ping_rx, &mut *pong_rx] {
        b.set_spin_budget(0);
    }
    let echo = std::thread::spawn(move || {
        for i in 0..rounds {
            let m = ping_rx
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|e| panic!("echo: round {i}: {e:?} (a lost wake-up?)"));
            pong_tx.send_timeout(&m, m.type_id(), TIMEOUT).unwrap();
        }
    });
    let mut worst = Duration::ZERO;
    let mut samples = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let t0 = Instant::now();
        ping_tx
            .send_timeout(&i.to_le_bytes(), i as u32, TIMEOUT)
            .unwrap();
        let m = pong_rx
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("round {i}: {e:?} (a lost wake-up?)"));
        let dt = t0.elapsed();
        assert_eq!(&m[..], &i.to_le_bytes(), "round {i}");
        drop(m);
        worst = worst.max(dt);
        samples.push(dt);
    }
    echo.join().unwrap();
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let stats = ping_tx.stats();
    eprintln!(
        "{rounds} round trips, both sides sleeping: p50 {:?}, p99 {:?}, p99.99 {:?}, worst {worst:?}; \
         producer wakes {}, consumer wakes {}",
        at(0.5),
        at(0.99),
        at(0.9999),
        stats.producer_wakes,
        stats.consumer_wakes,
    );
    // Messages woke their receiver: the protocol was exercised, not skipped
    // by a spin. (Natively nearly every message does; under qemu-user, whose
    // threads run slower and interleave differently, about a third did, so
    // the bound is loose: it catches a run that never slept.)
    assert!(
        stats.producer_wakes >= rounds / 10,
        "only {} wakes in {rounds} round trips",
        stats.producer_wakes
    );
    assert!(worst < TIMEOUT / 10, "a wake-up took {worst:?}");
}
