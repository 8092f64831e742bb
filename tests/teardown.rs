//! Teardown races: one thread drops a handle, or cancels, while another
//! thread of the same process is blocked on the same connection; and the
//! peer process ends (cleanly, or by SIGKILL) while a thread of ours is
//! blocked. Every round waits a random while before it acts, so the act
//! lands before the call, during its first (spinning) slice, or while it
//! sleeps.
//!
//! What each race does (docs/verification.md, "Teardown races"):
//!
//! - The halves of [`Connection::into_split`] are independent: each owns
//!   the mappings of its own ring, and they share only the liveness socket
//!   (reference-counted, closed with the last half). Dropping one half
//!   closes its ring (the peer's opposite half gets `Closed`) and leaves the
//!   other half, blocked or not, working on its own ring. The socket's
//!   clean-close byte goes out with the last half, so the peer sees
//!   `Closed`, never `PeerGone`, however the two drops race.
//! - A cancel stops every blocking call of the connection (and `accept` /
//!   `connect`, handshake included) with `Cancelled` within about one
//!   liveness slice. The connection stays consistent: nothing was taken or
//!   torn, calls that need not wait go on working, and a drop is a clean
//!   close. A token cannot be reset, so every later call that would wait
//!   returns `Cancelled` at its first slice's end.
//! - A peer process that drops its connection and exits gives `Closed`;
//!   one that is SIGKILLed gives `PeerGone` (after every committed message),
//!   whichever call of ours is blocked.
//!
//! CI runs a few rounds of each; the soak (same tests, more rounds):
//!
//! ```text
//! MEMTUBE_TEARDOWN_ROUNDS=1000 cargo test --release --test teardown -- --nocapture
//! ```

#![cfg(target_os = "linux")]

mod common;

use common::{rand, unique_addr};

use memtube::{
    connect, listen, CancelToken, Connection, Error, Options, PeerState, LIVENESS_SLICE,
};
use rustix::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
/// A blocked call must return well within this after the event that ends
/// it (the design figure is one `LIVENESS_SLICE`; this bound only catches
/// hangs on a loaded machine).
const BOUND: Duration = Duration::from_secs(2);

/// Rounds of each race: `MEMTUBE_TEARDOWN_ROUNDS`, else `default`.
fn rounds(default: u64) -> u64 {
    common::env_u64("MEMTUBE_TEARDOWN_ROUNDS", default)
}

fn seed(salt: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (salt ^ u64::from(t) ^ (u64::from(std::process::id()) << 32)) | 1
}

/// A random wait: none, a yield, a few microseconds (the call is spinning),
/// or up to 2.5 liveness slices (it sleeps in the futex, maybe between slices).
fn jitter(seed: &mut u64) {
    match rand(seed) % 4 {
        0 => {}
        1 => std::thread::yield_now(),
        2 => std::thread::sleep(Duration::from_micros(rand(seed) % 200)),
        _ => std::thread::sleep(Duration::from_micros(rand(seed) % 125_000)),
    }
}

fn duplex(isolation: bool) -> Options {
    Options::new()
        .duplex(true)
        .capacity(4096)
        .isolation(isolation)
}

/// Round `r`'s options: isolation on or off, spin-then-sleep or pure spin
/// (a blocked call that never sleeps in the futex).
fn varied(r: u64) -> Options {
    duplex(r % 2 == 0).pure_spin(r % 4 >= 2)
}

/// Both ends of a connection in this process: (listener's, connector's).
fn pair(lo: &Options, co: &Options) -> (Connection, Connection) {
    let addr = unique_addr("pair");
    let l = listen(addr.as_str(), lo).unwrap();
    let co = co.clone();
    let t = std::thread::spawn(move || connect(addr.as_str(), &co).unwrap());
    let a = l.accept_timeout(T).unwrap();
    (a, t.join().unwrap())
}

/// Whether the address lies in a mapping of this process.
fn is_mapped(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|l| {
        let (a, b) = l
            .split_whitespace()
            .next()
            .unwrap()
            .split_once('-')
            .unwrap();
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        (a..b).contains(&addr)
    })
}

