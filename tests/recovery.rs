//! Recovery of a ring in memory the processes mapped themselves (a file in
//! /dev/shm here), between real processes: the test binary re-executes
//! itself (`child_entry`, ignored in normal runs) to play the producer or
//! the consumer, the parent SIGKILLs it mid-stream, and a successor
//! process takes the role over (`take_over_producer` /
//! `take_over_consumer` with `this_process` and `is_gone`).
//!
//! Checked: the survivor learns that its peer is gone (`is_gone` of the
//! recorded holder, while it was `false` before the kill); after a
//! producer's death every message it published arrives once, in order,
//! intact (sequence numbers and a pattern per message), and the
//! successor's stream follows; after a consumer's death the successor
//! receives from exactly the first message the dead one had not released,
//! to the end. `MEMTUBE_RECOVERY_ROUNDS` sets the rounds (default 4 each).

#![cfg(target_os = "linux")]

mod common;

use common::rand;

use memtube::ring::raw::{COMMITTED, LEN_SHIFT};
use memtube::ring::{
    attach_consumer_as, attach_producer_as, init, is_gone, region_size, take_over_consumer,
    take_over_producer, this_process, Config, Consumer, Error, Holder, NativeWait, Producer,
    RawRegion, RegionBuf,
};
use rustix::fd::OwnedFd;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Small, so that streams wrap often and a stalled consumer fills it.
const CAP: u32 = 4096;
const T: Duration = Duration::from_secs(20);
/// Messages the successor producer sends.
const SUCCESSOR_MESSAGES: u64 = 3000;

fn len() -> usize {
    region_size(CAP).unwrap().next_multiple_of(4096)
}

/// A shared file mapped in this process; unlinked by the test that made it.
struct Shm {
    ptr: *mut u8,
    _fd: OwnedFd,
}

impl Shm {
    fn create(path: &str) -> Shm {
        use rustix::fs::{ftruncate, open, Mode, OFlags};
        let fd = open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        ftruncate(&fd, len() as u64).unwrap();
        Shm::map(fd)
    }

    fn open(path: &str) -> Shm {
        use rustix::fs::{open, Mode, OFlags};
        Shm::map(open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).unwrap())
    }

    fn map(fd: OwnedFd) -> Shm {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        // SAFETY: a new shared mapping of the whole file; nothing else is
        // mapped at the address the kernel picks.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len(),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .unwrap();
        Shm {
            ptr: ptr.cast(),
            _fd: fd,
        }
    }

    fn raw(&self) -> RawRegion {
        RawRegion::new(self.ptr, len())
    }
}

// The mapping is never unmapped: a test's handles live as long as the
// process, and a forgotten one may never be dropped.

fn unique_path(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/dev/shm/memtube-recovery-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn rounds() -> u64 {
    common::env_u64("MEMTUBE_RECOVERY_ROUNDS", 4)
}

fn spawn(role: &str, path: &str, stdout: Stdio) -> Child {
    common::child_command(role, path)
        .stdout(stdout)
        .spawn()
        .expect("spawn child")
}

/// Message `seq` of generation `generation`: the sequence number, then
/// 0..300 bytes of a pattern of both, so a torn or mixed message shows.
fn message(generation: u32, seq: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    let n = (seq.wrapping_mul(0x9e37_79b9) >> 7) % 301;
    buf.extend((0..n).map(|k| (seq as u8) ^ (k as u8).wrapping_mul(13) ^ generation as u8));
}

/// Check a received message against `message(generation, want)`.
fn check(generation: u32, want: u64, type_id: u32, p: &[u8]) -> Result<(), String> {
    let mut expect = Vec::new();
    message(generation, want, &mut expect);
    if type_id != generation || p != expect.as_slice() {
        let got = p
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        return Err(format!(
            "expected message {want} of generation {generation}, got type {type_id}, \
             seq {got:?}, {} bytes",
            p.len()
        ));
    }
    Ok(())
}

#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    common::child_main(child);
}

