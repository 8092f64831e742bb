//! `memtube stat --json`, `top` and `ping` against real processes: this
//! test binary re-executes itself (its ignored `child_entry` test) to play
//! the services, told its role and address through the environment.

#![cfg(target_os = "linux")]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "MEMTUBE_CLI_TEST_ROLE";
const ADDR: &str = "MEMTUBE_CLI_TEST_ADDR";
const BIN: &str = env!("CARGO_BIN_EXE_memtube");

/// Messages the streaming sender sends at once (100 bytes each), before it
/// goes on at [`RATE`] messages of 50 bytes per second.
const BURST: u64 = 1000;
const RATE: u64 = 500;

fn unique_addr(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@memtube-cli-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A child process, killed and reaped when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Peer {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// Start this binary as `role` at `addr` and wait for it to print `READY`.
fn spawn(role: &str, addr: &str) -> Peer {
    spawn_ready(role, addr).0
}

/// [`spawn`], and the `READY` line.
fn spawn_ready(role: &str, addr: &str) -> (Peer, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(ADDR, addr)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let peer = Peer(child);
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "{role} exited before it was ready");
        if line.starts_with("READY") {
            break;
        }
    }
    // Keep the pipe open (drained in the background) so the child's
    // later prints never fail.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (peer, line)
}

