//! The poll set: many connections, one wait. Threads play clients where the
//! protocol is the point; child processes where a death must be seen.
#![cfg(any(target_os = "linux", target_os = "macos"))]

mod common;

use memtube::{
    connect, listen, Connection, Error, Event, Events, Interest, Options, PollSet, Receiver,
};
use std::process::Stdio;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn addr(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("memtube-poll-{tag}-{}.sock", std::process::id()))
}

fn small() -> Options {
    Options::new().capacity(4096)
}

/// `n` accepted handles (made by `take` from each accepted connection) in
/// a set, and the clients' connections.
fn accepted<T: memtube::Pollable>(
    tag: &str,
    n: usize,
    opts: &Options,
    take: impl Fn(Connection) -> T,
) -> (PollSet<T>, Vec<Connection>) {
    let a = addr(tag);
    let listener = listen(a.as_path(), opts).unwrap();
    let mut set = PollSet::new();
    let o = opts.clone();
    let clients = std::thread::spawn(move || {
        (0..n)
            .map(|_| connect(a.as_path(), &o).unwrap())
            .collect::<Vec<_>>()
    });
    for _ in 0..n {
        let conn = listener.accept_timeout(T).unwrap();
        set.insert(take(conn));
    }
    (set, clients.join().unwrap())
}

fn receivers(tag: &str, n: usize) -> (PollSet<Receiver>, Vec<Connection>) {
    accepted(tag, n, &small(), |c| c.into_split().1.unwrap())
}

fn keys(events: &Events) -> Vec<usize> {
    let mut k: Vec<usize> = events.iter().map(|e| e.key()).collect();
    k.sort_unstable();
    k
}

/// The keys reported by successive waits until `n` different ones were
/// (a wait reports the ready hot handles and at least one other).
fn seen_within<T: memtube::Pollable>(
    set: &mut PollSet<T>,
    events: &mut Events,
    n: usize,
) -> Vec<usize> {
    let mut seen = Vec::new();
    for _ in 0..=set.len() {
        set.wait(events, Some(T)).unwrap();
        seen.extend(keys(events));
        seen.sort_unstable();
        seen.dedup();
        if seen.len() >= n {
            break;
        }
    }
    seen
}

#[test]
fn reports_the_ready_receivers() {
    let (mut set, mut clients) = receivers("ready", 4);
    let mut events = Events::new();
    assert_eq!(
        set.wait(&mut events, Some(Duration::from_millis(20))),
        Err(Error::Timeout)
    );
    assert!(events.is_empty());
    clients[1].sender().unwrap().send(b"hi", 7).unwrap();
    clients[3].sender().unwrap().send(b"yo", 8).unwrap();
    // Both within a few waits (one may be found first).
    assert_eq!(seen_within(&mut set, &mut events, 2), [1, 3]);
    for (k, want) in [(1, (7, &b"hi"[..])), (3, (8, &b"yo"[..]))] {
        let m = set.get_mut(k).unwrap().try_recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), want);
    }
    // Nothing left: the set reports nothing again.
    assert_eq!(
        set.wait(&mut events, Some(Duration::from_millis(20))),
        Err(Error::Timeout)
    );
}

/// A wait with nothing ready sleeps (its spin budget 0) and the first
/// publication, to any of the rings, wakes it.
#[test]
fn a_sleeping_set_wakes_on_any_ring() {
    for target in [0, 5, 9] {
        let (mut set, mut clients) = receivers(&format!("wake{target}"), 10);
        set.set_spin_budget(0);
        let mut events = Events::new();
        let t0 = Instant::now();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            clients[target].sender().unwrap().send(b"x", 1).unwrap();
            clients
        });
        set.wait(&mut events, Some(T)).unwrap();
        let took = t0.elapsed();
        assert_eq!(keys(&events), [target]);
        assert!(took >= Duration::from_millis(90), "{took:?}");
        // Woken, not found by a liveness slice.
        assert!(took < Duration::from_secs(2), "{took:?}");
        drop(waker.join().unwrap());
    }
}

/// More rings than one `futex_waitv` takes: the set still wakes (in slices).
#[test]
fn more_rings_than_one_kernel_wait_takes() {
    let n = 130;
    let (mut set, mut clients) = receivers("many", n);
    set.set_spin_budget(0);
    let mut events = Events::new();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        clients[n - 1].sender().unwrap().send(b"x", 1).unwrap();
        clients
    });
    set.wait(&mut events, Some(T)).unwrap();
    assert_eq!(keys(&events), [n - 1]);
    drop(waker.join().unwrap());
}

