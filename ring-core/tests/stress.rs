//! Two-thread stress tests: a producer thread and a consumer thread move
//! many messages of random sizes through rings of several capacities, in the
//! default (spin-then-sleep) and pure-spin modes, over the single and the
//! split layout, mixing every way of sending and receiving.
//!
//! Every message carries its sequence number: `type_id = seq as u32`, its
//! length is a deterministic function of `seq`, its first 8 bytes (when it
//! has 8) are `seq` and the others a deterministic function of `seq` and
//! their index. The consumer knows which `seq` comes next, so any loss,
//! duplication, reordering or corruption fails the test.
//!
//! Copying sends switch between ordinary and non-temporal stores (every
//! threshold from 0 to off).
//!
//! Blocking calls use a generous timeout so a lost wake-up fails instead of
//! hanging. The tests assert correctness only; the printed rates are
//! informative.
//!
//! Sizes: a few seconds in debug builds; over a million messages in total in
//! release builds (`cargo test --release -p ring-core --features std --test stress -- --nocapture`).

use memtube_ring::{
    max_payload, region_size, split, split_with_consumer_block, Config, Error, RegionBuf, SpinWait,
    CONSUMER_BLOCK_SIZE,
};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Timeout of every blocking call: far longer than any honest wait.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest capacity exercised.
const BIG: usize = match region_size(65536) {
    Some(n) => n,
    None => panic!("invalid capacity"),
};

/// The tests of this file run one at a time: two busy threads per test are
/// all a 2-core machine holds.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

mod common;
use common::{Rng, Rx, Tx};

/// splitmix64 finalizer: a hash of the sequence number.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Payload length of message `seq`: mostly small, sometimes empty, sometimes
/// the largest the ring takes, sometimes anything.
fn msg_len(seq: u64, max: usize) -> usize {
    let h = mix(seq);
    let r = (h >> 8) as usize;
    match h % 32 {
        0 => max,
        1 | 2 => r % (max + 1),
        3 => 0,
        4..=7 => 8.min(max),
        _ => r % (max.min(64) + 1),
    }
}

fn byte(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ (seq >> 8) as u8 ^ (i >> 8) as u8
}

/// Write message `seq`'s payload into `buf` (exactly its length).
fn fill(seq: u64, buf: &mut [u8]) {
    let skip = if buf.len() >= 8 {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        8
    } else {
        0
    };
    for (i, b) in buf.iter_mut().enumerate().skip(skip) {
        *b = byte(seq, i);
    }
}

/// Check that an in-place payload is exactly message `seq`.
fn verify_in_place(seq: u64, max: usize, type_id: u32, payload: &[u8]) {
    assert_eq!(payload.as_ptr() as usize % 8, 0, "payload alignment");
    verify(seq, max, type_id, payload);
}

/// Check that `(type_id, payload)` is exactly message `seq`.
fn verify(seq: u64, max: usize, type_id: u32, payload: &[u8]) {
    assert_eq!(
        type_id, seq as u32,
        "type id: message lost, duplicated or reordered (expected seq {seq})"
    );
    let len = msg_len(seq, max);
    assert_eq!(payload.len(), len, "length of message {seq}");
    let skip = if len >= 8 {
        let got = u64::from_le_bytes(payload[..8].try_into().unwrap());
        assert_eq!(got, seq, "sequence number in the payload");
        8
    } else {
        0
    };
    for (i, &b) in payload.iter().enumerate().skip(skip) {
        if b != byte(seq, i) {
            panic!(
                "message {seq}: byte {i} is {b:#x}, expected {:#x}",
                byte(seq, i)
            );
        }
    }
}