/// Run the memtube binary with `args`; kill it and fail if it has not
/// ended within `limit`.
fn run_within(args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("memtube {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "the peer processes' entry point, run by the tests themselves"]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let addr = std::env::var(ADDR).unwrap_or_default();
    if let Err(e) = child(&role, &addr) {
        eprintln!("child {role}: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn child(role: &str, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    use memtube::{connect, listen, Options};
    let ready = || {
        println!("READY");
    };
    match role {
        // Receives everything, as fast as it comes.
        "stream-listener" => {
            let l = listen(addr, &Options::new())?;
            ready();
            let mut conn = l.accept()?;
            let rx = conn.receiver()?;
            loop {
                match rx.recv() {
                    Ok(_) => {}
                    Err(memtube::Error::Closed) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // BURST messages of 100 bytes, then RATE of 50 bytes a second.
        "stream-sender" => {
            let mut conn = connect(addr, &Options::new())?;
            let tx = conn.sender()?;
            for _ in 0..BURST {
                tx.send(&[7; 100], 1)?;
            }
            ready();
            let start = Instant::now();
            let mut sent = 0u64;
            loop {
                let due = start.elapsed().as_millis() as u64 * RATE / 1000;
                while sent < due {
                    tx.send(&[8; 50], 2)?;
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Accepts and never reads.
        "full-listener" => {
            let l = listen(addr, &Options::new().capacity(4096))?;
            ready();
            let _conn = l.accept()?;
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Fills the ring, then blocks in send.
        "full-sender" => {
            let mut conn = connect(addr, &Options::new())?;
            let tx = conn.sender()?;
            while tx.try_send(&[9; 100], 3).is_ok() {}
            ready();
            loop {
                match tx.send_timeout(&[9; 100], 3, Duration::from_millis(200)) {
                    Ok(()) => return Err("the ring took a message: the reader reads?".into()),
                    Err(memtube::Error::Timeout) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Fills the ring with one-byte messages (16 bytes each in the ring,
        // 9 by the lower bound of the fill), then blocks in ONE send.
        "full-sender-once" => {
            let mut conn = connect(addr, &Options::new())?;
            let tx = conn.sender()?;
            while tx.try_send(&[1], 3).is_ok() {}
            ready();
            tx.send(&[1], 3)?;
            Err("the ring took a message: the reader reads?".into())
        }
        // A duplex service with readiness descriptors and rings larger than
        // a connector accepts by default.
        "server-ready-big" => {
            let opts = Options::new()
                .duplex(true)
                .readiness(true)
                .capacity(128 << 20);
            let l = listen(addr, &opts)?;
            ready();
            loop {
                // ping's first try, without readiness, is refused: a
                // server goes on accepting (Listener::accept's docs).
                let Ok(mut conn) = l.accept() else { continue };
                conn.serve(|ty, _, _| ty)?;
            }
        }
        // Listens and never accepts.
        "deaf-listener" => {
            let _l = listen(addr, &Options::new().duplex(true))?;
            ready();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "ring-core-blocked" => ring_core_blocked(),
        "hostile-swap" => hostile_swap(),
        "hostile-huge" => hostile_huge(),
        // A duplex service; type 1 answers how many requests its handler saw.
        "server" | "server-shared" => {
            // server-shared: without isolation (one region per ring, both
            // sides write it).
            let opts = Options::new().duplex(true).isolation(role == "server");
            let l = listen(addr, &opts)?;
            ready();
            let mut seen = 0u64;
            loop {
                let mut conn = l.accept()?;
                conn.serve(|ty, _body, reply| {
                    seen += 1;
                    if ty == 1 {
                        reply.extend_from_slice(&seen.to_le_bytes());
                    }
                    ty
                })?;
            }
        }
        "hostile" => hostile(),
        other => Err(format!("unknown role {other}").into()),
    }
}

/// The regions of a hostile (or broken) process, all named like memtube's.
fn hostile() -> Result<(), Box<dyn std::error::Error>> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let make = |name: &std::ffi::CStr, bytes: &[u8], seal: bool| -> std::io::Result<_> {
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        rustix::fs::ftruncate(&fd, bytes.len() as u64)?;
        rustix::io::write(&fd, bytes)?;
        if seal {
            rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)?;
        }
        // SAFETY: a fresh shared mapping at an address the kernel picks;
        // never unmapped (the process sleeps until killed).
        unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                bytes.len(),
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )?;
        }
        Ok(fd)
    };
    let header = |capacity: u32| {
        let mut h = vec![0u8; 8192];
        h[..8].copy_from_slice(b"MEMTUBE1");
        h[8..12].copy_from_slice(&3u32.to_ne_bytes());
        h[16..20].copy_from_slice(&capacity.to_ne_bytes());
        h[20..24].copy_from_slice(&(capacity / 2 - 8).to_ne_bytes());
        h[24..28].copy_from_slice(&640u32.to_ne_bytes());
        h[28..32].copy_from_slice(&384u32.to_ne_bytes());
        h
    };
    let mut garbage = vec![0u8; 8192];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut garbage {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let _keep = [
        // Garbage: bad magic.
        make(c"memtube-ring", &garbage, true)?,
        // A header whose capacity the file is far too small for.
        make(c"memtube-ring", &header(1 << 30), true)?,
        // A valid header, but the file may shrink under a mapping.
        make(c"memtube-ring", &header(4096), false)?,
        // A consumer block with no ring.
        make(c"memtube-consumer", &garbage[..4096], true)?,
        // Too small for any ring.
        make(c"memtube-ring", &garbage[..64], true)?,
    ];
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A ring of ring-core's own (as a binding or an application over its own
/// region makes one), in a memfd named `memtube-ring`: filled with one-byte
/// messages, then the producer blocks in ONE `Producer::send`, which counts
/// one full event however long it waits (memtube's `Sender::send` waits in
/// slices and counts one per slice).
fn ring_core_blocked() -> Result<(), Box<dyn std::error::Error>> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let cap = 4096;
    let len = memtube_ring::region_size(cap).ok_or("region size")?;
    let fd = rustix::fs::memfd_create(c"memtube-ring", MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)?;
    // SAFETY: a fresh shared mapping at an address the kernel picks, never
    // unmapped (the process runs until killed); only this slice uses it.
    let region = unsafe {
        let p = rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &fd,
            0,
        )?;
        std::slice::from_raw_parts_mut(p.cast::<u8>(), len)
    };
    let (mut tx, _rx) = memtube_ring::split(
        region,
        memtube_ring::Config::new(cap),
        memtube_ring::SpinWait::std(),
    )?;
    while tx.try_send(&[1], 3).is_ok() {}
    println!("READY");
    tx.send(&[1], 3)?;
    Err("the ring took a message: the reader reads?".into())
}

/// A descriptor that is a memfd named `memtube-ring` one moment and a FIFO
/// with no writer the next (dup2 in a loop): a monitor that opens what it
/// listed without pinning it first blocks in `open` forever.
fn hostile_swap() -> Result<(), Box<dyn std::error::Error>> {
    use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
    let mem = rustix::fs::memfd_create(c"memtube-ring", MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&mem, 8192)?;
    rustix::fs::fcntl_add_seals(&mem, SealFlags::SHRINK | SealFlags::GROW)?;
    let dir = std::env::temp_dir().join(format!("memtube-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &dir,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )?;
    // The read end, without a writer (a reader's open then blocks).
    let fifo = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
    let _ = std::fs::remove_file(&dir);
    let mut slot = rustix::io::dup(&mem)?;
    println!("READY");
    loop {
        rustix::io::dup2(&mem, &mut slot)?;
        std::thread::yield_now();
        rustix::io::dup2(&fifo, &mut slot)?;
        std::thread::yield_now();
    }
}

/// A sealed huge page memfd named `memtube-ring`, held open (not mapped:
/// no huge page need be reserved). Prints `READY none` if the kernel makes
/// no such memfd.
fn hostile_huge() -> Result<(), Box<dyn std::error::Error>> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let made = (|| -> std::io::Result<_> {
        let fd = rustix::fs::memfd_create(
            c"memtube-ring",
            MemfdFlags::HUGETLB | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&fd, 2 << 20)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)?;
        Ok(fd)
    })();
    match &made {
        Ok(_) => println!("READY"),
        Err(e) => println!("READY none: {e}"),
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `memtube stat --json ARGS`, parsed.
fn stat(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("stat")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "memtube stat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The rings of `doc` whose producer or consumer is `pid`.
fn rings_of(doc: &Value, pid: u32) -> Vec<Value> {
    doc["rings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mapped_by"].as_array().unwrap().iter().any(|p| p == pid))
        .cloned()
        .collect()
}

#[test]
fn stat_counts_rates_and_roles_of_a_stream() {
    let addr = unique_addr("stream");
    let listener = spawn("stream-listener", &addr);
    let sender = spawn("stream-sender", &addr);
    // Counters only.
    let doc = stat(&["--pid", &sender.pid().to_string(), "--interval", "0"]);
    let rings = rings_of(&doc, sender.pid());
    assert_eq!(rings.len(), 1, "{doc:#}");
    let r = &rings[0];
    assert_eq!(r["producer"]["pid"], sender.pid(), "{r:#}");
    assert_eq!(r["consumer"]["pid"], listener.pid(), "{r:#}");
    assert_eq!(r["roles_from"], "holder");
    assert_eq!(r["producer"]["state"], "attached");
    assert_eq!(r["consumer"]["state"], "attached");
    assert_eq!(r["producer"]["uid"], r["consumer"]["uid"]);
    assert_eq!(r["capacity"], 65536);
    assert!(r["rates"].is_null() && r["stuck"].is_null());
    assert_eq!(doc["schema"], 1);
    assert_eq!(r["holders_trusted"], true);
    let n = r["messages_committed"].as_u64().unwrap();
    assert!(n >= BURST, "{r:#}");
    // Every message is one of the burst's 100 bytes or the paced 50.
    assert_eq!(
        r["bytes_committed"].as_u64().unwrap(),
        BURST * 100 + (n - BURST) * 50,
        "{r:#}"
    );
    assert!(r["messages_released"].as_u64().unwrap() <= n);

    // Rates over half a second, through the listener's address.
    let doc = stat(&["--addr", &addr, "--interval", "500"]);
    let rings = rings_of(&doc, sender.pid());
    assert_eq!(rings.len(), 1, "{doc:#}");
    let r = &rings[0];
    let rate = r["rates"]["messages_per_s"].as_f64().unwrap();
    assert!(
        (RATE as f64 / 3.0..RATE as f64 * 2.0).contains(&rate),
        "{rate} messages/s, {RATE} sent: {r:#}"
    );
    let bytes = r["rates"]["bytes_per_s"].as_f64().unwrap();
    assert!((bytes - rate * 50.0).abs() < 1.0, "{r:#}");
    assert_eq!(r["stuck"], false, "{r:#}");
    assert!(r["fill"].as_f64().unwrap() < 0.5, "{r:#}");
}

#[test]
fn stat_flags_a_stuck_ring() {
    let addr = unique_addr("full");
    let listener = spawn("full-listener", &addr);
    let sender = spawn("full-sender", &addr);
    let doc = stat(&["--pid", &listener.pid().to_string(), "--interval", "600"]);
    let rings = rings_of(&doc, listener.pid());
    assert_eq!(rings.len(), 1, "{doc:#}");
    let r = &rings[0];
    assert_eq!(r["producer"]["pid"], sender.pid(), "{r:#}");
    assert_eq!(r["capacity"], 4096);
    assert_eq!(r["messages_released"], 0, "{r:#}");
    assert!(r["full_events"].as_u64().unwrap() > 0, "{r:#}");
    assert!(r["fill"].as_f64().unwrap() >= 0.9, "{r:#}");
    assert_eq!(r["stuck"], true, "{r:#}");
}

#[test]
fn stat_flags_a_producer_blocked_in_one_send() {
    let addr = unique_addr("full-once");
    let listener = spawn("full-listener", &addr);
    let sender = spawn("full-sender-once", &addr);
    // Let the sender enter its send (its one full event) before the
    // interval starts.
    std::thread::sleep(Duration::from_millis(300));
    let doc = stat(&["--pid", &sender.pid().to_string(), "--interval", "600"]);
    let rings = rings_of(&doc, listener.pid());
    assert_eq!(rings.len(), 1, "{doc:#}");
    let r = &rings[0];
    assert_eq!(r["producer"]["pid"], sender.pid(), "{r:#}");
    assert_eq!(r["messages_released"], 0, "{r:#}");
    // The lower bound of the fill is far from full (9 of the 16 bytes each
    // one-byte message takes), the upper bound is not.
    assert_eq!(r["stuck"], true, "{r:#}");
    assert!(r["fill"].as_f64().unwrap() < 0.6, "{r:#}");
    assert!(r["fill_max"].as_f64().unwrap() >= 0.9, "{r:#}");
}

#[test]
fn stat_flags_a_ring_core_producer_blocked_in_one_send() {
    let p = spawn("ring-core-blocked", "");
    std::thread::sleep(Duration::from_millis(300));
    let doc = stat(&["--pid", &p.pid().to_string(), "--interval", "600"]);
    let rings = rings_of(&doc, p.pid());
    assert_eq!(rings.len(), 1, "{doc:#}");
    let r = &rings[0];
    assert_eq!(r["messages_released"], 0, "{r:#}");
    assert_eq!(r["rates"]["full_per_s"], 0.0, "{r:#}");
    assert_eq!(r["stuck"], true, "{r:#}");
    assert!(r["fill"].as_f64().unwrap() < 0.6, "{r:#}");
}

#[test]
fn a_descriptor_swapped_for_a_fifo_does_not_block_the_monitor() {
    let h = spawn("hostile-swap", "");
    let pid = h.pid().to_string();
    for _ in 0..100 {
        let out = run_within(
            &["stat", "--json", "--pid", &pid, "--interval", "0"],
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "{out:?}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["rings"].as_array().unwrap().len(), 0, "{doc:#}");
    }
}

#[test]
fn huge_page_regions_are_skipped() {
    let (h, line) = spawn_ready("hostile-huge", "");
    if line.starts_with("READY none") {
        eprintln!("skipped: no huge page memfds here ({})", line.trim_end());
        return;
    }
    let doc = stat(&["--pid", &h.pid().to_string(), "--interval", "0"]);
    let skipped = doc["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{doc:#}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("huge pages: not monitored"),
        "{doc:#}"
    );
}

#[test]
fn stat_fails_on_a_process_that_does_not_exist() {
    // Above the largest pid_max (2^22).
    let out = run_within(
        &["stat", "--json", "--pid", "4194305", "--interval", "0"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no process 4194305"), "{err}");
}

#[test]
fn hostile_regions_are_skipped_with_a_reason() {
    let h = spawn("hostile", "");
    let doc = stat(&["--pid", &h.pid().to_string(), "--interval", "100"]);
    assert_eq!(doc["rings"].as_array().unwrap().len(), 0, "{doc:#}");
    let reasons: Vec<String> = doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["pids"], serde_json::json!([h.pid()]), "{s:#}");
            s["reason"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 5, "{doc:#}");
    for want in [
        "does not hold an initialized memtube ring",
        "is smaller than the",
        "not sealed against shrinking",
        "consumer block whose ring was not found",
        "not a region",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "no reason mentions {want:?}: {reasons:#?}"
        );
    }
}

#[test]
fn ping_is_answered_without_the_handler() {
    let addr = unique_addr("ping");
    let _server = spawn("server", &addr);
    let out = Command::new(BIN)
        .args(["ping", &addr, "-c", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 pings: min"), "{text}");
    // The handler has seen exactly one request: this one.
    let mut conn = memtube::connect(addr.as_str(), &memtube::Options::new().duplex(true)).unwrap();
    let reply = conn.call_timeout(1, b"", Duration::from_secs(10)).unwrap();
    assert_eq!(reply.payload(), &1u64.to_le_bytes());
}

#[test]
fn stat_tells_the_two_rings_of_duplex_connections_apart() {
    let me = std::process::id();
    for (role, isolated) in [("server", true), ("server-shared", false)] {
        let addr = unique_addr(role);
        let server = spawn(role, &addr);
        let opts = memtube::Options::new().duplex(true);
        let _conn = memtube::connect(addr.as_str(), &opts).unwrap();
        // The server attaches its ends after the handshake we got: wait
        // until both rings have both ends.
        let deadline = Instant::now() + Duration::from_secs(10);
        let doc = loop {
            let doc = stat(&["--addr", &addr, "--interval", "0"]);
            let attached = rings_of(&doc, server.pid()).iter().all(|r| {
                r["producer"]["state"] == "attached" && r["consumer"]["state"] == "attached"
            });
            if attached || Instant::now() > deadline {
                break doc;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let rings = rings_of(&doc, server.pid());
        assert_eq!(rings.len(), 2, "{doc:#}");
        let mut ends = Vec::new();
        for r in &rings {
            assert_eq!(r["isolation"], isolated, "{r:#}");
            assert_eq!(r["consumer_block_paired_by_guess"], false, "{r:#}");
            assert_eq!(r["roles_from"], "holder", "{r:#}");
            assert_eq!(
                r["mapped_by"],
                serde_json::json!([me.min(server.pid()), me.max(server.pid())])
            );
            ends.push((
                r["producer"]["pid"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{doc:#}")),
                r["consumer"]["pid"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{doc:#}")),
            ));
        }
        ends.sort();
        let (a, b) = (
            u64::from(me.min(server.pid())),
            u64::from(me.max(server.pid())),
        );
        assert_eq!(ends, [(a, b), (b, a)], "{doc:#}");
    }
}

#[test]
fn ping_a_listener_with_readiness_and_large_rings() {
    let addr = unique_addr("ping-ready");
    let _server = spawn("server-ready-big", &addr);
    let out = run_within(&["ping", &addr, "-c", "2"], Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 pings: min"), "{text}");
}

#[test]
fn ping_timeout_bounds_the_handshake() {
    let addr = unique_addr("deaf");
    let _l = spawn("deaf-listener", &addr);
    let t0 = Instant::now();
    let out = run_within(
        &["ping", &addr, "--timeout", "300"],
        Duration::from_secs(20),
    );
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The default handshake timeout is 5 s.
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no handshake within"), "{err}");
}

#[test]
fn ping_reports_a_one_way_listener() {
    let addr = unique_addr("oneway");
    let _l = spawn("full-listener", &addr);
    let out = Command::new(BIN).args(["ping", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only a duplex service"), "{err}");
}

/// A detached tmux session of 120x40 running one command, killed on drop.
struct Tmux(String);

impl Tmux {
    /// Start `cmd` in a session named `name`; `None` (the test skipped)
    /// when tmux is missing, which fails under CI (.ci/run installs it).
    fn start(name: &str, cmd: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is missing, and CI requires this test (.ci/run installs it)"
            );
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let session = format!("{name}-{}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "120",
                "-y",
                "40",
                cmd,
            ])
            .status()
            .unwrap();
        assert!(ok.success());
        Some(Tmux(session))
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// tmux with this session as the target: `tmux ARG -t SESSION REST`.
    fn run(&self, arg: &str, rest: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg(arg)
            .args(["-t", &self.0])
            .args(rest)
            .output()
            .unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Quiet: the session may have ended with its command already.
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn top_under_tmux_shows_the_rings() {
    let a = unique_addr("top-stream");
    let listener = spawn("stream-listener", &a);
    let sender = spawn("stream-sender", &a);
    let b = unique_addr("top-full");
    let full_l = spawn("full-listener", &b);
    let full_s = spawn("full-sender", &b);
    // Everything this user runs (the four pids are looked for).
    let Some(tmux) = Tmux::start("memtube-cli-test", &format!("{BIN} top --interval 500")) else {
        return;
    };
    // Wait for a screen with rates for both rings (a few refreshes).
    let deadline = Instant::now() + Duration::from_secs(20);
    let screen = loop {
        std::thread::sleep(Duration::from_millis(700));
        let screen = tmux.screen();
        let done = [listener.pid(), sender.pid(), full_l.pid(), full_s.pid()]
            .iter()
            .all(|p| screen.contains(&p.to_string()))
            && screen.contains("STUCK")
            && screen.contains("attached/attached");
        if done || Instant::now() > deadline {
            break screen;
        }
    };
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("monitor-top.txt");
    std::fs::write(&target, &screen).unwrap();
    assert!(screen.contains("memtube top"), "{screen}");
    for p in [listener.pid(), sender.pid(), full_l.pid(), full_s.pid()] {
        assert!(
            screen.contains(&p.to_string()),
            "pid {p} not shown:\n{screen}"
        );
    }
    assert!(screen.contains("attached/attached"), "{screen}");
    // The full pair's row is flagged.
    let stuck_row = screen
        .lines()
        .find(|l| l.contains("STUCK") && l.contains(&full_s.pid().to_string()))
        .unwrap_or_else(|| panic!("no STUCK row for the full pair:\n{screen}"));
    assert!(stuck_row.contains(&full_l.pid().to_string()), "{screen}");
    // q quits.
    tmux.run("send-keys", &["q"]);
    eprintln!("{screen}\n(saved to {})", target.display());
}

#[test]
fn top_restores_the_terminal_on_sigterm() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = dir.join(format!("monitor-stty-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&out);
    // top, then (after it ends) the terminal's modes, as the shell sees them.
    let cmd = format!(
        "{BIN} top --interval 200; echo \"exit $?\" > {o}.tmp; stty -a >> {o}.tmp; mv {o}.tmp {o}; sleep 30",
        o = out.display()
    );
    let Some(tmux) = Tmux::start("memtube-cli-sigterm", &cmd) else {
        return;
    };
    let shell =
        String::from_utf8(tmux.run("display-message", &["-p", "#{pane_pid}"]).stdout).unwrap();
    let shell = shell.trim();
    // top: the shell's child, once it has drawn (raw mode is on by then).
    let deadline = Instant::now() + Duration::from_secs(20);
    let top = loop {
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        if tmux.screen().contains("memtube top") {
            if let Some(p) = children.split_whitespace().next() {
                break p.to_string();
            }
        }
        assert!(Instant::now() < deadline, "top did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    let ok = Command::new("kill").args(["-TERM", &top]).status().unwrap();
    assert!(ok.success());
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&out) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the shell did not go on after top"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&out);
    // 128 + SIGTERM, and the terminal back in canonical mode with echo
    // (raw mode turns both off).
    assert!(text.starts_with("exit 143"), "{text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig"] {
        assert!(words.contains(&mode), "{mode} is off after top: {text}");
    }
}
