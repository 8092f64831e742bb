//! One conformance suite, run against both region backends on Linux: the
//! Linux shim's memfds (`Backend::Memfd`, `SOCK_SEQPACKET`) and the POSIX
//! path that macOS uses (`Backend::PosixShm`: `shm_open` regions, the
//! `SOCK_STREAM` handshake), both under `memtube_linux::Linux` (the futex
//! wait). Whatever passes here for `PosixShm` is the code macOS runs,
//! except what `memtube_macos::MacOs` implements of the `Os` trait (its
//! wait, socket flags, `getpeereid`).

#![cfg(target_os = "linux")]

use memtube::{connect, listen, Backend, Connection, Direction, Error, Options, UidPolicy};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn addr(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "mt-conf-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Run `server` on an accepted connection in a thread and `client` on a
/// connected one here.
fn pair<R: Send + 'static>(
    tag: &str,
    opts: &Options,
    server: impl FnOnce(Connection) -> R + Send + 'static,
    client: impl FnOnce(Connection),
) -> R {
    let a = addr(tag);
    let l = listen(a.as_path(), opts).expect("listen");
    let s = std::thread::spawn(move || server(l.accept_timeout(T).expect("accept")));
    client(connect(a.as_path(), opts).expect("connect"));
    s.join().unwrap()
}

fn payload(i: u32, max: u32) -> Vec<u8> {
    let len = match i % 4 {
        0 => 0,
        1 => 3,
        2 => 64,
        _ => max as usize,
    };
    (0..len).map(|k| (i as usize + k) as u8).collect()
}

fn simplex(b: Backend, isolation: bool, dir: Direction) {
    let opts = Options::new()
        .backend(b)
        .capacity(4096)
        .isolation(isolation)
        .direction(dir);
    let n = 2000;
    let recv_all = move |mut c: Connection| {
        let rx = c.receiver().unwrap();
        let max = rx.max_payload();
        for i in 0..n {
            let m = rx.recv_timeout(T).unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &payload(i, max)[..]));
        }
        // The peer dropped its handle: a clean close after the last message.
        assert_eq!(rx.recv_timeout(T).err(), Some(Error::Closed));
    };
    let send_all = move |mut c: Connection| {
        let tx = c.sender().unwrap();
        let max = tx.max_payload();
        for i in 0..n {
            tx.send_timeout(&payload(i, max), i, T).unwrap();
        }
    };
    match dir {
        Direction::ConnectorToListener => pair("simplex", &opts, recv_all, send_all),
        _ => pair("simplex", &opts, send_all, recv_all),
    }
}

fn duplex(b: Backend) {
    let opts = Options::new().backend(b).duplex(true).capacity(4096);
    pair(
        "duplex",
        &opts,
        |mut c| {
            assert_eq!(c.peer_cred().pid as u32, std::process::id());
            c.serve(|ty, req, reply| {
                reply.extend(req.iter().rev());
                ty + 1
            })
            .unwrap()
        },
        |mut c| {
            for i in 0..500u32 {
                let req = i.to_le_bytes();
                let r = c.call_timeout(i, &req, T).unwrap();
                let mut want = req;
                want.reverse();
                assert_eq!((r.type_id(), r.payload()), (i + 1, &want[..]));
            }
        },
    );
}

/// The defaults a duplex connection's senders get, seen in the receiver's
/// mapping: line padding (each 32-byte message starts a cache line), and,
/// without isolation only, early wrap (1000-byte messages exchanged one at
/// a time come back to the start of the ring instead of moving through it).
fn duplex_defaults(b: Backend, isolation: bool) {
    let opts = Options::new()
        .backend(b)
        .duplex(true)
        .capacity(1 << 16)
        .isolation(isolation);
    let addrs = pair(
        "defaults",
        &opts,
        |c| {
            let (Some(mut tx), Some(mut rx)) = c.into_split() else {
                panic!("duplex without two rings")
            };
            let mut addrs = vec![];
            for _ in 0..80 {
                let m = rx.recv_timeout(T).unwrap();
                addrs.push(m.as_ptr() as usize);
                drop(m);
                tx.send_timeout(&[1], 0, T).unwrap();
            }
            addrs
        },
        |c| {
            let (Some(mut tx), Some(mut rx)) = c.into_split() else {
                panic!("duplex without two rings")
            };
            for i in 0..80usize {
                let len = if i < 40 { 32 } else { 1000 };
                tx.send_timeout(&vec![i as u8; len], 0, T).unwrap();
                rx.recv_timeout(T).unwrap();
            }
        },
    );
    for w in addrs[..40].windows(2) {
        assert_eq!(w[1] - w[0], 64, "32-byte messages one per line");
    }
    let big = &addrs[40..];
    let wrapped = big.windows(2).any(|w| w[1] < w[0]);
    // 40 records of 1008 bytes after 2560 fit the 64 KiB ring: only an
    // early wrap goes back.
    assert_eq!(wrapped, !isolation, "{big:x?}");
}