fn child(role: &str, path: &str) -> Result<(), String> {
    let shm = Shm::open(path);
    let s = |e: Error| e.to_string();
    match role {
        // Sends generation 0 until killed, through every way of sending:
        // blocking sends, staged batches, grants committed in part.
        "producer" => {
            // SAFETY: the mapping stays for the life of the process.
            let mut tx: Producer<'static, NativeWait> = unsafe {
                attach_producer_as(shm.raw(), NativeWait::default(), this_process()).map_err(s)?
            };
            let mut buf = Vec::new();
            let mut seed = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
            for seq in 0.. {
                message(0, seq, &mut buf);
                match rand(&mut seed) % 4 {
                    0 => {
                        while tx.send_staged(&buf, 0) == Err(Error::Full) {
                            tx.wait_for_room(buf.len(), Some(T)).map_err(s)?;
                        }
                        if rand(&mut seed) % 4 == 0 {
                            tx.publish();
                        }
                    }
                    1 => {
                        let mut g = tx.reserve_timeout(buf.len() + 64, T).map_err(s)?;
                        g[..buf.len()].copy_from_slice(&buf);
                        g.commit(buf.len(), 0);
                    }
                    _ => tx.send_timeout(&buf, 0, T).map_err(s)?,
                }
            }
            Ok(())
        }
        // Takes the producer role over and sends generation 1, then closes.
        "successor-producer" => {
            // SAFETY: as above.
            let mut tx: Producer<'static, NativeWait> = unsafe {
                take_over_producer(shm.raw(), NativeWait::default(), this_process(), is_gone)
                    .map_err(s)?
            };
            let mut buf = Vec::new();
            for seq in 0..SUCCESSOR_MESSAGES {
                message(1, seq, &mut buf);
                tx.send_timeout(&buf, 1, T).map_err(s)?;
            }
            Ok(())
        }
        // Receives generation 0 until killed.
        "consumer" => {
            // SAFETY: as above.
            let mut rx: Consumer<'static, NativeWait> = unsafe {
                attach_consumer_as(shm.raw(), NativeWait::default(), this_process()).map_err(s)?
            };
            for seq in 0.. {
                let m = rx.recv_timeout(T).map_err(s)?;
                check(0, seq, m.type_id(), m.payload())?;
            }
            Ok(())
        }
        // Takes the consumer role over, receives to the end, and prints the
        // first and last sequence numbers.
        "successor-consumer" => {
            // SAFETY: as above.
            let mut rx: Consumer<'static, NativeWait> = unsafe {
                take_over_consumer(shm.raw(), NativeWait::default(), this_process(), is_gone)
                    .map_err(s)?
            };
            let mut first = None;
            let mut next = 0;
            loop {
                let m = match rx.recv_timeout(T) {
                    Ok(m) => m,
                    Err(Error::Closed) => break,
                    Err(e) => return Err(e.to_string()),
                };
                let seq = u64::from_le_bytes(m.payload()[..8].try_into().unwrap());
                let want = *first.get_or_insert(seq) + next;
                check(0, want, m.type_id(), m.payload())?;
                next += 1;
            }
            let first = first.ok_or("nothing received")?;
            println!("first={first} last={}", first + next - 1);
            Ok(())
        }
        other => Err(format!("unknown role {other}")),
    }
}

/// Whether this process reads its own start time as other processes read
/// it, which process holders rely on. Every Linux kernel does; qemu-user
/// (the aarch64 step of CI) does not: it answers `/proc/self/stat` (and
/// `/proc/<own pid>/stat`) itself with a start time of its own making
/// (linux-user/syscall.c `open_self_stat`), so a running child's recorded
/// holder never matches what its parent reads and the child looks gone.
/// Probed by a host `cat` of this process's stat; on native x86_64 it is not
/// even consulted.
fn own_start_time_is_real() -> bool {
    if cfg!(target_arch = "x86_64") {
        return true;
    }
    let start = |stat: &[u8]| -> Option<String> {
        let close = stat.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
        rest.split_ascii_whitespace().nth(19).map(str::to_owned)
    };
    let own = std::fs::read("/proc/self/stat").ok();
    let seen = Command::new("cat")
        .arg(format!("/proc/{}/stat", std::process::id()))
        .output()
        .ok()
        .map(|o| o.stdout);
    let real = own.as_deref().and_then(start) == seen.as_deref().and_then(start);
    if !real {
        eprintln!(
            "note: skipped: /proc/self/stat is emulated here (qemu-user), so process \
             holders cannot be checked"
        );
    }
    real
}