/// Send messages `0..n`, mixing the ways of sending; then drop the producer.
fn produce(mut tx: Tx<'_>, n: u64, seed: u64) {
    let max = tx.max_payload() as usize;
    let tx_cap = tx.capacity();
    let mut rng = Rng::new(seed);
    let mut scratch = vec![0u8; max];
    let mut seq = 0;
    // Copying sends of payloads from this length use non-temporal stores
    // (the default, 16 KiB, is above most payloads here): sometimes every
    // one, at every alignment, so the publication's ordering after them is
    // tested too.
    let thresholds = [0, 1, 64, 100, 16 * 1024, u32::MAX];
    let pick = |rng: &mut Rng| thresholds[rng.below(thresholds.len() as u64) as usize];
    tx.set_nontemporal_threshold(pick(&mut rng));
    // Early wrap: off, or from an offset anywhere in the ring.
    let wraps = |rng: &mut Rng| match rng.below(3) {
        0 => u32::MAX,
        _ => rng.below(tx_cap as u64) as u32,
    };
    tx.set_early_wrap(wraps(&mut rng));
    while seq < n {
        match rng.below(16) {
            // Copying blocking send.
            0..=4 => {
                if rng.below(64) == 0 {
                    tx.set_nontemporal_threshold(pick(&mut rng));
                }
                if rng.below(64) == 0 {
                    tx.set_early_wrap(wraps(&mut rng));
                }
                let len = msg_len(seq, max);
                fill(seq, &mut scratch[..len]);
                tx.send_timeout(&scratch[..len], seq as u32, TIMEOUT)
                    .unwrap_or_else(|e| panic!("send_timeout of message {seq}: {e:?}"));
                seq += 1;
            }
            // In-place write into a larger reservation, commit of part of it.
            5..=8 => {
                let len = msg_len(seq, max);
                let extra = rng.below(24) as usize;
                let mut g = tx
                    .reserve_timeout((len + extra).min(max), TIMEOUT)
                    .unwrap_or_else(|e| panic!("reserve_timeout of message {seq}: {e:?}"));
                assert_eq!(g.as_ptr() as usize % 8, 0);
                if rng.below(2) == 0 {
                    fill(seq, &mut g[..len]);
                } else {
                    // Copied in by the grant (non-temporal past the threshold).
                    fill(seq, &mut scratch[..len]);
                    g.copy_from(0, &scratch[..len]);
                }
                g.commit(len, seq as u32);
                seq += 1;
            }
            // A staged batch, published at once.
            9..=13 => {
                let k = 1 + rng.below(24);
                for _ in 0..k.min(n - seq) {
                    let len = msg_len(seq, max);
                    let mut g = match tx.try_reserve(len) {
                        Ok(g) => g,
                        // Full published the batch so far; wait for room.
                        Err(Error::Full) => tx
                            .reserve_timeout(len, TIMEOUT)
                            .unwrap_or_else(|e| panic!("reserve_timeout of message {seq}: {e:?}")),
                        Err(e) => panic!("reserve of message {seq}: {e:?}"),
                    };
                    fill(seq, &mut g);
                    g.commit_staged(len, seq as u32);
                    seq += 1;
                }
                // Sometimes leave the batch staged: the next publishing call
                // (or the producer's drop) publishes it.
                if rng.below(4) != 0 {
                    tx.publish();
                }
            }
            // Staged copies.
            14 => {
                let len = msg_len(seq, max);
                fill(seq, &mut scratch[..len]);
                match tx.send_staged(&scratch[..len], seq as u32) {
                    Ok(()) => seq += 1,
                    Err(Error::Full) => {}
                    Err(e) => panic!("send_staged of message {seq}: {e:?}"),
                }
            }
            // A reservation dropped without commit: delivers nothing.
            _ => {
                let len = rng.below(max as u64 + 1) as usize;
                let mut g = tx
                    .reserve_timeout(len, TIMEOUT)
                    .unwrap_or_else(|e| panic!("reserve_timeout before message {seq}: {e:?}"));
                g.fill(0x05);
                drop(g);
            }
        }
    }
    // Dropping publishes whatever is still staged, then closes.
}