// ------------------------------------------------- split halves, one process

/// Thread R blocks in `recv` on the receiving half while this thread drops
/// the sending half: R stays blocked (its ring and its mapping are its
/// own), the peer's receiver gets `Closed`, the peer stays `Alive`, and R
/// then gets what the peer sends, then `Closed` when the peer drops.
#[test]
fn dropping_the_sender_half_leaves_a_blocked_receiver_half_working() {
    let mut seed = seed(1);
    for round in 0..rounds(30) {
        let (a, mut b) = pair(&varied(round), &varied(round));
        let (tx, rx) = a.into_split();
        let (tx, mut rx) = (tx.unwrap(), rx.unwrap());
        let (ready_tx, ready_rx) = mpsc::channel::<usize>();
        let (got_tx, got_rx) = mpsc::channel::<Result<Vec<u8>, Error>>();
        let blocked = std::thread::spawn(move || {
            ready_tx.send(0).unwrap();
            loop {
                let r = rx.recv_timeout(T).map(|m| {
                    let p = m.payload();
                    ready_tx.send(p.as_ptr() as usize).unwrap();
                    p.to_vec()
                });
                let end = r.is_err();
                got_tx.send(r).unwrap();
                if end {
                    return rx;
                }
            }
        });
        ready_rx.recv().unwrap();
        jitter(&mut seed);
        drop(tx);
        // The peer's receiver sees the clean end of that ring at once.
        let started = Instant::now();
        assert_eq!(
            b.receiver().unwrap().recv_timeout(T).unwrap_err(),
            Error::Closed
        );
        assert!(started.elapsed() < BOUND);
        // The socket is still open (the other half holds it).
        assert_eq!(b.probe_peer(), PeerState::Alive);
        // R is still waiting, on its own ring.
        assert!(got_rx.recv_timeout(Duration::from_millis(5)).is_err());
        b.sender().unwrap().send(b"after", 1).unwrap();
        assert_eq!(got_rx.recv_timeout(T).unwrap().unwrap(), b"after");
        let p = ready_rx.recv_timeout(T).unwrap();
        assert!(is_mapped(p), "the receiver's ring was unmapped");
        jitter(&mut seed);
        drop(b);
        let started = Instant::now();
        assert_eq!(got_rx.recv_timeout(T).unwrap().unwrap_err(), Error::Closed);
        assert!(started.elapsed() < BOUND);
        // The ring's close comes first; the socket's close byte follows
        // as the peer's drop goes on.
        let rx = blocked.join().unwrap();
        while rx.probe_peer() == PeerState::Alive {
            assert!(started.elapsed() < BOUND);
            std::thread::yield_now();
        }
        assert_eq!(rx.probe_peer(), PeerState::Closed);
    }
}

/// Thread S blocks in `send` or `reserve` on a full ring while this thread
/// drops the receiving half: S stays blocked, the peer's sender gets
/// `Closed`; the peer drains the ring and S goes on; when the peer drops,
/// S gets `Closed`, nothing lost on the way.
#[test]
fn dropping_the_receiver_half_leaves_a_blocked_sender_half_working() {
    let mut seed = seed(2);
    for round in 0..rounds(30) {
        let (a, mut b) = pair(&varied(round), &varied(round));
        let (tx, rx) = a.into_split();
        let (mut tx, rx) = (tx.unwrap(), rx.unwrap());
        let mut n = 0u64;
        while tx.try_send(&n.to_le_bytes(), 0).is_ok() {
            n += 1;
        }
        let by_reserve = round % 3 == 1;
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let blocked = std::thread::spawn(move || {
            ready_tx.send(()).unwrap();
            let mut i = n;
            loop {
                let r = if by_reserve {
                    tx.reserve_timeout(8, T).map(|mut g| {
                        g.copy_from_slice(&i.to_le_bytes());
                        g.commit(8, 0);
                    })
                } else {
                    tx.send_timeout(&i.to_le_bytes(), 0, T)
                };
                match r {
                    Ok(()) => i += 1,
                    Err(e) => return (i, e),
                }
            }
        });
        ready_rx.recv().unwrap();
        jitter(&mut seed);
        drop(rx);
        let btx = b.sender().unwrap();
        assert_eq!(btx.try_send(b"x", 1), Err(Error::Closed));
        assert_eq!(btx.send(b"x", 1), Err(Error::Closed));
        assert!(!blocked.is_finished());
        // Drain a random share; S sends on as room comes.
        let brx = b.receiver().unwrap();
        let take = n + rand(&mut seed) % (3 * n);
        for i in 0..take {
            let m = brx.recv_timeout(T).unwrap();
            assert_eq!(m.payload(), i.to_le_bytes(), "round {round}");
        }
        jitter(&mut seed);
        drop(b);
        let started = Instant::now();
        let (sent, end) = blocked.join().unwrap();
        assert_eq!(end, Error::Closed, "round {round}");
        assert!(started.elapsed() < BOUND);
        assert!(sent >= take, "round {round}: {sent} < {take}");
    }
}