/// Which of the first `n` messages of a stream (`message`, no line
/// padding, no early wrap) starts at ring position `pos`: a record that
/// does not fit before the end of the data area follows an end pad.
fn message_at(pos: u32, n: u64) -> Option<u64> {
    let mut buf = Vec::new();
    let mut at = 0u32;
    for seq in 0..=n {
        if at == pos {
            return Some(seq);
        }
        message(0, seq, &mut buf);
        let rec = 8 + (buf.len() as u32).next_multiple_of(8);
        let room = CAP - at % CAP;
        if rec > room {
            at = at.wrapping_add(room);
            if at == pos {
                return Some(seq);
            }
        }
        at = at.wrapping_add(rec);
    }
    None
}

/// The producer dies mid-stream (sending, blocked on a full ring, or
/// between the halves of a staged batch); the consumer drains what it
/// published, learns that it is gone, and a successor carries on.
#[test]
fn a_dead_producer_is_replaced_and_nothing_published_is_lost() {
    if !own_start_time_is_real() {
        return;
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    for round in 0..rounds() {
        let path = unique_path("p");
        let shm = Shm::create(&path);
        // SAFETY: the mapping stays for the life of the process; the ring
        // in it is used only through these handles.
        let mut rx: Consumer<'static, NativeWait> = unsafe {
            init(shm.raw(), Config::new(CAP)).unwrap();
            attach_consumer_as(shm.raw(), NativeWait::default(), this_process()).unwrap()
        };
        let mut child = spawn("producer", &path, Stdio::null());
        let kill_at = 1 + rand(&mut seed) % 5000;
        let mut next = 0u64;
        while next < kill_at {
            let m = rx.recv_timeout(T).unwrap();
            check(0, next, m.type_id(), m.payload()).unwrap();
            next += 1;
        }
        let holder = rx.producer_holder().expect("the producer recorded itself");
        assert!(!is_gone(holder), "a running producer is not gone");
        if rand(&mut seed) % 2 == 0 {
            // Let the ring fill: the producer dies blocked.
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(9));
        let killed_at = next;
        // Everything it published arrives, in order, then nothing.
        let end = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => {
                    check(0, next, m.type_id(), m.payload()).unwrap();
                    next += 1;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(end, Error::Timeout);
        assert!(is_gone(holder), "a killed producer is gone");
        let mut successor = spawn("successor-producer", &path, Stdio::null());
        // Its stream follows, then its close.
        let started = Instant::now();
        for seq in 0..SUCCESSOR_MESSAGES {
            let m = rx.recv_timeout(T).unwrap();
            check(1, seq, m.type_id(), m.payload()).unwrap();
        }
        assert_eq!(rx.recv_timeout(T).err(), Some(Error::Closed));
        assert!(successor.wait().unwrap().success());
        assert_ne!(rx.producer_holder(), Some(holder));
        // A closed role is not taken over: the stream has ended.
        // SAFETY: as above.
        let again = unsafe {
            take_over_producer::<NativeWait>(
                shm.raw(),
                NativeWait::default(),
                this_process(),
                is_gone,
            )
        };
        assert_eq!(again.err(), Some(Error::Closed));
        eprintln!(
            "round {round}: killed after {killed_at} received, {} more drained, successor's {SUCCESSOR_MESSAGES} in {:?}",
            next - killed_at,
            started.elapsed()
        );
        drop(rx);
        std::fs::remove_file(&path).unwrap();
    }
}

/// The consumer dies mid-stream; the producer learns that it is gone, and
/// a successor receives from the first message the dead one had not
/// released, to the end.
#[test]
fn a_dead_consumer_is_replaced_from_its_released_position() {
    if !own_start_time_is_real() {
        return;
    }
    let mut seed = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    for round in 0..rounds() {
        let path = unique_path("c");
        let shm = Shm::create(&path);
        // SAFETY: as in the producer test.
        let mut tx: Producer<'static, NativeWait> = unsafe {
            init(shm.raw(), Config::new(CAP)).unwrap();
            attach_producer_as(shm.raw(), NativeWait::default(), this_process()).unwrap()
        };
        let mut child = spawn("consumer", &path, Stdio::null());
        let kill_at = 1 + rand(&mut seed) % 5000;
        let mut buf = Vec::new();
        let mut seq = 0u64;
        while seq < kill_at {
            message(0, seq, &mut buf);
            tx.send_timeout(&buf, 0, T).unwrap();
            seq += 1;
        }
        if let Some(h) = tx.consumer_holder() {
            assert!(!is_gone(h), "a running consumer is not gone");
        }
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(9));
        let holder = tx.consumer_holder();
        assert!(holder.is_none_or(is_gone), "a killed consumer is gone");
        // Fill the ring while nobody reads.
        loop {
            message(0, seq, &mut buf);
            match tx.send_timeout(&buf, 0, Duration::from_millis(50)) {
                Ok(()) => seq += 1,
                Err(Error::Timeout) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // The first message the dead consumer had not released: the one
        // that starts at its released position (consumer block, offset
        // 384). The released-message counter agrees, unless the kill fell
        // between the two stores (then it lags).
        let at = word(shm.ptr as usize, 384).load(Ordering::Acquire);
        let released = message_at(at, seq).expect("the released position is a message's start");
        let counted = tx.stats().messages_released;
        assert!(
            counted <= released,
            "{counted} counted, {released} released"
        );
        let mut successor = spawn("successor-consumer", &path, Stdio::piped());
        let total = seq + 3000;
        while seq < total {
            message(0, seq, &mut buf);
            tx.send_timeout(&buf, 0, T).unwrap();
            seq += 1;
        }
        assert_ne!(tx.consumer_holder(), holder);
        drop(tx);
        let mut out = String::new();
        successor
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(successor.wait().unwrap().success(), "successor: {out}");
        let report = out.lines().find(|l| l.starts_with("first="));
        assert_eq!(
            report,
            Some(format!("first={released} last={}", total - 1).as_str()),
            "round {round}: the successor starts at the first unreleased message"
        );
        eprintln!("round {round}: killed after {kill_at} sent, successor from {released}");
        std::fs::remove_file(&path).unwrap();
    }
}

// ------------------------------------------- wake-ups a dead holder owed

/// A 256-byte ring on the heap for the rest of the process (the handles
/// here are moved into threads or forgotten), both roles attached with
/// holders 1 and 2; returns the raw region and its base address.
fn leaked_ring() -> (
    RawRegion,
    usize,
    Producer<'static, NativeWait>,
    Consumer<'static, NativeWait>,
) {
    let buf: &'static mut RegionBuf<{ region_size(256).unwrap() }> = Box::leak(Box::default());
    let raw = RawRegion::new(buf.0.as_mut_ptr(), buf.0.len());
    // SAFETY: leaked, so valid for the life of the process; used only
    // through the handles, and by the tests' pokes of what a dead holder
    // would have written.
    unsafe {
        init(raw, Config::new(256)).unwrap();
        let p = attach_producer_as(raw, NativeWait::default(), Holder::new(1).unwrap()).unwrap();
        let c = attach_consumer_as(raw, NativeWait::default(), Holder::new(2).unwrap()).unwrap();
        (raw, buf.0.as_ptr() as usize, p, c)
    }
}

/// The `u32` at byte `off` of the region (4-aligned, inside it).
fn word(base: usize, off: usize) -> &'static std::sync::atomic::AtomicU32 {
    // SAFETY: the region is leaked or a mapping never unmapped (valid
    // forever), 128-aligned, `off` is 4-aligned and in bounds; every access
    // to these words is atomic.
    unsafe { std::sync::atomic::AtomicU32::from_ptr((base + off) as *mut u32) }
}