/// Receive messages `0..n` in order, mixing the ways of receiving; then
/// expect `Closed`.
fn consume(mut rx: Rx<'_>, n: u64, seed: u64) {
    let max = rx.max_payload() as usize;
    let cap = rx.capacity();
    let mut rng = Rng::new(seed);
    let mut seq = 0;
    while seq < n {
        match rng.below(16) {
            0..=6 => {
                let m = rx
                    .recv_timeout(TIMEOUT)
                    .unwrap_or_else(|e| panic!("recv_timeout of message {seq}: {e:?}"));
                verify_in_place(seq, max, m.type_id(), m.payload());
                if rng.below(2) == 0 {
                    m.release();
                }
                seq += 1;
            }
            7..=11 => {
                let k = 1 + rng.below(32) as usize;
                match rx.recv_batch(k, |ty, p| {
                    verify_in_place(seq, max, ty, p);
                    seq += 1;
                }) {
                    Ok(got) => assert!(got >= 1 && got <= k),
                    Err(Error::Empty) => {
                        // Wait for the next one instead of spinning here.
                        let m = rx
                            .recv_timeout(TIMEOUT)
                            .unwrap_or_else(|e| panic!("recv_timeout of message {seq}: {e:?}"));
                        verify_in_place(seq, max, m.type_id(), m.payload());
                        seq += 1;
                    }
                    Err(e) => panic!("recv_batch at message {seq}: {e:?}"),
                }
            }
            12..=13 => match rx.peek() {
                Ok(p) => {
                    verify_in_place(seq, max, p.type_id(), p.payload());
                    let (ty, bytes) = (p.type_id(), p.payload().to_vec());
                    let m = rx.try_recv().expect("recv after a successful peek");
                    assert_eq!(
                        (m.type_id(), m.payload()),
                        (ty, &bytes[..]),
                        "recv after peek"
                    );
                    seq += 1;
                }
                Err(Error::Empty) => std::thread::yield_now(),
                Err(e) => panic!("peek at message {seq}: {e:?}"),
            },
            14 => match rx.try_recv() {
                Ok(m) => {
                    verify_in_place(seq, max, m.type_id(), m.payload());
                    seq += 1;
                }
                Err(Error::Empty) => std::thread::yield_now(),
                Err(e) => panic!("recv at message {seq}: {e:?}"),
            },
            _ => rx.set_release_threshold(1 + rng.below(cap as u64) as u32),
        }
    }
    // Everything arrived; the producer drops after its last message.
    assert_eq!(
        rx.recv_timeout(TIMEOUT).err(),
        Some(Error::Closed),
        "after the last message"
    );
    assert_eq!(rx.try_recv().err(), Some(Error::Closed));
    assert_eq!(rx.peek().err(), Some(Error::Closed));
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    Single,
    Split,
}