/// A closed client is reported readable and closed (after its messages),
/// until removed; the other handles are not disturbed.
#[test]
fn a_closed_peer_is_reported_until_removed() {
    let (mut set, mut clients) = receivers("closed", 3);
    clients[2].sender().unwrap().send(b"last", 3).unwrap();
    drop(clients.remove(2));
    let mut events = Events::new();
    set.wait(&mut events, Some(T)).unwrap();
    assert_eq!(keys(&events), [2]);
    let rx = set.get_mut(2).unwrap();
    assert_eq!(rx.try_recv().unwrap().payload(), b"last");
    assert_eq!(rx.try_recv().err(), Some(Error::Closed));
    set.wait(&mut events, Some(T)).unwrap();
    let ev = *events.iter().next().unwrap();
    assert_eq!(ev.key(), 2);
    assert!(ev.is_readable() && ev.is_closed());
    assert!(set.remove(2).is_some());
    assert_eq!(set.len(), 2);
    assert_eq!(
        set.wait(&mut events, Some(Duration::from_millis(20))),
        Err(Error::Timeout)
    );
    // The others still work, and the freed key is reused.
    clients[0].sender().unwrap().send(b"a", 1).unwrap();
    set.wait(&mut events, Some(T)).unwrap();
    assert_eq!(keys(&events), [0]);
}

/// Fairness: three clients keep their rings full while a fourth sends one
/// message now and then; the set reports the quiet one within as many
/// waits as it has handles, and every busy one is served.
#[test]
fn a_quiet_ring_is_not_starved_by_busy_ones() {
    let (mut set, clients) = receivers("fair", 4);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let tx = c.sender().unwrap();
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if i == 3 {
                    // The quiet one: one message, then wait until it is read.
                    if tx.send(&sent.to_le_bytes(), 3).is_err() {
                        break;
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(5));
                } else {
                    match tx.try_send(&sent.to_le_bytes(), i as u32) {
                        Ok(()) => sent += 1,
                        Err(Error::Full) => std::hint::spin_loop(),
                        Err(_) => break,
                    }
                }
            }
            sent
        }));
    }
    let mut events = Events::new();
    let mut got = [0u32; 4];
    let deadline = Instant::now() + Duration::from_secs(3);
    // Waits since the quiet ring last had a message it had not read.
    while got[3] < 20 && Instant::now() < deadline {
        set.wait(&mut events, Some(T)).unwrap();
        for ev in &events {
            // One message per event: the busy rings stay ready.
            let rx = set.get_mut(ev.key()).unwrap();
            let m = rx.try_recv().unwrap();
            assert_eq!(m.type_id() as usize, ev.key());
            assert_eq!(
                u32::from_le_bytes(m.payload().try_into().unwrap()),
                got[ev.key()]
            );
            got[ev.key()] += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(set);
    for t in threads {
        t.join().unwrap();
    }
    assert!(got[3] >= 20, "the quiet ring was starved: {got:?}");
    assert!(
        got[..3].iter().all(|&n| n > 100),
        "a busy ring was starved: {got:?}"
    );
}

/// A sender in a set is writable when its ring has room; a full ring is
/// not, until the peer reads.
#[test]
fn senders_wait_for_room() {
    let opts = small().direction(memtube::Direction::ListenerToConnector);
    let (mut set, mut clients) = accepted("room", 2, &opts, |c| c.into_split().0.unwrap());
    let mut events = Events::new();
    assert_eq!(seen_within(&mut set, &mut events, 2), [0, 1]);
    // Fill ring 0.
    let tx = set.get_mut(0).unwrap();
    while tx.try_send(&[0; 256], 0).is_ok() {}
    let key1 = set.remove(1).unwrap();
    // Room for 256 bytes, not just for an empty message.
    let tx = set.remove(0).unwrap();
    assert_eq!(set.insert_with(tx, Interest::writable(256)).ok(), Some(0));
    set.set_spin_budget(0);
    assert_eq!(
        set.wait(&mut events, Some(Duration::from_millis(20))),
        Err(Error::Timeout)
    );
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let rx = clients[0].receiver().unwrap();
        while rx.try_recv().is_ok() {}
        clients
    });
    set.wait(&mut events, Some(T)).unwrap();
    assert_eq!(keys(&events), [0]);
    assert!(events.iter().next().unwrap().is_writable());
    set.get_mut(0).unwrap().try_send(&[1; 256], 1).unwrap();
    drop((reader.join().unwrap(), key1));
}