/// The two halves dropped by two threads at once, while the peer blocks in
/// `recv` and in `send` (full ring): the peer gets `Closed` on both, never
/// `PeerGone`, whichever half goes last.
#[test]
fn both_halves_dropped_in_two_threads_are_a_clean_close() {
    let mut seed = seed(3);
    for round in 0..rounds(30) {
        let (a, b) = pair(&varied(round), &varied(round));
        let (tx, rx) = a.into_split();
        let (btx, brx) = b.into_split();
        let (mut btx, mut brx) = (btx.unwrap(), brx.unwrap());
        while btx.try_send(&[1; 100], 1).is_ok() {}
        let peer_recv = std::thread::spawn(move || loop {
            match brx.recv_timeout(T) {
                Ok(_) => {}
                Err(e) => return e,
            }
        });
        let peer_send = std::thread::spawn(move || btx.send_timeout(&[1; 100], 1, T));
        let (d1, d2) = (rand(&mut seed), rand(&mut seed));
        let t1 = std::thread::spawn(move || {
            let mut s = d1 | 1;
            jitter(&mut s);
            drop(tx);
        });
        let t2 = std::thread::spawn(move || {
            let mut s = d2 | 1;
            jitter(&mut s);
            drop(rx);
        });
        t1.join().unwrap();
        t2.join().unwrap();
        let started = Instant::now();
        assert_eq!(peer_recv.join().unwrap(), Error::Closed, "round {round}");
        assert_eq!(
            peer_send.join().unwrap(),
            Err(Error::Closed),
            "round {round}"
        );
        assert!(started.elapsed() < BOUND);
    }
}

// ------------------------------------------------------------ cancellation

/// What a thread is blocked in when the token fires.
#[derive(Clone, Copy, Debug)]
enum Blocked {
    Recv,
    RecvTimeout,
    WaitMessage,
    Send,
    Reserve,
    WaitForRoom,
    Call,
    Serve,
    Accept,
    /// `accept` of a client that connected and never answers the handshake.
    AcceptHandshake,
    /// `connect` to a listener that never sends its handshake.
    ConnectHandshake,
    /// `connect` (shm backend, a stream) to a listener that sends part of
    /// its handshake and stalls.
    ConnectHandshakePiece,
}

const BLOCKED: [Blocked; 12] = [
    Blocked::Recv,
    Blocked::RecvTimeout,
    Blocked::WaitMessage,
    Blocked::Send,
    Blocked::Reserve,
    Blocked::WaitForRoom,
    Blocked::Call,
    Blocked::Serve,
    Blocked::Accept,
    Blocked::AcceptHandshake,
    Blocked::ConnectHandshake,
    Blocked::ConnectHandshakePiece,
];