/// Wait until the word at `off` is not 0 (a side announced sleep).
fn until_nonzero(base: usize, off: usize) {
    let start = Instant::now();
    while word(base, off).load(Ordering::Acquire) == 0 {
        assert!(start.elapsed() < T, "no sleep announced at {off}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A consumer dies after storing a release and before the wake-up check
/// it owed the producer, which sleeps for room: its successor wakes it.
/// (Before the successor made that wake itself, the producer slept out its
/// whole timeout.)
#[test]
fn a_consumer_successor_makes_the_wake_up_its_predecessor_owed() {
    let (raw, base, mut p, mut c) = leaked_ring();
    c.set_release_threshold(256);
    let mut n = 0u8;
    while p.try_send(&[n; 24], u32::from(n)).is_ok() {
        n += 1;
    }
    assert_eq!(n, 7, "32-byte records: 7 fit in 256 bytes");
    for i in 0..6u8 {
        assert_eq!(c.try_recv().unwrap().payload(), &[i; 24]);
    }
    std::mem::forget(c);
    p.set_spin_budget(0);
    let producer = std::thread::spawn(move || {
        let started = Instant::now();
        let r = p.send_timeout(&[9; 24], 9, Duration::from_secs(10));
        (r, started.elapsed())
    });
    // The producer sleeps for room (its `sleeping` word, offset 260).
    until_nonzero(base, 260);
    // The dead consumer's last act: its release of 6 records stored
    // (consumer block at 384), the wake-up check not made.
    word(base, 384).store(6 * 32, Ordering::Release);
    // SAFETY: as in `leaked_ring`; holder 2 is the forgotten consumer.
    let mut c = unsafe {
        take_over_consumer(raw, NativeWait::default(), Holder::new(3).unwrap(), |h| {
            h.get() == 2
        })
    }
    .unwrap();
    let (r, waited) = producer.join().unwrap();
    assert_eq!(r, Ok(()));
    assert!(
        waited < Duration::from_secs(3),
        "the producer slept {waited:?}"
    );
    assert_eq!(c.try_recv().unwrap().payload(), &[6; 24]);
    assert_eq!(c.try_recv().unwrap().payload(), &[9; 24]);
}

/// A producer dies after publishing a message and before waking the
/// consumer, which sleeps for it: its successor wakes it.
#[test]
fn a_producer_successor_makes_the_wake_up_its_predecessor_owed() {
    let (raw, base, p, mut c) = leaked_ring();
    c.set_spin_budget(0);
    let consumer = std::thread::spawn(move || {
        let started = Instant::now();
        let r = c
            .recv_timeout(Duration::from_secs(10))
            .map(|m| m.payload().to_vec());
        (r, started.elapsed())
    });
    // The consumer sleeps for a message (its `sleeping` word, 384 + 132).
    until_nonzero(base, 516);
    // The dead producer's last act: a message published at offset 0 of
    // the data area (640): payload and type id, then its header with
    // Release (the next header is still zero from `init`); no wake.
    // SAFETY: the record's bytes are in the data area, which nobody else
    // writes (the consumer waits at offset 0, reading only its header).
    unsafe {
        std::ptr::copy_nonoverlapping(b"recover!".as_ptr(), (base + 648) as *mut u8, 8);
    }
    word(base, 644).store(5, Ordering::Relaxed);
    word(base, 640).store(COMMITTED | (8 << LEN_SHIFT), Ordering::Release);
    std::mem::forget(p);
    // SAFETY: as in `leaked_ring`; holder 1 is the forgotten producer.
    let mut p = unsafe {
        take_over_producer(raw, NativeWait::default(), Holder::new(3).unwrap(), |h| {
            h.get() == 1
        })
    }
    .unwrap();
    let (r, waited) = consumer.join().unwrap();
    assert_eq!(r.unwrap(), b"recover!");
    assert!(
        waited < Duration::from_secs(3),
        "the consumer slept {waited:?}"
    );
    // The successor goes on after the record it found.
    p.try_send(b"next", 6).unwrap();
}