/// Interests that a handle cannot have are refused, the handle given back.
#[test]
fn interests_follow_the_handle() {
    let (mut set, _clients) = receivers("interest", 1);
    let rx = set.remove(0).unwrap();
    let (e, rx) = set.insert_with(rx, Interest::writable(8)).unwrap_err();
    assert_eq!(e, Error::NoSuchHandle);
    assert_eq!(set.insert_with(rx, Interest::READABLE).ok(), Some(0));
    assert_eq!(set.interest(0), Some(Interest::READABLE));
}

/// Request/reply over a set of duplex connections: each caller gets its own
/// replies.
#[test]
fn serves_many_callers() {
    let opts = small().duplex(true);
    let n = 8;
    let (mut set, clients) = accepted("serve", n, &opts, |c| c);
    let callers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                for k in 0..200u32 {
                    let req = [i as u8, k as u8];
                    let r = c.call_timeout(k, &req, T).unwrap();
                    assert_eq!((r.type_id(), r.payload()), (k + 1, &[k as u8, i as u8][..]));
                }
            })
        })
        .collect();
    let mut events = Events::new();
    let mut open = n;
    while open > 0 {
        set.wait(&mut events, Some(T)).unwrap();
        for ev in &events {
            let conn = set.get_mut(ev.key()).unwrap();
            match conn.serve_one(Some(T), |ty, req, reply| {
                reply.extend(req.iter().rev());
                ty + 1
            }) {
                Ok(()) => {}
                Err(Error::Closed) => {
                    set.remove(ev.key());
                    open -= 1;
                }
                Err(e) => panic!("serve: {e}"),
            }
        }
    }
    for c in callers {
        c.join().unwrap();
    }
}

/// With all its rings idle, a waiting set sleeps: it uses next to no CPU.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_set_sleeps() {
    let (mut set, _clients) = receivers("idle", 64);
    let mut events = Events::new();
    let cpu = || {
        let u = rustix_like_rusage();
        u.0 + u.1
    };
    let (c0, t0) = (cpu(), Instant::now());
    assert_eq!(
        set.wait(&mut events, Some(Duration::from_secs(1))),
        Err(Error::Timeout)
    );
    let (used, wall) = (cpu() - c0, t0.elapsed());
    eprintln!("an idle wait over 64 connections: {used:?} of CPU in {wall:?}");
    if !kernel_has_futex_waitv() {
        // Linux before 5.16, or qemu-user (CI's aarch64 step): the portable
        // wait looks again every millisecond (documented), which costs CPU.
        eprintln!("no futex_waitv here: the CPU bound is not checked");
        return;
    }
    // The spin budget (microseconds) and a liveness poll every 50 ms.
    assert!(
        used < wall / 20,
        "an idle wait used {used:?} of CPU in {wall:?}"
    );
}

/// Whether the kernel (or emulator) implements `futex_waitv`: called with
/// no futexes it fails with `EINVAL` where it exists, `ENOSYS` where not.
#[cfg(target_os = "linux")]
fn kernel_has_futex_waitv() -> bool {
    // SAFETY: a null array of length 0 is never read; the call only checks
    // its arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            std::ptr::null::<u8>(),
            0u32,
            0u32,
            std::ptr::null::<u8>(),
            0i32,
        )
    };
    !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}

/// This thread's user and system CPU time (Linux: /proc/thread-self/stat).
#[cfg(target_os = "linux")]
fn rustix_like_rusage() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which ends with ')'): utime is the
    // 14th field overall, stime the 15th, in clock ticks (100 per second
    // on every Linux platform memtube runs on).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let tick = |s: &str| Duration::from_millis(s.parse::<u64>().unwrap() * 10);
    (tick(f[11]), tick(f[12]))
}

/// A client process killed with SIGKILL is reported (readable and closed,
/// then `PeerGone` from the receive) within the liveness bound, while the
/// set sleeps; the other clients are not disturbed.
#[test]
fn a_killed_client_is_reported() {
    let a = common::unique_addr("poll-kill");
    let listener = listen(a.as_str(), &small()).unwrap();
    let mut set = PollSet::new();
    let mut kids = Vec::new();
    for _ in 0..3 {
        let kid = common::child_command("send-one-then-sleep", &a)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        kids.push(kid);
        let conn = listener.accept_timeout(T).unwrap();
        set.insert(conn.into_split().1.unwrap());
    }
    let mut events = Events::new();
    let mut first = 0;
    while first < 3 {
        set.wait(&mut events, Some(T)).unwrap();
        for ev in &events {
            assert!(!ev.is_closed());
            set.get_mut(ev.key()).unwrap().try_recv().unwrap();
            first += 1;
        }
    }
    set.set_spin_budget(0);
    let t0 = Instant::now();
    kids[1].kill().unwrap();
    kids[1].wait().unwrap();
    set.wait(&mut events, Some(T)).unwrap();
    let took = t0.elapsed();
    assert_eq!(keys(&events), [1]);
    assert!(events.iter().next().unwrap().is_closed());
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(
        set.get_mut(1).unwrap().try_recv().err(),
        Some(Error::PeerGone)
    );
    set.remove(1);
    assert_eq!(
        set.wait(&mut events, Some(Duration::from_millis(100))),
        Err(Error::Timeout)
    );
    for mut k in kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}