fn raw_seqpacket() -> OwnedFd {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

fn abstract_name(addr: &str) -> rustix::net::SocketAddrUnix {
    rustix::net::SocketAddrUnix::new_abstract_name(addr.strip_prefix('@').unwrap().as_bytes())
        .unwrap()
}

/// Run `what` in a thread with a connection (or listener) made with a
/// token, cancel the token from this thread after a random wait, and
/// return the call's result and how long after the cancel it returned.
fn cancel_while_blocked(
    what: Blocked,
    round: u64,
    seed: &mut u64,
) -> (Result<(), Error>, Duration) {
    let token = CancelToken::new();
    // Long handshake timeouts: only the cancel can end those waits.
    let with = varied(round)
        .cancel_token(token.clone())
        .handshake_timeout(Duration::from_secs(60));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    // The fake peer's socket, kept open until the call returned.
    let mut fake: Option<OwnedFd> = None;
    // Connection cases: the blocked thread hands its connection back, and
    // the peer's end stays here.
    let mut peer: Option<Connection> = None;
    // A fake listener's thread (the stream case), joined at the end.
    let mut fake_peer: Option<std::thread::JoinHandle<()>> = None;
    let worker: std::thread::JoinHandle<(Result<(), Error>, Instant, Option<Connection>)> =
        match what {
            Blocked::Accept | Blocked::AcceptHandshake => {
                let addr = unique_addr("cancel-accept");
                let l = listen(addr.as_str(), &with).unwrap();
                if matches!(what, Blocked::AcceptHandshake) {
                    let s = raw_seqpacket();
                    rustix::net::connect(&s, &abstract_name(&addr)).unwrap();
                    fake = Some(s);
                }
                std::thread::spawn(move || {
                    ready_tx.send(()).unwrap();
                    let r = l.accept().map(drop);
                    (r, Instant::now(), None)
                })
            }
            Blocked::ConnectHandshake => {
                let addr = unique_addr("cancel-connect");
                let s = raw_seqpacket();
                rustix::net::bind(&s, &abstract_name(&addr)).unwrap();
                rustix::net::listen(&s, 8).unwrap();
                fake = Some(s);
                std::thread::spawn(move || {
                    ready_tx.send(()).unwrap();
                    let r = connect(addr.as_str(), &with).map(drop);
                    (r, Instant::now(), None)
                })
            }
            Blocked::ConnectHandshakePiece => {
                use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
                let addr = unique_addr("cancel-piece");
                let s = socket_with(
                    AddressFamily::UNIX,
                    SocketType::STREAM,
                    SocketFlags::CLOEXEC,
                    None,
                )
                .unwrap();
                rustix::net::bind(&s, &abstract_name(&addr)).unwrap();
                rustix::net::listen(&s, 8).unwrap();
                fake_peer = Some(std::thread::spawn(move || {
                    let c = rustix::net::accept(&s).unwrap();
                    // The connector may have been cancelled already (EPIPE).
                    let _ = rustix::net::send(&c, &[0u8; 10], rustix::net::SendFlags::empty());
                    // Hold the connection until the connector gives up.
                    let mut b = [0u8; 1];
                    let _ = rustix::net::recv(&c, &mut b[..], rustix::net::RecvFlags::empty());
                }));
                let with = with.backend(memtube::Backend::PosixShm);
                std::thread::spawn(move || {
                    ready_tx.send(()).unwrap();
                    let r = connect(addr.as_str(), &with).map(drop);
                    (r, Instant::now(), None)
                })
            }
            _ => {
                let (mut a, mut b) = pair(&with, &varied(round));
                // The peer reads nothing and sends nothing: our sends meet
                // a full ring, our receives an empty one.
                let tx = a.sender().unwrap();
                while tx.try_send(&[0; 64], 9).is_ok() {}
                b.sender().unwrap().send(b"early", 5).unwrap();
                peer = Some(b);
                std::thread::spawn(move || {
                    // A message that is there is taken (no wait), then the call blocks.
                    let m = a.receiver().unwrap().recv().unwrap();
                    assert_eq!(m.payload(), b"early");
                    drop(m);
                    ready_tx.send(()).unwrap();
                    let r = match what {
                        Blocked::Recv => a.receiver().unwrap().recv().map(drop),
                        Blocked::RecvTimeout => a.receiver().unwrap().recv_timeout(T).map(drop),
                        Blocked::WaitMessage => a.receiver().unwrap().wait_message(None),
                        Blocked::Send => a.sender().unwrap().send(&[0; 64], 9),
                        Blocked::Reserve => a.sender().unwrap().reserve(64).map(drop),
                        Blocked::WaitForRoom => a.sender().unwrap().wait_for_room(64, Some(T)),
                        // Our ring to the peer is full: the call blocks sending.
                        Blocked::Call => a.call(1, b"req").map(drop),
                        Blocked::Serve => a.serve(|_, _, _| 0),
                        _ => unreachable!(),
                    };
                    (r, Instant::now(), Some(a))
                })
            }
        };
    ready_rx.recv().unwrap();
    jitter(seed);
    token.cancel();
    let cancelled = Instant::now();
    let (r, at, conn) = worker.join().unwrap();
    let took = at.saturating_duration_since(cancelled);
    drop(fake);
    if let Some(t) = fake_peer {
        t.join().unwrap();
    }
    if let (Some(mut a), Some(mut b)) = (conn, peer) {
        // Still consistent after the cancel: a message sent now is taken
        // without waiting, a wait is cancelled again at once (the token
        // stays cancelled), and the drop is a clean close.
        b.sender().unwrap().send(b"after", 6).unwrap();
        let m = a.receiver().unwrap().try_recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), (6, &b"after"[..]));
        drop(m);
        assert_eq!(a.receiver().unwrap().recv().unwrap_err(), Error::Cancelled);
        assert_eq!(a.probe_peer(), PeerState::Alive);
        drop(a);
        let rx = b.receiver().unwrap();
        let mut n = 0;
        let end = loop {
            match rx.recv_timeout(T) {
                // Ours, or the request of a call that blocked on its reply
                // (the ring had room for a shorter record).
                Ok(m) if (m.type_id(), m.payload()) == (9, &[0; 64][..]) => n += 1,
                Ok(m) => assert_eq!((m.type_id(), &m.payload()[8..]), (1, &b"req"[..])),
                Err(e) => break e,
            }
        };
        assert!(n > 0);
        assert_eq!(end, Error::Closed, "{what:?}");
        assert_eq!(b.probe_peer(), PeerState::Closed);
    }
    (r, took)
}

