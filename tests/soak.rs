//! Chaos between processes, sized by environment variables: short in CI,
//! the soaks before a release (docs/verification.md has their last results).
//!
//! - SIGKILL chaos: a child sends a checksummed sequence in bursts of
//!   random length (copying sends, grants filled byte by byte, staged
//!   batches) with random sleeps between them, and is SIGKILLed at a random
//!   moment, in a burst or asleep; or a child receiving with random pauses
//!   is killed while we send. Every message published before the kill
//!   arrives, in order, none torn, lost or duplicated, then `PeerGone`
//!   within the bound; a sender learns `PeerGone` within the bound.
//! - Scribbler: a hostile child writes random bytes over everything it can
//!   write of the shared regions (all of both rings without isolation; its
//!   own ring and its consumer block with it) between legitimate sends and
//!   receives, while we receive and send: every call returns within the
//!   bound with a message or a clean error, and every message and grant lies
//!   inside the data area of its ring.
//!
//! ```text
//! MEMTUBE_KILL_ROUNDS=1000 cargo test --release --test soak sigkill -- --nocapture
//! MEMTUBE_SCRIBBLE_SECS=60 cargo test --release --test soak scribbler -- --nocapture
//! ```

#![cfg(target_os = "linux")]

mod common;

use common::{env_u64, rand, unique_addr};

use memtube::{connect, listen, Error, Options};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
/// A dead peer must be reported, and every call return, well within this
/// (the design figure is one 50 ms liveness slice; this only catches hangs).
const BOUND: Duration = Duration::from_secs(5);
const SHARED: &str = "MEMTUBE_SOAK_SHARED";
const SEED: &str = "MEMTUBE_SOAK_SEED";
const CAPACITY: u32 = 4096;

fn time_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (t ^ (u64::from(std::process::id()) << 40)) | 1
}

fn fnv32(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Message `i`: 8..=max bytes (random from `i`), the first 8 are `i`, the
/// rest a pattern of `i`; its type id is the FNV-1a of the whole payload.
fn message(i: u64, max: usize, buf: &mut Vec<u8>) {
    let mut s = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let len = 8 + (rand(&mut s) as usize) % (max - 7);
    buf.clear();
    buf.extend_from_slice(&i.to_le_bytes());
    let x = rand(&mut s);
    buf.extend((8..len).map(|k| (x >> (k % 57)) as u8 ^ k as u8));
}

fn spawn(role: &str, addr: &str, shared: Option<&std::path::Path>, seed: u64) -> Child {
    let mut c = common::child_command(role, addr);
    c.env(SEED, seed.to_string());
    if let Some(p) = shared {
        c.env(SHARED, p);
    }
    c.spawn().expect("spawn child")
}

/// Two words shared with the child through a file both map: the messages it
/// has published, and its phase (1 in a burst, 2 asleep).
struct Shared {
    map: *mut AtomicU64,
}

impl Shared {
    fn open(path: &std::path::Path) -> Shared {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        f.set_len(16).unwrap();
        // SAFETY: a fresh shared mapping of a 16-byte file, kept for the
        // process's life (never unmapped), used only as two atomics.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                16,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &f,
                0,
            )
        }
        .unwrap();
        Shared { map: p.cast() }
    }
    fn word(&self, k: usize) -> &AtomicU64 {
        assert!(k < 2);
        // SAFETY: two 8-aligned words of a live mapping (see `open`).
        unsafe { &*self.map.add(k) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, no reference to it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.map.cast(), 16) };
    }
}

// ------------------------------------------------------- the child process

#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    common::child_main(child);
}