/// `sleep_many` with no timeout over two rings (Linux: `futex_waitv`): a
/// lost wake-up would hang the sleeper, which the watchdog reports (no
/// liveness slice rescues it here).
#[test]
fn sleep_many_without_a_timeout_is_woken_by_either_ring() {
    use memtube::ring::{channel, sleep_many, NativeWait};
    for target in [0usize, 1] {
        let (mut ta, mut ra) = channel(1024).unwrap();
        let (mut tb, mut rb) = channel(1024).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rounds = 0;
            loop {
                if ra.has_message().unwrap() || rb.has_message().unwrap() {
                    break;
                }
                let words = [ra.announce_sleep().unwrap(), rb.announce_sleep().unwrap()];
                sleep_many(&NativeWait::default(), &words, None, || {
                    ra.has_message().unwrap() || rb.has_message().unwrap()
                });
                ra.withdraw_sleep();
                rb.withdraw_sleep();
                rounds += 1;
            }
            let _ = done_tx.send(rounds);
            (ra, rb)
        });
        std::thread::sleep(Duration::from_millis(100));
        if target == 0 {
            ta.try_send(b"a", 1).unwrap();
        } else {
            tb.try_send(b"b", 2).unwrap();
        }
        let rounds = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the sleeper was not woken: a lost wake-up");
        assert!(rounds >= 1, "it never slept");
    }
}

/// A peer that dies is reported even while another ring keeps the set busy
/// (it never sleeps).
#[test]
fn a_killed_client_is_reported_while_others_stream() {
    let a = common::unique_addr("poll-busy-kill");
    let listener = listen(a.as_str(), &small()).unwrap();
    let mut set = PollSet::new();
    // Key 0: a client thread that streams without pause.
    let a2 = a.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let streamer = std::thread::spawn(move || {
        let mut c = connect(a2.as_str(), &small()).unwrap();
        let tx = c.sender().unwrap();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = tx.try_send(b"busy", 1);
        }
    });
    set.insert(listener.accept_timeout(T).unwrap().into_split().1.unwrap());
    // Key 1: a child process.
    let mut kid = common::child_command("send-one-then-sleep", &a)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    set.insert(listener.accept_timeout(T).unwrap().into_split().1.unwrap());
    let mut events = Events::new();
    let mut killed: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got_hello = false;
    loop {
        assert!(Instant::now() < deadline, "the death was never reported");
        set.wait(&mut events, Some(T)).unwrap();
        let evs: Vec<Event> = events.iter().copied().collect();
        let mut reported = false;
        for ev in evs {
            let rx = set.get_mut(ev.key()).unwrap();
            if ev.key() == 1 {
                match rx.try_recv() {
                    Ok(m) => {
                        assert_eq!(m.payload(), b"hello");
                        got_hello = true;
                    }
                    Err(Error::PeerGone) => reported = true,
                    Err(e) => panic!("{e}"),
                }
            } else {
                while rx.try_recv().is_ok() {}
            }
        }
        if reported {
            break;
        }
        if got_hello && killed.is_none() {
            kid.kill().unwrap();
            kid.wait().unwrap();
            killed = Some(Instant::now());
        }
    }
    let took = killed.unwrap().elapsed();
    let _ = kid.kill();
    let _ = kid.wait();
    assert!(took < Duration::from_millis(500), "{took:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(set);
    streamer.join().unwrap();
}

/// A cancelled connection stops a sleeping set's wait.
#[test]
fn a_cancel_token_stops_the_wait() {
    let token = memtube::CancelToken::new();
    let opts = small().cancel_token(token.clone());
    let (mut set, _clients) = accepted("cancel", 2, &opts, |c| c.into_split().1.unwrap());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        token.cancel();
    });
    let t0 = Instant::now();
    let mut events = Events::new();
    assert_eq!(set.wait(&mut events, Some(T)), Err(Error::Cancelled));
    assert!(t0.elapsed() < Duration::from_secs(2));
    t.join().unwrap();
}