/// `CancelToken::cancel` from another thread while a thread blocks in each
/// blocking call: `Cancelled` within about one liveness slice, the
/// connection consistent afterwards (see `cancel_while_blocked`).
#[test]
fn a_cancel_from_another_thread_ends_every_blocking_call() {
    let mut seed = seed(4);
    let n = rounds(4);
    for what in BLOCKED {
        let mut worst = Duration::ZERO;
        for round in 0..n {
            let (r, took) = cancel_while_blocked(what, round, &mut seed);
            assert_eq!(r, Err(Error::Cancelled), "{what:?} round {round}");
            assert!(
                took < BOUND,
                "{what:?}: Cancelled {took:?} after the cancel"
            );
            worst = worst.max(took);
        }
        eprintln!(
            "{what:?}: Cancelled at most {worst:?} after the cancel ({n} rounds; slice {LIVENESS_SLICE:?})"
        );
    }
}

// ------------------------------------------- the peer process ends, cleanly or not

#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    common::child_main(child);
}

fn child(role: &str, addr: &str) -> Result<(), String> {
    let s = |e: Error| e.to_string();
    match role {
        // Send `k` messages, read none, and wait for a byte on stdin: at
        // end-of-file drop the connection cleanly and exit (unless the
        // test SIGKILLs us first).
        "send-then-wait" => {
            let mut c = connect(addr, &duplex(true)).map_err(s)?;
            let k: u64 = std::env::var("MEMTUBE_TEARDOWN_K")
                .unwrap()
                .parse()
                .unwrap();
            let tx = c.sender().map_err(s)?;
            for i in 0..k {
                tx.send_timeout(&i.to_le_bytes(), 0, T).map_err(s)?;
            }
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut b);
            drop(c);
            Ok(())
        }
        _ => Err(format!("unknown role {role}")),
    }
}