fn child(role: &str, addr: &str) -> Result<(), String> {
    let s = |e: Error| e.to_string();
    let mut seed = env_u64(SEED, 1) | 1;
    match role {
        // Bursts of random length by every way of sending, random sleeps.
        "chaos-send" => {
            let sh = Shared::open(std::path::Path::new(&std::env::var(SHARED).unwrap()));
            let o = Options::new().capacity(CAPACITY);
            let mut c = connect(addr, &o).map_err(s)?;
            let tx = c.sender().map_err(s)?;
            let max = tx.max_payload() as usize;
            let mut buf = Vec::new();
            let mut i = 0u64;
            loop {
                sh.word(1).store(1, Ordering::Release);
                let burst = 1 + rand(&mut seed) % 2000;
                let mode = rand(&mut seed) % 3;
                for _ in 0..burst {
                    message(i, max, &mut buf);
                    let ty = fnv32(&buf);
                    match mode {
                        0 => tx.send_timeout(&buf, ty, T).map_err(s)?,
                        1 => {
                            // Byte by byte, so a kill lands mid-message.
                            let mut g = tx.reserve_timeout(buf.len(), T).map_err(s)?;
                            for (d, b) in g.iter_mut().zip(&buf) {
                                *d = *b;
                            }
                            g.commit(buf.len(), ty);
                        }
                        _ => {
                            if tx.send_staged(&buf, ty).is_err() {
                                tx.publish();
                                sh.word(0).store(i, Ordering::Release);
                                tx.wait_for_room(buf.len(), Some(T)).map_err(s)?;
                                tx.send_staged(&buf, ty).map_err(s)?;
                            }
                        }
                    }
                    i += 1;
                    if mode != 2 {
                        sh.word(0).store(i, Ordering::Release);
                    }
                }
                tx.publish();
                sh.word(0).store(i, Ordering::Release);
                sh.word(1).store(2, Ordering::Release);
                std::thread::sleep(Duration::from_micros(rand(&mut seed) % 30_000));
            }
        }
        // Receive with random pauses (the sender meets a full ring).
        "chaos-recv" => {
            let o = Options::new()
                .capacity(CAPACITY)
                .direction(memtube::Direction::ListenerToConnector);
            let mut c = connect(addr, &o).map_err(s)?;
            let rx = c.receiver().map_err(s)?;
            loop {
                for _ in 0..rand(&mut seed) % 500 {
                    drop(rx.recv_timeout(T).map_err(s)?);
                }
                std::thread::sleep(Duration::from_micros(rand(&mut seed) % 30_000));
            }
        }
        // Garbage over every page it may write, between legitimate calls,
        // for a random while; then a clean close or an abrupt exit.
        "scribbler" => {
            let isolation = rand(&mut seed) % 2 == 0;
            let o = Options::new()
                .duplex(true)
                .capacity(CAPACITY)
                .isolation(isolation);
            let c = connect(addr, &o).map_err(s)?;
            let (tx, rx) = c.into_split();
            let (mut tx, mut rx) = (tx.unwrap(), rx.unwrap());
            let regions = writable_regions()?;
            let until = Instant::now() + Duration::from_millis(20 + rand(&mut seed) % 300);
            // One step in 2^k scribbles (k from 1 to 12: some rounds are
            // mostly garbage, some mostly well-formed traffic).
            let rate = 1u64 << (1 + rand(&mut seed) % 12);
            let mut buf = Vec::new();
            while Instant::now() < until {
                let r = rand(&mut seed);
                match if r % rate == 0 { 2 } else { r / rate % 2 } {
                    0 => {
                        message(rand(&mut seed) % 1000, 600, &mut buf);
                        let _ = tx.try_send(&buf, fnv32(&buf));
                    }
                    1 => drop(rx.try_recv()),
                    _ => scribble(&regions, &mut seed),
                }
                if rand(&mut seed) % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(rand(&mut seed) % 2000));
                }
            }
            if rand(&mut seed) % 2 == 0 {
                std::process::exit(0); // no close: the victim sees PeerGone
            }
            Ok(())
        }
        _ => Err(format!("unknown role {role}")),
    }
}

/// Every shared memtube mapping this process may write: (start, len).
fn writable_regions() -> Result<Vec<(usize, usize)>, String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let v: Vec<(usize, usize)> = maps
        .lines()
        .filter(|l| l.contains("/memfd:memtube-") && l.contains("rw-s"))
        .map(|l| {
            let (a, b) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            let a = usize::from_str_radix(a, 16).unwrap();
            (a, usize::from_str_radix(b, 16).unwrap() - a)
        })
        .collect();
    if v.is_empty() {
        return Err(format!("no writable memtube mapping:\n{maps}"));
    }
    Ok(v)
}

/// Write one burst of garbage: a few words, a run of bytes, or the whole
/// of a region; values random or chosen to look plausible (small lengths,
/// positions near the ring's, all ones, committed bits).
fn scribble(regions: &[(usize, usize)], seed: &mut u64) {
    let (start, len) = regions[(rand(seed) as usize) % regions.len()];
    let words = len / 4;
    let n = match rand(seed) % 8 {
        0 => words,
        1..=3 => 1 + (rand(seed) as usize) % 64,
        _ => 1,
    };
    let at = (rand(seed) as usize) % words;
    for k in 0..n {
        let w = (at + k) % words;
        let v: u32 = match rand(seed) % 6 {
            0 => rand(seed) as u32,
            1 => (rand(seed) % 4200) as u32,
            2 => u32::MAX,
            3 => ((rand(seed) % 2100) as u32) << 2 | 1,
            4 => 0,
            _ => (rand(seed) as u32) | 1,
        };
        // SAFETY: inside a shared mapping of this process that
        // /proc/self/maps lists as writable, 4-aligned; the garbage is the
        // point (the other process must survive it), and this process
        // touches these rings only through ring-core's checked handles.
        unsafe { ((start + 4 * w) as *mut u32).write_volatile(v) };
    }
}