/// Run one producer and one consumer over a fresh ring and return the rate.
fn run(cap: u32, pure_spin: bool, layout: Layout, n: u64, seed: u64) -> f64 {
    let mut buf: Box<RegionBuf<BIG>> = Box::default();
    let mut cons_block: Box<RegionBuf<CONSUMER_BLOCK_SIZE>> = Box::default();
    let config = Config::new(cap).pure_spin(pure_spin);
    let (tx, rx) = match layout {
        Layout::Single => split(buf.as_mut_slice(), config, SpinWait::std()).unwrap(),
        Layout::Split => split_with_consumer_block(
            buf.as_mut_slice(),
            cons_block.as_mut_slice(),
            config,
            SpinWait::std(),
        )
        .unwrap(),
    };
    assert_eq!(tx.max_payload(), max_payload(cap));
    let start = Instant::now();
    std::thread::scope(|s| {
        let p = s.spawn(move || produce(tx, n, seed));
        let c = s.spawn(move || consume(rx, n, seed ^ 0xC0FFEE));
        // Join both so that a panic in either is reported (the other then
        // sees Closed and fails too, rather than hanging).
        let (pr, cr) = (p.join(), c.join());
        if let Err(e) = cr {
            std::panic::resume_unwind(e);
        }
        if let Err(e) = pr {
            std::panic::resume_unwind(e);
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    println!(
        "cap {cap:>6} {:<10} {layout:?}: {n} messages in {secs:.3} s = {rate:.0} msg/s",
        if pure_spin { "pure-spin" } else { "sleep" },
    );
    rate
}

/// Messages per configuration: >= 1 million in total in release builds
/// (12 configurations), a few seconds in all in debug builds, even on a
/// loaded 2-core machine.
fn per_config(pure_spin: bool, cap: u32) -> u64 {
    let n = if cfg!(miri) {
        200
    } else if cfg!(debug_assertions) {
        // Pure spin on an oversubscribed machine can lose whole time slices
        // per hand-over; large rings carry large messages, slow to check in
        // debug builds.
        match (pure_spin, cap >= 65536) {
            (false, false) => 4_000,
            (false, true) | (true, false) => 1_500,
            (true, true) => 800,
        }
    } else {
        100_000
    };
    if cap <= 128 {
        // The smallest rings hand over on nearly every message.
        n / 4
    } else {
        n
    }
}

fn stress(pure_spin: bool) {
    let _serial = serial();
    let caps: &[u32] = if cfg!(miri) {
        &[256]
    } else {
        &[256, 4096, 65536]
    };
    let mut total = 0;
    for (i, &cap) in caps.iter().enumerate() {
        for layout in [Layout::Single, Layout::Split] {
            let n = per_config(pure_spin, cap);
            run(
                cap,
                pure_spin,
                layout,
                n,
                0x5EED + i as u64 * 2 + matches!(layout, Layout::Split) as u64,
            );
            total += n;
        }
    }
    println!("{total} messages");
}

#[test]
fn stress_sleeping_mode() {
    stress(false);
}

#[test]
fn stress_pure_spin_mode() {
    stress(true);
}

/// The smallest ring, where every largest message forces the consumer to
/// release and the producer to wait: the wake-up protocol is exercised on
/// nearly every message.
#[test]
fn stress_smallest_ring() {
    let _serial = serial();
    for cap in [64, 128] {
        run(
            cap,
            false,
            Layout::Single,
            per_config(false, cap),
            7 + cap as u64,
        );
        run(
            cap,
            true,
            Layout::Split,
            per_config(true, cap),
            9 + cap as u64,
        );
    }
}

fn ring_of(cap: u32, pure_spin: bool, buf: &mut RegionBuf<BIG>) -> (Tx<'_>, Rx<'_>) {
    split(
        buf.as_mut_slice(),
        Config::new(cap).pure_spin(pure_spin),
        SpinWait::std(),
    )
    .unwrap()
}

/// A producer that drops mid-stream (with messages still staged): the
/// consumer receives every message it committed, in order, and only then
/// `Closed`, which then sticks.
#[test]
fn producer_drop_delivers_everything_then_closed() {
    let _serial = serial();
    for pure_spin in [false, true] {
        for (cap, k) in [(256u32, 0u64), (256, 1), (256, 300), (4096, 1500)] {
            let mut buf: Box<RegionBuf<BIG>> = Box::default();
            let (mut tx, mut rx) = ring_of(cap, pure_spin, &mut buf);
            let max = tx.max_payload() as usize;
            std::thread::scope(|s| {
                s.spawn(move || {
                    let mut rng = Rng::new(k);
                    for seq in 0..k {
                        let len = msg_len(seq, max);
                        let mut g = tx.reserve_timeout(len, TIMEOUT).unwrap();
                        fill(seq, &mut g);
                        // Mostly staged: the drop below must publish the tail.
                        if rng.below(8) == 0 {
                            g.commit(len, seq as u32);
                        } else {
                            g.commit_staged(len, seq as u32);
                        }
                    }
                    drop(tx);
                });
                let mut seq = 0;
                loop {
                    // Mix non-blocking polls (which may see Closed early if
                    // the ring reported it too soon) with blocking receives.
                    let r = if seq % 3 == 0 {
                        rx.try_recv()
                    } else {
                        rx.recv_timeout(TIMEOUT)
                    };
                    match r {
                        Ok(m) => {
                            verify_in_place(seq, max, m.type_id(), m.payload());
                            seq += 1;
                        }
                        Err(Error::Empty) => std::thread::yield_now(),
                        Err(Error::Closed) => break,
                        Err(e) => panic!("at message {seq}: {e:?}"),
                    }
                }
                assert_eq!(
                    seq, k,
                    "Closed before every committed message was delivered"
                );
                assert_eq!(rx.try_recv().err(), Some(Error::Closed));
                assert_eq!(rx.peek().err(), Some(Error::Closed));
                assert_eq!(
                    rx.recv_batch(10, |_, _| panic!("message after Closed")),
                    Err(Error::Closed)
                );
                assert_eq!(
                    rx.recv_timeout(Duration::from_millis(1)).err(),
                    Some(Error::Closed)
                );
                assert!(rx.is_producer_closed());
            });
        }
    }
}

/// Single-threaded: staged messages are published by the producer's drop and
/// delivered before `Closed`, also through `recv_batch`.
#[test]
fn producer_drop_publishes_staged() {
    let mut buf: Box<RegionBuf<BIG>> = Box::default();
    let (mut tx, mut rx) = ring_of(1024, false, &mut buf);
    for i in 0..5u32 {
        tx.send_staged(&[i as u8; 3], i).unwrap();
    }
    assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    drop(tx);
    let mut got = Vec::new();
    assert_eq!(rx.recv_batch(100, |t, p| got.push((t, p.to_vec()))), Ok(5));
    assert_eq!(
        got,
        (0..5u32).map(|i| (i, vec![i as u8; 3])).collect::<Vec<_>>()
    );
    assert_eq!(rx.recv_batch(100, |_, _| {}), Err(Error::Closed));
}

/// A producer blocked on a full ring returns `Closed` (not `Timeout`) when
/// the consumer drops, in both modes; so does a non-blocking send on a full
/// ring afterwards.
#[test]
fn consumer_drop_unblocks_producer() {
    let _serial = serial();
    for pure_spin in [false, true] {
        for received in [0u64, 3] {
            let mut buf: Box<RegionBuf<BIG>> = Box::default();
            let (mut tx, mut rx) = ring_of(256, pure_spin, &mut buf);
            let max = tx.max_payload() as usize;
            std::thread::scope(|s| {
                let producer = s.spawn(move || {
                    let mut scratch = vec![0u8; max];
                    let mut seq = 0u64;
                    let err = loop {
                        let len = msg_len(seq, max);
                        fill(seq, &mut scratch[..len]);
                        match tx.send_timeout(&scratch[..len], seq as u32, TIMEOUT) {
                            Ok(()) => seq += 1,
                            Err(e) => break e,
                        }
                    };
                    assert_eq!(
                        err,
                        Error::Closed,
                        "blocked producer after the consumer dropped"
                    );
                    assert!(tx.is_consumer_closed());
                    // The ring stays full: later calls report Closed too.
                    assert_eq!(tx.try_send(&scratch[..max], 0), Err(Error::Closed));
                    assert_eq!(tx.reserve_timeout(max, TIMEOUT).err(), Some(Error::Closed));
                    seq
                });
                for seq in 0..received {
                    let m = rx.recv_timeout(TIMEOUT).unwrap();
                    verify_in_place(seq, max, m.type_id(), m.payload());
                }
                // Let the producer fill the ring and block (correct either way).
                std::thread::sleep(Duration::from_millis(30));
                drop(rx);
                let sent = producer.join().unwrap();
                assert!(sent >= received);
            });
        }
    }
}

/// A consumer blocked on an empty ring returns `Closed` when the producer
/// drops without sending anything.
#[test]
fn producer_drop_unblocks_consumer() {
    let _serial = serial();
    for pure_spin in [false, true] {
        let mut buf: Box<RegionBuf<BIG>> = Box::default();
        let (tx, mut rx) = ring_of(256, pure_spin, &mut buf);
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                drop(tx);
            });
            assert_eq!(rx.recv_timeout(TIMEOUT).err(), Some(Error::Closed));
        });
    }
}