/// A zero timeout polls: no spin, no sleep.
#[test]
fn a_zero_timeout_only_looks() {
    let (mut set, mut clients) = receivers("zero", 3);
    let mut events = Events::new();
    assert_eq!(
        set.wait(&mut events, Some(Duration::ZERO)),
        Err(Error::Timeout)
    );
    clients[2].sender().unwrap().send(b"z", 1).unwrap();
    set.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert_eq!(keys(&events), [2]);
}

/// Block in poll(2) on `fd` with no timeout, in the calling thread.
#[cfg(target_os = "linux")]
fn poll_forever(fd: std::os::fd::BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    while unsafe { libc::poll(&mut p, 1, -1) } < 0 {}
}

/// The readiness protocol end to end, with no timeout anywhere: a receiver
/// armed, then blocked in poll(2) on its descriptor, and a poll set armed
/// and blocked on its epoll descriptor, are woken by a send. A lost signal
/// hangs the waiter, which the watchdog reports.
#[cfg(target_os = "linux")]
#[test]
fn readiness_descriptors_are_signalled() {
    use memtube::ring::SleepPlan;
    let opts = small().readiness(true);
    // One receiver.
    let (mut rxs, mut clients) = accepted("ready-fd", 3, &opts, |c| c.into_split().1.unwrap());
    let mut rx = rxs.remove(1).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        loop {
            match rx.arm_readiness().unwrap() {
                SleepPlan::Ready => break,
                SleepPlan::Sleep(cap) => {
                    assert_eq!(cap, None, "light wakes without the barrier");
                    poll_forever(rx.readiness_fd().unwrap());
                    rx.disarm_readiness();
                }
            }
        }
        let got = rx.try_recv().unwrap().payload().to_vec();
        done_tx.send(got).unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    clients[1].sender().unwrap().send(b"fd", 1).unwrap();
    let got = done_rx
        .recv_timeout(T)
        .expect("the descriptor was never signalled");
    assert_eq!(got, b"fd");
    waiter.join().unwrap();

    // A poll set of the other two.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut events = Events::new();
        rxs.readiness_fd().unwrap();
        loop {
            match rxs.arm_readiness(&mut events).unwrap() {
                SleepPlan::Ready => break,
                SleepPlan::Sleep(cap) => {
                    assert_eq!(cap, None);
                    poll_forever(rxs.readiness_fd().unwrap());
                    rxs.disarm_readiness();
                }
            }
        }
        done_tx.send(keys(&events)).unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    clients[2].sender().unwrap().send(b"set", 1).unwrap();
    let got = done_rx
        .recv_timeout(T)
        .expect("the set's descriptor was never signalled");
    assert_eq!(got, [2]);
    waiter.join().unwrap();
}

/// Many descriptors ready at once (more than one `epoll_wait` batch): the
/// set's disarm reads them all and the next arm reports every handle.
#[cfg(target_os = "linux")]
#[test]
fn a_poll_set_descriptor_with_many_ready_handles() {
    use memtube::ring::SleepPlan;
    let n = 70;
    let opts = small().readiness(true);
    let (mut set, mut clients) = accepted("many-ready", n, &opts, |c| c.into_split().1.unwrap());
    set.set_spin_budget(0);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (armed_tx, armed_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut events = Events::new();
        set.readiness_fd().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut first = true;
        while seen.len() < n {
            match set.arm_readiness(&mut events).unwrap() {
                SleepPlan::Ready => {
                    for ev in &events {
                        if seen.insert(ev.key()) {
                            set.get_mut(ev.key()).unwrap().try_recv().unwrap();
                        }
                    }
                }
                SleepPlan::Sleep(cap) => {
                    assert_eq!(cap, None);
                    if first {
                        armed_tx.send(()).unwrap();
                        first = false;
                    }
                    poll_forever(set.readiness_fd().unwrap());
                    set.disarm_readiness();
                }
            }
        }
        done_tx.send(seen.len()).unwrap();
    });
    armed_rx.recv_timeout(T).unwrap();
    for c in &mut clients {
        c.sender().unwrap().send(b"m", 1).unwrap();
    }
    assert_eq!(done_rx.recv_timeout(T).expect("the set hung"), n);
    waiter.join().unwrap();
}

#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    common::child_main(|role, addr| match role {
        "send-one-then-sleep" => common::send_one_then_sleep(addr, &small()),
        r => Err(format!("unknown role {r}")),
    });
}