/// Our threads block in `recv` (after the peer's messages) and in `send`
/// (the peer reads nothing) while the peer process either drops its
/// connection and exits, or is SIGKILLed, at a random moment: `Closed`
/// for the first, `PeerGone` for the second, on both threads, promptly,
/// every committed message delivered first.
#[test]
fn a_peer_that_closes_or_dies_while_we_block_gives_closed_or_peer_gone() {
    let mut seed = seed(5);
    for round in 0..rounds(12) {
        let kill = rand(&mut seed) % 2 == 0;
        let k = rand(&mut seed) % 200;
        let addr = unique_addr("end");
        let l = listen(addr.as_str(), &duplex(true)).unwrap();
        let mut child = common::child_command("send-then-wait", &addr)
            .env("MEMTUBE_TEARDOWN_K", k.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let c = l.accept_timeout(T).unwrap();
        let (tx, rx) = c.into_split();
        let (mut tx, mut rx) = (tx.unwrap(), rx.unwrap());
        let (all_tx, all_rx) = mpsc::channel::<()>();
        let receiving = std::thread::spawn(move || {
            let mut i = 0u64;
            loop {
                if i == k {
                    let _ = all_tx.send(());
                }
                match rx.recv_timeout(T) {
                    Ok(m) => {
                        assert_eq!(m.payload(), i.to_le_bytes());
                        i += 1;
                    }
                    Err(e) => return (i, e, Instant::now()),
                }
            }
        });
        let sending = std::thread::spawn(move || loop {
            if let Err(e) = tx.send_timeout(&[3; 200], 3, T) {
                return (e, Instant::now());
            }
        });
        // Every message is in (the peer committed them all): the end comes
        // while the receiver blocks, or is about to.
        all_rx.recv_timeout(T).unwrap();
        jitter(&mut seed);
        let ended = Instant::now();
        if kill {
            child.kill().unwrap();
        } else {
            drop(child.stdin.take());
        }
        let (got, rend, rat) = receiving.join().unwrap();
        let (send_end, sat) = sending.join().unwrap();
        let st = child.wait().unwrap();
        let want = if kill {
            assert_eq!(st.signal(), Some(9), "round {round}");
            Error::PeerGone
        } else {
            assert!(st.success(), "round {round}: {st:?}");
            Error::Closed
        };
        assert_eq!(rend, want, "round {round} (kill {kill}): receiver");
        assert_eq!(send_end, want, "round {round} (kill {kill}): sender");
        assert_eq!(got, k, "round {round}: messages before the end");
        for at in [rat, sat] {
            let took = at.saturating_duration_since(ended);
            assert!(took < BOUND, "round {round}: {took:?}");
        }
    }
}

/// The token's flag set by a signal handler (`signal-hook`, as in
/// examples/shutdown.rs) and the signal delivered to the very thread that
/// blocks in `recv`, so it interrupts its futex wait: `Cancelled`, promptly.
#[test]
fn a_cancel_from_a_signal_handler_ends_a_blocked_recv() {
    use std::os::unix::thread::JoinHandleExt;
    let mut seed = seed(6);
    for round in 0..rounds(10) {
        let token = CancelToken::new();
        let id = signal_hook::flag::register(libc::SIGUSR1, token.flag()).unwrap();
        let (mut a, b) = pair(&duplex(true).cancel_token(token.clone()), &duplex(true));
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let blocked = std::thread::spawn(move || {
            ready_tx.send(()).unwrap();
            let r = a.receiver().unwrap().recv().map(drop);
            (r, Instant::now())
        });
        ready_rx.recv().unwrap();
        jitter(&mut seed);
        let sent = Instant::now();
        // SAFETY: the thread is joined below, so its pthread_t is live.
        let rc = unsafe { libc::pthread_kill(blocked.as_pthread_t(), libc::SIGUSR1) };
        assert_eq!(rc, 0);
        let (r, at) = blocked.join().unwrap();
        assert_eq!(r, Err(Error::Cancelled), "round {round}");
        assert!(at.saturating_duration_since(sent) < BOUND);
        assert!(signal_hook::low_level::unregister(id));
        drop(b);
    }
}