/// Payloads copied with non-temporal stores (weakly ordered on x86) are
/// whole when the consumer sees their publication. The consumer must be
/// waiting when each message is published, so the producer does more work
/// per message (it fills every word) than the consumer checks (the first
/// and last word of each 64-byte line). Word `k` of message `seq` is
/// `seq ^ k << 40`, so a stale word and a misplaced one both fail. Without
/// the fence before the publication this failed in ten release runs of ten,
/// within 2000 messages in most (`.ci/run` runs it so); debug builds are
/// too slow to hit the window. One configuration stages each message and
/// publishes every fourth.
#[test]
fn nontemporal_copies_land_before_their_publication() {
    let _serial = serial();
    let n: u64 = if cfg!(miri) {
        50
    } else if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    let word = |seq: u64, k: usize| seq ^ ((k as u64) << 40);
    for (pure_spin, len, staged) in [
        (true, 4096usize, false),
        (true, 1000, false),
        (false, 20_000, false),
        (true, 4096, true),
    ] {
        let mut buf: Box<RegionBuf<BIG>> = Box::default();
        let (mut tx, mut rx) = ring_of(65536, pure_spin, &mut buf);
        tx.set_nontemporal_threshold(0);
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut scratch = vec![0u8; len];
                for seq in 0..n {
                    for (k, w) in scratch.chunks_exact_mut(8).enumerate() {
                        w.copy_from_slice(&std::hint::black_box(word(seq, k)).to_le_bytes());
                    }
                    if !staged {
                        tx.send_timeout(&scratch, seq as u32, TIMEOUT).unwrap();
                        continue;
                    }
                    while let Err(e) = tx.send_staged(&scratch, seq as u32) {
                        // Full published the staged ones: wait for room.
                        assert_eq!(e, Error::Full);
                        tx.wait_for_room(len, Some(TIMEOUT)).unwrap();
                    }
                    if seq % 4 == 3 {
                        tx.publish();
                    }
                }
            });
            for seq in 0..n {
                let m = rx.recv_timeout(TIMEOUT).unwrap();
                assert_eq!((m.type_id(), m.len()), (seq as u32, len));
                let p = m.payload();
                for k in (0..len.div_ceil(64)).flat_map(|l| [l * 8, l * 8 + 7]) {
                    let Some(w) = p.get(k * 8..k * 8 + 8) else {
                        continue;
                    };
                    let got = u64::from_le_bytes(w.try_into().unwrap());
                    assert_eq!(got, word(seq, k), "message {seq} ({len} bytes): word {k}");
                }
            }
        });
    }
}