fn uid_refused(b: Backend) {
    let me = rustix::process::geteuid().as_raw();
    let a = addr("uid");
    let strict = Options::new()
        .backend(b)
        .uid_policy(UidPolicy::Uids(vec![me.wrapping_add(1)]));
    let l = listen(a.as_path(), &strict).unwrap();
    let s = std::thread::spawn(move || l.accept_timeout(T).err());
    let c = connect(a.as_path(), &Options::new().backend(b));
    assert_eq!(s.join().unwrap(), Some(Error::PermissionDenied { uid: me }));
    assert!(c.is_err());
}

fn suite(b: Backend) {
    for dir in [
        Direction::ConnectorToListener,
        Direction::ListenerToConnector,
    ] {
        simplex(b, true, dir);
        simplex(b, false, dir);
    }
    duplex(b);
    duplex_defaults(b, true);
    duplex_defaults(b, false);
    uid_refused(b);
}

#[test]
fn memfd_backend_conforms() {
    suite(Backend::Memfd);
}

#[test]
fn posix_shm_backend_conforms() {
    suite(Backend::PosixShm);
}

#[test]
fn the_sides_must_agree_on_the_backend() {
    let a = addr("mismatch");
    let l = listen(a.as_path(), &Options::new().backend(Backend::PosixShm)).unwrap();
    // A seqpacket connector cannot reach a stream listener.
    let e = connect(a.as_path(), &Options::new().backend(Backend::Memfd)).err();
    assert!(matches!(e, Some(Error::Os(_))), "{e:?}");
    drop(l);
}

#[test]
fn long_paths_and_huge_shm_fail_clearly() {
    let long = std::env::temp_dir().join("x".repeat(120));
    let e = listen(long.as_path(), &Options::new()).err();
    assert!(
        matches!(e, Some(Error::PathTooLong { max: 107, .. })),
        "{e:?}"
    );
    let opts = Options::new().backend(Backend::PosixShm).huge_pages(true);
    let a = addr("huge");
    let l = listen(a.as_path(), &opts).unwrap();
    let s = std::thread::spawn(move || l.accept_timeout(T).err());
    let _ = connect(a.as_path(), &Options::new().backend(Backend::PosixShm));
    assert!(matches!(s.join().unwrap(), Some(Error::Unsupported(_))));
}

// ------------------------------------------------- peer death, two processes

const ROLE: &str = "MEMTUBE_CONF_ROLE";
const ADDR: &str = "MEMTUBE_CONF_ADDR";

/// The peer process: re-executed test binary (ignored in normal runs).
#[test]
#[ignore]
fn conf_child_entry() {
    let (Ok(role), Ok(a)) = (std::env::var(ROLE), std::env::var(ADDR)) else {
        return;
    };
    let b = if role == "shm" {
        Backend::PosixShm
    } else {
        Backend::Memfd
    };
    let mut c = connect(a.as_str(), &Options::new().backend(b).capacity(4096)).unwrap();
    let tx = c.sender().unwrap();
    for i in 0u32.. {
        tx.send_timeout(&i.to_le_bytes(), i, T).unwrap();
    }
}

/// SIGKILL of the producing process: every committed message is delivered,
/// in order, then `PeerGone` (not `Closed`), well within the bound.
fn sigkill_of_the_producer(b: Backend, role: &str) {
    use std::process::{Command, Stdio};
    let a = addr("kill");
    let l = listen(a.as_path(), &Options::new().backend(b).capacity(4096)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "conf_child_entry",
            "--exact",
            "--ignored",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(ADDR, &a)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut conn = l.accept_timeout(T).unwrap();
    let rx = conn.receiver().unwrap();
    let mut next = 0u32;
    while next < 3000 {
        let m = rx.recv_timeout(T).unwrap();
        assert_eq!(m.type_id(), next);
        next += 1;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    loop {
        match rx.recv_timeout(T) {
            Ok(m) => {
                assert_eq!(m.type_id(), next);
                next += 1;
            }
            Err(e) => {
                assert_eq!(e, Error::PeerGone);
                break;
            }
        }
    }
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
}

#[test]
fn sigkill_of_the_producer_memfd() {
    sigkill_of_the_producer(Backend::Memfd, "memfd");
}

#[test]
fn sigkill_of_the_producer_posix_shm() {
    sigkill_of_the_producer(Backend::PosixShm, "shm");
}