// ------------------------------------------------------------- SIGKILL chaos

/// The mapping of this process that holds `addr`: (start, end, name).
fn mapping_of(addr: usize) -> Option<(usize, usize, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (a, b) = it.next()?.split_once('-')?;
        let (a, b) = (
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        );
        let name = it.nth(4).unwrap_or("").to_string();
        (a..b).contains(&addr).then_some((a, b, name))
    })
}

/// The data area of the ring whose mapping holds `addr` (`DATA_OFFSET`
/// bytes into the mapping, `CAPACITY` long).
fn data_area(addr: usize) -> (usize, usize) {
    let (start, _, name) = mapping_of(addr).expect("a payload outside every mapping");
    assert!(name.starts_with("/memfd:memtube-ring"), "{name}");
    (start + 640, start + 640 + CAPACITY as usize)
}

#[test]
fn sigkill_chaos_between_processes() {
    let rounds = env_u64("MEMTUBE_KILL_ROUNDS", 12);
    let mut seed = time_seed();
    eprintln!("sigkill chaos: {rounds} rounds, seed {seed}");
    let dir = std::env::temp_dir().join(format!("memtube-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut total, mut in_burst, mut asleep, mut consumer_kills) = (0u64, 0u64, 0u64, 0u64);
    let (mut handshake_kills, mut gone) = (0u64, 0u32);
    let mut accept_refused = std::collections::BTreeMap::<String, u64>::new();
    let (mut worst, mut sum) = (Duration::ZERO, Duration::ZERO);
    let started = Instant::now();
    for round in 0..rounds {
        let child_seed = rand(&mut seed);
        let kill_after = Duration::from_micros(rand(&mut seed) % 250_000);
        let waited = if round % 8 == 5 {
            // The producer dies around its connect: before it, during the
            // handshake, or just after. `accept` refuses it cleanly (or
            // sees no one), or the connection reports `PeerGone`.
            handshake_kills += 1;
            let addr = unique_addr("chaos-h");
            let o = Options::new().capacity(CAPACITY);
            let l = listen(addr.as_str(), &o).unwrap();
            let mut child = spawn("chaos-send", &addr, Some(&dir.join("unused")), child_seed);
            let after = Duration::from_micros(rand(&mut seed) % 40_000);
            let killer = std::thread::spawn(move || {
                std::thread::sleep(after);
                child.kill().unwrap();
                let killed = Instant::now();
                assert_eq!(child.wait().unwrap().signal(), Some(9));
                killed
            });
            let r = l.accept_timeout(Duration::from_millis(500));
            let killed = killer.join().unwrap();
            match r {
                Ok(mut c) => {
                    let rx = c.receiver().unwrap();
                    let end = loop {
                        match rx.recv_timeout(T) {
                            Ok(_) => {}
                            Err(e) => break e,
                        }
                    };
                    assert_eq!(end, Error::PeerGone, "round {round}");
                    killed.elapsed()
                }
                Err(Error::Timeout) => {
                    accept_refused.entry("Timeout".into()).or_insert(0u64);
                    *accept_refused.get_mut("Timeout").unwrap() += 1;
                    Duration::ZERO
                }
                Err(e) => {
                    assert!(matches!(e, Error::Handshake(_)), "round {round}: {e:?}");
                    *accept_refused.entry(format!("{e:?}")).or_insert(0) += 1;
                    Duration::ZERO
                }
            }
        } else if round % 4 == 3 {
            // The consumer dies while we send.
            consumer_kills += 1;
            let addr = unique_addr("chaos-c");
            let o = Options::new()
                .capacity(CAPACITY)
                .direction(memtube::Direction::ListenerToConnector);
            let l = listen(addr.as_str(), &o).unwrap();
            let mut child = spawn("chaos-recv", &addr, None, child_seed);
            let mut c = l.accept_timeout(T).unwrap();
            let tx = c.sender().unwrap();
            let max = tx.max_payload() as usize;
            let t0 = Instant::now();
            let mut killed: Option<Instant> = None;
            let mut buf = Vec::new();
            let mut i = 0;
            let end = loop {
                if killed.is_none() && t0.elapsed() >= kill_after {
                    child.kill().unwrap();
                    killed = Some(Instant::now());
                }
                message(i, max, &mut buf);
                let call = Instant::now();
                let r = tx.send_timeout(&buf, fnv32(&buf), T);
                assert!(call.elapsed() < BOUND, "round {round}: a send blocked");
                match r {
                    Ok(()) => i += 1,
                    Err(e) => break e,
                }
            };
            assert_eq!(end, Error::PeerGone, "round {round}");
            assert_eq!(child.wait().unwrap().signal(), Some(9));
            total += i;
            killed.expect("killed").elapsed()
        } else {
            let addr = unique_addr("chaos-p");
            let o = Options::new().capacity(CAPACITY);
            let l = listen(addr.as_str(), &o).unwrap();
            let path = dir.join(format!("round-{round}"));
            let sh = Shared::open(&path);
            sh.word(0).store(0, Ordering::Relaxed);
            sh.word(1).store(0, Ordering::Relaxed);
            let mut child = spawn("chaos-send", &addr, Some(&path), child_seed);
            let mut c = l.accept_timeout(T).unwrap();
            let rx = c.receiver().unwrap();
            let max = rx.max_payload() as usize;
            let t0 = Instant::now();
            let mut killed: Option<Instant> = None;
            let mut i = 0u64;
            let mut want = Vec::new();
            let end = loop {
                if killed.is_none() && t0.elapsed() >= kill_after {
                    child.kill().unwrap();
                    killed = Some(Instant::now());
                    match sh.word(1).load(Ordering::Acquire) {
                        1 => in_burst += 1,
                        _ => asleep += 1,
                    }
                }
                let call = Instant::now();
                // Short waits, so the kill comes on time while the child sleeps.
                let r = rx.recv_timeout(Duration::from_millis(10));
                assert!(call.elapsed() < BOUND, "round {round}: a receive blocked");
                match r {
                    Ok(m) => {
                        message(i, max, &mut want);
                        let p = m.payload();
                        assert!(
                            m.type_id() == fnv32(p) && p == &want[..],
                            "round {round}: message {i} torn, lost or duplicated ({} bytes)",
                            p.len()
                        );
                        i += 1;
                    }
                    Err(Error::Timeout) => {}
                    Err(e) => break e,
                }
            };
            let waited = killed.expect("killed before the end").elapsed();
            assert_eq!(end, Error::PeerGone, "round {round} after {i} messages");
            assert_eq!(child.wait().unwrap().signal(), Some(9));
            // Every message published before the kill arrived (the count is
            // stored after each publication, so one more may have come).
            let published = sh.word(0).load(Ordering::Acquire);
            assert!(
                i >= published,
                "round {round}: {i} received, {published} published"
            );
            let _ = std::fs::remove_file(&path);
            total += i;
            waited
        };
        assert!(waited < BOUND, "round {round}: PeerGone after {waited:?}");
        worst = worst.max(waited);
        sum += waited;
        if !waited.is_zero() {
            gone += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "sigkill chaos: {rounds} kills ({} of the producer while it streams: {in_burst} in a \
         burst, {asleep} asleep; {consumer_kills} of the consumer; {handshake_kills} around \
         the connect, accept refusing {accept_refused:?}), {total} messages checked, \
         PeerGone after the kill ({gone} times): worst {worst:?}, mean {:?}; {:?}",
        rounds - consumer_kills - handshake_kills,
        sum / gone.max(1),
        started.elapsed()
    );
}

// ---------------------------------------------------------------- scribbler

/// A call's time limit: mostly 5 ms; one in eight 120 ms, long enough to
/// sleep in the futex over sleep words the scribbler may have rewritten.
fn wait(seed: &mut u64) -> Duration {
    if rand(seed) % 8 == 0 {
        Duration::from_millis(120)
    } else {
        Duration::from_millis(5)
    }
}

#[test]
fn scribbler_gives_clean_errors_or_well_formed_messages() {
    let secs = env_u64("MEMTUBE_SCRIBBLE_SECS", 2);
    let mut seed = time_seed();
    eprintln!("scribbler: {secs} s, seed {seed}");
    let started = Instant::now();
    let (mut rounds, mut msgs, mut grants) = (0u64, 0u64, 0u64);
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    let mut worst_call = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        rounds += 1;
        let addr = unique_addr("scribble");
        // Isolation is the connector's choice here; the listener follows.
        let o = Options::new().duplex(true).capacity(CAPACITY);
        let child_seed = rand(&mut seed);
        let mut s = child_seed | 1;
        let isolation = rand(&mut s) % 2 == 0;
        let l = listen(addr.as_str(), &o.clone().isolation(isolation)).unwrap();
        let mut child = spawn("scribbler", &addr, None, child_seed);
        // The listener attaches its own handles after the connector's
        // answer, so the scribbler may have written over a header by then:
        // `accept` refuses that peer with a clean error.
        let mut c = match l.accept_timeout(T) {
            Ok(c) => c,
            Err(e) => {
                assert!(matches!(e, Error::Ring(_) | Error::Handshake(_)), "{e:?}");
                *errors.entry(format!("accept: {e:?}")).or_default() += 1;
                let st = child.wait().unwrap();
                assert!(st.success(), "the scribbler failed: {st:?}");
                continue;
            }
        };
        let round_start = Instant::now();
        let (mut rx_done, mut tx_done) = (false, false);
        let mut rx_area = None;
        let mut tx_area = None;
        let mut buf = Vec::new();
        let mut copy = vec![0u8; CAPACITY as usize];
        let note = |e: &Error, errors: &mut std::collections::BTreeMap<String, u64>| {
            let k = match e {
                Error::Ring(r) => format!("Ring({r:?})"),
                e => format!("{e:?}"),
            };
            *errors.entry(k).or_default() += 1;
            assert!(
                matches!(
                    e,
                    Error::Ring(_)
                        | Error::PeerGone
                        | Error::Closed
                        | Error::Timeout
                        | Error::Protocol(_)
                ),
                "{e:?}"
            );
            matches!(
                e,
                Error::PeerGone | Error::Closed | Error::Ring(memtube_ring::Error::Corrupt(_))
            )
        };
        while !(rx_done && tx_done) {
            assert!(
                round_start.elapsed() < Duration::from_secs(2) + BOUND,
                "round {rounds}: no end"
            );
            if !rx_done {
                let call = Instant::now();
                let r = c.receiver().unwrap().recv_timeout(wait(&mut seed));
                match r {
                    Ok(m) => {
                        let p = m.payload();
                        let (a, b) = *rx_area.get_or_insert_with(|| data_area(p.as_ptr() as usize));
                        let at = p.as_ptr() as usize;
                        assert!(
                            at >= a + 8 && at + p.len() <= b,
                            "a payload outside the data area: {at:#x}+{} not in {a:#x}..{b:#x}",
                            p.len()
                        );
                        // Every byte read once, volatile (the peer may rewrite them).
                        let n = m.copy_to(&mut copy).unwrap_or(0);
                        assert!(n <= p.len());
                        msgs += 1;
                    }
                    Err(e) => rx_done = note(&e, &mut errors),
                }
                worst_call = worst_call.max(call.elapsed());
                assert!(call.elapsed() < BOUND, "a receive blocked");
            }
            if !tx_done {
                let call = Instant::now();
                let tx = c.sender().unwrap();
                message(rand(&mut seed) % 1000, 2000, &mut buf);
                let r = tx.reserve_timeout(buf.len(), wait(&mut seed));
                match r {
                    Ok(mut g) => {
                        let (a, b) = *tx_area.get_or_insert_with(|| data_area(g.as_ptr() as usize));
                        let at = g.as_ptr() as usize;
                        assert!(
                            at >= a + 8 && at + g.len() <= b,
                            "a grant outside the data area: {at:#x}+{} not in {a:#x}..{b:#x}",
                            g.len()
                        );
                        g.copy_from_slice(&buf);
                        g.commit(buf.len(), fnv32(&buf));
                        grants += 1;
                    }
                    Err(e) => tx_done = note(&e, &mut errors),
                }
                worst_call = worst_call.max(call.elapsed());
                assert!(call.elapsed() < BOUND, "a send blocked");
            }
        }
        drop(c);
        let st = child.wait().unwrap();
        assert!(st.success(), "the scribbler failed: {st:?}");
    }
    eprintln!(
        "scribbler: {rounds} connections in {:?}, {msgs} messages and {grants} grants \
         inside their data areas, slowest call {worst_call:?}, errors {errors:?}",
        started.elapsed()
    );
}
