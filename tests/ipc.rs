//! Process IPC on Linux, between real processes: the test binary re-executes
//! itself (`child_entry`, ignored in normal runs) to play the peer.
//!
//! Round trips both ways and in duplex mode, several clients in turn,
//! SIGKILL of either side mid-stream, hostile handshakes, socket-file rules,
//! timeouts, and the read-only isolation proof.

#![cfg(target_os = "linux")]

mod common;

use common::{rand, unique_addr};

use memtube::linux::{memfd, Linux};
use memtube::{
    connect, listen, Connection, Direction, Error, HandshakeFailure, Options, PeerState, UidPolicy,
};
use memtube_ring::handshake::{Handshake, HandshakeError, RingDesc, Side, MAX_FDS};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
/// A dead peer must be reported well within this (the design target is
/// 100 ms; this bound only catches hangs on a loaded machine).
const GONE_BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- helpers

fn spawn(role: &str, addr: &str) -> Child {
    common::child_command(role, addr)
        .spawn()
        .expect("spawn child")
}

fn wait_ok(mut c: Child) {
    let st = c.wait().unwrap();
    assert!(st.success(), "child failed: {st:?}");
}

/// Message `i` of a stream: length varies from 8 to 8 + 600; the first 8
/// bytes are `i`, the rest a pattern of `i`, so a torn or mixed message is seen.
fn payload(i: u64, buf: &mut Vec<u8>) {
    let len = 8 + (i.wrapping_mul(37) % 601) as usize;
    buf.clear();
    buf.extend_from_slice(&i.to_le_bytes());
    buf.extend((8..len).map(|k| (i as usize).wrapping_mul(131).wrapping_add(k * 7) as u8));
}

fn check(i: u64, type_id: u32, p: &[u8]) -> Result<(), String> {
    let mut want = Vec::new();
    payload(i, &mut want);
    if type_id != i as u32 || p != &want[..] {
        return Err(format!(
            "message {i} wrong (type {type_id}, len {})",
            p.len()
        ));
    }
    Ok(())
}

/// After a stream: messages of the edge lengths (empty, sub-word, the
/// ring's largest), type ids 9000 + k.
fn edge_lengths(max: u32) -> [usize; 4] {
    [0, 1, 7, max as usize]
}

fn send_edges(conn: &mut Connection) -> Result<(), Error> {
    let tx = conn.sender()?;
    for (k, len) in edge_lengths(tx.max_payload()).into_iter().enumerate() {
        let body: Vec<u8> = (0..len).map(|b| (b * 3 + k) as u8).collect();
        tx.send_timeout(&body, 9000 + k as u32, T)?;
    }
    Ok(())
}

fn recv_edges(conn: &mut Connection) -> Result<(), String> {
    let rx = conn.receiver().map_err(|e| e.to_string())?;
    for (k, len) in edge_lengths(rx.max_payload()).into_iter().enumerate() {
        let m = rx.recv_timeout(T).map_err(|e| e.to_string())?;
        let body: Vec<u8> = (0..len).map(|b| (b * 3 + k) as u8).collect();
        if m.type_id() != 9000 + k as u32 || m.payload() != &body[..] {
            return Err(format!("edge message {k} ({len} bytes) wrong"));
        }
    }
    Ok(())
}

fn opts(direction: Direction, pure_spin: bool) -> Options {
    Options::new()
        .capacity(4096)
        .direction(direction)
        .pure_spin(pure_spin)
}

fn send_stream(conn: &mut Connection, n: Option<u64>) -> Result<u64, Error> {
    let tx = conn.sender()?;
    let mut buf = Vec::new();
    let mut i = 0;
    while n.is_none_or(|n| i < n) {
        payload(i, &mut buf);
        // Write in place, byte by byte, so a kill can land mid-message.
        let mut g = tx.reserve_timeout(buf.len(), T)?;
        for (d, s) in g.iter_mut().zip(&buf) {
            *d = *s;
        }
        g.commit(buf.len(), i as u32);
        i += 1;
    }
    Ok(i)
}

fn recv_stream(conn: &mut Connection, n: Option<u64>) -> Result<u64, String> {
    let rx = conn.receiver().map_err(|e| e.to_string())?;
    let mut i = 0;
    while n.is_none_or(|n| i < n) {
        match rx.recv_timeout(T) {
            Ok(m) => check(i, m.type_id(), &m)?,
            Err(e) if n.is_none() => return Err(format!("after {i} messages: {e}")),
            Err(e) => return Err(e.to_string()),
        }
        i += 1;
    }
    Ok(i)
}

// ------------------------------------------------------- the child process

#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    common::child_main(child);
}

fn child(role: &str, addr: &str) -> Result<(), String> {
    let s = |e: Error| e.to_string();
    match role {
        "recv-1000" => {
            let mut c = connect(addr, &opts(Direction::ListenerToConnector, false)).map_err(s)?;
            recv_stream(&mut c, Some(1000))?;
            recv_edges(&mut c)?;
            let end = c.receiver().map_err(s)?.recv_timeout(T).map(|_| ());
            match end {
                Err(Error::Closed) => Ok(()),
                other => Err(format!("expected Closed, got {other:?}")),
            }
        }
        "send-1000" => {
            let mut c = connect(addr, &opts(Direction::ConnectorToListener, false)).map_err(s)?;
            send_stream(&mut c, Some(1000)).map_err(s)?;
            send_edges(&mut c).map_err(s)
        }
        "send-forever" | "send-forever-spin" => {
            let spin = role.ends_with("spin");
            let mut c = connect(addr, &opts(Direction::ConnectorToListener, spin)).map_err(s)?;
            send_stream(&mut c, None).map_err(s)?;
            Err("the stream ended".into())
        }
        "recv-forever" => {
            let mut c = connect(addr, &opts(Direction::ListenerToConnector, false)).map_err(s)?;
            recv_stream(&mut c, None).map(|_| ())
        }
        "call" | "call-no-isolation" => {
            let o = Options::new()
                .duplex(true)
                .capacity(1 << 16)
                .isolation(role == "call");
            let mut c = connect(addr, &o).map_err(s)?;
            let mut buf = Vec::new();
            for i in 0..CALLS {
                payload(i * 61, &mut buf);
                let r = c.call_timeout(i as u32, &buf, T).map_err(s)?;
                let want: Vec<u8> = buf.iter().map(|b| b ^ 0x5a).collect();
                if r.type_id() != i as u32 + 1 || r.payload() != &want[..] || r.id() != i + 1 {
                    return Err(format!("reply {i} wrong"));
                }
            }
            Ok(())
        }
        "hello" => {
            let mut c = connect(addr, &opts(Direction::ConnectorToListener, false)).map_err(s)?;
            let pid = std::process::id().to_le_bytes();
            c.sender().map_err(s)?.send_timeout(&pid, 1, T).map_err(s)
        }
        // Isolation: write through a read-only mapping of the peer's pages.
        "scribble-consumer-block" => {
            let _c = connect(addr, &opts(Direction::ConnectorToListener, false)).map_err(s)?;
            scribble("memtube-consumer", false)
        }
        "scribble-producer-pages" => {
            let _c = connect(addr, &opts(Direction::ListenerToConnector, false)).map_err(s)?;
            scribble("memtube-ring", false)
        }
        // A hostile producer: garbage into every page it may write.
        "hostile-producer" => {
            let mut c = connect(addr, &opts(Direction::ConnectorToListener, false)).map_err(s)?;
            send_stream(&mut c, Some(20)).map_err(s)?;
            scribble("memtube-ring", true)?;
            // Stay alive a while so the reader faces garbage, not a dead peer.
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        }
        // A hostile consumer: garbage into its own block (released
        // position, state, sleep words), the only pages it may write.
        "hostile-consumer" => {
            let mut c = connect(addr, &opts(Direction::ListenerToConnector, false)).map_err(s)?;
            recv_stream(&mut c, Some(20))?;
            scribble("memtube-consumer", true)?;
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        }
        // Liveness by process: fork a child that inherits the connection's
        // socket and outlives us, tell the test its pid, wait to be killed.
        "fork-holder" => {
            let mut c = connect(addr, &opts(Direction::ConnectorToListener, false)).map_err(s)?;
            let holder = fork_sleeper();
            c.sender()
                .map_err(s)?
                .send_timeout(&holder.to_le_bytes(), 7, T)
                .map_err(s)?;
            std::thread::sleep(Duration::from_secs(60));
            Err("not killed".into())
        }
        // Liveness by process, the other way: a listener that accepts,
        // forks a child that inherits the connection's socket and outlives
        // it, tells the connector the child's pid, and waits to be killed.
        "fork-listener" | "fork-listener-shm" => {
            let l = listen(addr, &fork_listener_opts(role)).map_err(s)?;
            let mut c = l.accept_timeout(T).map_err(s)?;
            let holder = fork_sleeper();
            c.sender()
                .map_err(s)?
                .send_timeout(&holder.to_le_bytes(), 7, T)
                .map_err(s)?;
            std::thread::sleep(Duration::from_secs(60));
            Err("not killed".into())
        }
        // Connections in this (single-threaded) process leave no
        // descriptor behind: neither the connector's watch of the listener
        // process nor one per probe or message.
        "no-fd-leak" => {
            let fds = || std::fs::read_dir("/proc/self/fd").map(|d| d.count());
            let before = fds().map_err(|e| e.to_string())?;
            for round in 0..20 {
                let l = listen(addr, &opts(Direction::ListenerToConnector, false)).map_err(s)?;
                let t = std::thread::spawn({
                    let addr = addr.to_string();
                    move || connect(addr.as_str(), &opts(Direction::ListenerToConnector, false))
                });
                let mut server = l.accept_timeout(T).map_err(s)?;
                let mut client = t.join().map_err(|_| "connect panicked")?.map_err(s)?;
                server
                    .sender()
                    .map_err(s)?
                    .send_timeout(b"x", 1, T)
                    .map_err(s)?;
                for _ in 0..10 {
                    if client.probe_peer() != PeerState::Alive {
                        return Err("peer not alive".into());
                    }
                }
                client.receiver().map_err(s)?.recv_timeout(T).map_err(s)?;
                drop(server);
                drop(l);
                // The close byte arrives with the sender's identity attached.
                if client.probe_peer() != PeerState::Closed {
                    return Err(format!("round {round}: not closed"));
                }
                drop(client);
            }
            let after = fds().map_err(|e| e.to_string())?;
            if after != before {
                return Err(format!("{before} descriptors before, {after} after"));
            }
            Ok(())
        }
        "stress-send" => {
            let mut c = connect(addr, &opts(Direction::ConnectorToListener, false)).map_err(s)?;
            let tx = c.sender().map_err(s)?;
            let max = tx.max_payload() as usize;
            let mut buf = Vec::new();
            for i in 0..stress_count() {
                stress_message(i, max, &mut buf);
                let ty = fnv32(&buf);
                // Every way in: copying sends, grants filled in place, and
                // staged batches published every 16.
                match i % 3 {
                    0 => tx.send_timeout(&buf, ty, T).map_err(s)?,
                    1 => {
                        let mut g = tx.reserve_timeout(buf.len(), T).map_err(s)?;
                        g.copy_from_slice(&buf);
                        g.commit(buf.len(), ty);
                    }
                    _ => {
                        if tx.send_staged(&buf, ty).is_err() {
                            tx.publish();
                            tx.wait_for_room(buf.len(), Some(T)).map_err(s)?;
                            tx.send_staged(&buf, ty).map_err(s)?;
                        }
                        if i % 16 == 2 {
                            tx.publish();
                        }
                    }
                }
            }
            tx.publish();
            Ok(())
        }
        _ => Err(format!("unknown role {role}")),
    }
}

/// Find this process's mapping of the memfd `name` with the given
/// writability in /proc/self/maps and write garbage through it. Returns
/// only if the write did not fault.
fn scribble(name: &str, writable: bool) -> Result<(), String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let want = if writable { "rw-s" } else { "r--s" };
    let line = maps
        .lines()
        .find(|l| l.contains(&format!("/memfd:{name} ")) && l.contains(want))
        .ok_or(format!("no {want} mapping of {name}:\n{maps}"))?;
    let range = line.split_whitespace().next().unwrap();
    let (a, b) = range.split_once('-').unwrap();
    let start = usize::from_str_radix(a, 16).unwrap();
    let end = usize::from_str_radix(b, 16).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for off in (0..end - start).step_by(8) {
        let p = (start + off) as *mut u64;
        // SAFETY: `p` is 8-aligned inside a mapping of this process that
        // /proc/self/maps lists; writing a read-only one must fault (the
        // point of the test), writing a writable one is the hostile peer's
        // garbage, which ring-core must survive in the other process.
        unsafe { p.write_volatile(rand(&mut x)) };
    }
    Ok(())
}

// ------------------------------------------------------------- round trips

#[test]
fn round_trips_both_directions() {
    for (dir, role) in [
        (Direction::ListenerToConnector, "recv-1000"),
        (Direction::ConnectorToListener, "send-1000"),
    ] {
        let addr = unique_addr("rt");
        let l = listen(addr.as_str(), &opts(dir, false)).unwrap();
        let child = spawn(role, &addr);
        let mut c = l.accept_timeout(T).unwrap();
        assert_eq!(c.peer_cred().pid as u32, child.id());
        match dir {
            Direction::ListenerToConnector => {
                assert_eq!(send_stream(&mut c, Some(1000)), Ok(1000));
                send_edges(&mut c).unwrap();
                drop(c); // clean close: the child expects Closed
            }
            Direction::ConnectorToListener => {
                assert_eq!(recv_stream(&mut c, Some(1000)), Ok(1000));
                recv_edges(&mut c).unwrap();
                // The child dropped its handles cleanly: Closed, not PeerGone.
                let r = c.receiver().unwrap().recv_timeout(T).map(|_| ());
                assert_eq!(r, Err(Error::Closed));
            }
        }
        wait_ok(child);
    }
}

/// Calls the "call" roles make, of 8 to 608 bytes (`payload`): about 14
/// laps of a 64 KiB ring, or, without isolation (line padding and early
/// wrap on by default), by estimate some 200 early wraps between two
/// processes.
const CALLS: u64 = 3000;

fn duplex_call_and_serve(isolation: bool) {
    let addr = unique_addr("duplex");
    let o = Options::new()
        .duplex(true)
        .capacity(1 << 16)
        .isolation(isolation);
    let l = listen(addr.as_str(), &o).unwrap();
    let role = if isolation {
        "call"
    } else {
        "call-no-isolation"
    };
    let child = spawn(role, &addr);
    let mut c = l.accept_timeout(T).unwrap();
    let mut served = 0;
    let r = c.serve(|ty, req, reply| {
        served += 1;
        reply.extend(req.iter().map(|b| b ^ 0x5a));
        ty + 1
    });
    assert_eq!(r, Ok(()));
    assert_eq!(served, CALLS);
    wait_ok(child);
}

#[test]
fn duplex_call_and_serve_isolated() {
    duplex_call_and_serve(true);
}

#[test]
fn duplex_call_and_serve_without_isolation() {
    duplex_call_and_serve(false);
}

#[test]
fn listener_serves_several_clients_in_turn() {
    let addr = unique_addr("many");
    let base = opts(Direction::ConnectorToListener, false);
    let l = listen(addr.as_str(), &base).unwrap();
    // Each connection has its own rings; per-connection options cover the
    // single-region layout (isolation off), mlock and a bigger ring.
    let per_client = [
        base.clone(),
        base.clone().isolation(false),
        base.clone().mlock(true).capacity(1 << 20),
        base.clone().isolation(false).pure_spin(true),
    ];
    for o in &per_client {
        let child = spawn("hello", &addr);
        let mut c = l.accept_with(o, Some(T)).unwrap();
        assert_eq!(
            c.receiver().unwrap().max_payload(),
            o.get_capacity() / 2 - 8
        );
        let m = c.receiver().unwrap().recv_timeout(T).unwrap();
        assert_eq!(&m[..], &child.id().to_le_bytes());
        drop(m);
        wait_ok(child);
    }
}

// ------------------------------------------------------------------ deaths

#[test]
fn sigkill_of_the_producer_loses_nothing_committed() {
    let mut seed = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    for round in 0..10 {
        let spin = round % 2 == 1;
        let addr = unique_addr("killp");
        let l = listen(addr.as_str(), &opts(Direction::ConnectorToListener, spin)).unwrap();
        let mut child = spawn(
            if spin {
                "send-forever-spin"
            } else {
                "send-forever"
            },
            &addr,
        );
        let mut c = l.accept_timeout(T).unwrap();
        let rx = c.receiver().unwrap();
        let kill_at = 1 + rand(&mut seed) % 3000;
        let mut i = 0u64;
        let mut killed = None;
        let end = loop {
            if i == kill_at {
                child.kill().unwrap();
                killed = Some(Instant::now());
            }
            match rx.recv_timeout(T) {
                Ok(m) => check(i, m.type_id(), &m).unwrap(),
                Err(e) => break e,
            }
            i += 1;
        };
        let waited = killed.expect("killed before the stream ended").elapsed();
        eprintln!(
            "round {round} (pure spin {spin}): {i} messages, PeerGone {waited:?} after SIGKILL"
        );
        assert_eq!(end, Error::PeerGone, "round {round}: after {i} messages");
        assert!(!rx.is_peer_alive());
        assert!(waited < GONE_BOUND, "PeerGone after {waited:?}");
        assert!(i >= kill_at);
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }
}

#[test]
fn sigkill_of_the_consumer_unblocks_the_producer() {
    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    for _ in 0..6 {
        let addr = unique_addr("killc");
        let l = listen(addr.as_str(), &opts(Direction::ListenerToConnector, false)).unwrap();
        let mut child = spawn("recv-forever", &addr);
        let mut c = l.accept_timeout(T).unwrap();
        let kill_at = 1 + rand(&mut seed) % 3000;
        assert_eq!(send_stream(&mut c, Some(kill_at)), Ok(kill_at));
        child.kill().unwrap();
        let killed = Instant::now();
        // Keep sending: the ring fills, then the blocked send notices.
        let end = send_stream(&mut c, None).unwrap_err();
        assert_eq!(end, Error::PeerGone);
        assert!(killed.elapsed() < GONE_BOUND);
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }
}

/// A non-blocking sender polling a dead peer learns of the death: `Full`
/// (never `Ok`) while the ring stays full, then `PeerGone` within
/// `PROBE_EVERY` polls, and `PeerGone` at once from then on.
#[test]
fn try_send_to_a_dead_peer_reports_peer_gone() {
    let addr = unique_addr("killpoll");
    let l = listen(addr.as_str(), &opts(Direction::ListenerToConnector, false)).unwrap();
    let mut child = spawn("recv-forever", &addr);
    let mut c = l.accept_timeout(T).unwrap();
    assert_eq!(send_stream(&mut c, Some(100)), Ok(100));
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let tx = c.sender().unwrap();
    let started = Instant::now();
    let mut fulls = 0u32;
    let end = loop {
        match tx.try_send(&[7; 64], 1) {
            Ok(()) => assert_eq!(fulls, 0, "no Ok after the ring was found full"),
            Err(Error::Full) => fulls += 1,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < GONE_BOUND,
            "no PeerGone after {fulls} Full"
        );
    };
    assert_eq!(end, Error::PeerGone);
    assert!(fulls <= memtube::PROBE_EVERY, "{fulls} Full results");
    assert_eq!(tx.try_send(&[7; 64], 1), Err(Error::PeerGone));
    assert_eq!(tx.send(&[7; 64], 1), Err(Error::PeerGone));
}

#[test]
fn hostile_producer_gives_errors_not_crashes() {
    let addr = unique_addr("hostile");
    let l = listen(addr.as_str(), &opts(Direction::ConnectorToListener, false)).unwrap();
    let child = spawn("hostile-producer", &addr);
    let mut c = l.accept_timeout(T).unwrap();
    let rx = c.receiver().unwrap();
    // Read until an error; garbage may pass as well-formed messages, but
    // every call returns, and the end is an error value.
    let started = Instant::now();
    let mut n = 0;
    let end = loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1_000_000, "unbounded stream of garbage");
    };
    eprintln!("hostile producer: {n} messages, then {end:?}");
    assert!(
        matches!(
            end,
            Error::Ring(_) | Error::PeerGone | Error::Closed | Error::Timeout
        ),
        "{end:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    wait_ok(child);
}

#[test]
fn hostile_consumer_gives_errors_not_crashes() {
    let addr = unique_addr("hostile-c");
    let l = listen(addr.as_str(), &opts(Direction::ListenerToConnector, false)).unwrap();
    let child = spawn("hostile-consumer", &addr);
    let mut c = l.accept_timeout(T).unwrap();
    let started = Instant::now();
    // Send until an error: the garbage released position is refused
    // (Corrupt), or the peer's close or exit ends the stream.
    let end = send_stream(&mut c, None).unwrap_err();
    eprintln!("hostile consumer: {end:?} after {:?}", started.elapsed());
    assert!(
        matches!(end, Error::Ring(_) | Error::PeerGone | Error::Closed),
        "{end:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    wait_ok(child);
}

// --------------------------------------------------------------- isolation

#[test]
fn writes_through_the_peers_read_only_pages_fault() {
    for role in ["scribble-consumer-block", "scribble-producer-pages"] {
        let addr = unique_addr("iso");
        let dir = if role == "scribble-consumer-block" {
            Direction::ConnectorToListener
        } else {
            Direction::ListenerToConnector
        };
        let l = listen(addr.as_str(), &opts(dir, false)).unwrap();
        let mut child = spawn(role, &addr);
        let _c = l.accept_timeout(T).unwrap();
        let st = child.wait().unwrap();
        assert_eq!(
            st.signal(),
            Some(11),
            "{role}: expected SIGSEGV, got {st:?}"
        );
    }
}

// ------------------------------------------------------ hostile handshakes

/// A new close-on-exec Unix `SOCK_SEQPACKET` socket (memtube's socket type
/// on Linux), for the tests that play a listener's part by hand.
fn seqpacket_socket() -> OwnedFd {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

/// A fake listener at `addr`: accepts one connection and hands it to `f`,
/// then holds it until the connector closes.
fn fake_listener(
    addr: &str,
    f: impl FnOnce(BorrowedFd<'_>) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    use rustix::net::*;
    let s = seqpacket_socket();
    let name = addr.strip_prefix('@').unwrap();
    bind(
        &s,
        &SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap(),
    )
    .unwrap();
    listen(&s, 8).unwrap();
    std::thread::spawn(move || {
        let c = accept(&s).unwrap();
        f(c.as_fd());
        let mut b = [0u8; 16];
        let _ = recv(&c, &mut b[..], RecvFlags::empty());
    })
}

fn sealed_memfd(len: u64) -> OwnedFd {
    let fd = memfd::create(c"fake", len, false).unwrap();
    memfd::seal(fd.as_fd(), false).unwrap();
    fd
}

fn good_handshake() -> (Handshake, Vec<OwnedFd>) {
    let d = RingDesc::split(4096, Side::Receiver, 0, 1).unwrap();
    let fds = vec![sealed_memfd(d.main_len), sealed_memfd(d.consumer_len)];
    (Handshake::simplex(d, false), fds)
}

fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[OwnedFd]) {
    let b: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    memtube_posix::handshake::send_raw::<Linux>(sock, bytes, &b).unwrap();
}

fn try_forged(forge: impl FnOnce(BorrowedFd<'_>) + Send + 'static) -> Error {
    let addr = unique_addr("forged");
    let t = fake_listener(&addr, forge);
    let o = opts(Direction::ConnectorToListener, false).handshake_timeout(Duration::from_secs(10));
    let e = connect(addr.as_str(), &o).unwrap_err();
    t.join().unwrap();
    e
}

fn fmt(e: HandshakeError) -> Error {
    Error::Handshake(HandshakeFailure::Format(e))
}

#[test]
fn bad_handshakes_are_refused() {
    // Wrong magic, wrong version, truncated.
    let e = try_forged(|s| {
        let (hs, fds) = good_handshake();
        let mut b = hs.encode();
        b[0] = b'X';
        send(s, &b, &fds);
    });
    assert_eq!(e, fmt(HandshakeError::BadMagic));
    let e = try_forged(|s| {
        let (hs, fds) = good_handshake();
        let mut b = hs.encode();
        b[8] = 2;
        send(s, &b, &fds);
    });
    assert_eq!(e, fmt(HandshakeError::Version(2)));
    let e = try_forged(|s| {
        let (hs, fds) = good_handshake();
        send(s, &hs.encode()[..40], &fds);
    });
    assert_eq!(e, fmt(HandshakeError::Length(40)));
    // Too few, too many, far too many descriptors.
    let e = try_forged(|s| {
        let (hs, fds) = good_handshake();
        send(s, &hs.encode(), &fds[..1]);
    });
    assert_eq!(
        e,
        Error::Handshake(HandshakeFailure::FdCount {
            expected: 2,
            got: 1
        })
    );
    let e = try_forged(|s| {
        let (hs, mut fds) = good_handshake();
        fds.push(sealed_memfd(4096));
        send(s, &hs.encode(), &fds);
    });
    assert_eq!(
        e,
        Error::Handshake(HandshakeFailure::FdCount {
            expected: 2,
            got: 3
        })
    );
    let e = try_forged(|s| {
        let (hs, mut fds) = good_handshake();
        // More than the room the receiver offers (the most a handshake
        // names, plus four).
        for _ in 0..20 {
            fds.push(sealed_memfd(4096));
        }
        send(s, &hs.encode(), &fds);
    });
    if recvmsg_reports_ctrunc() {
        assert_eq!(e, Error::Handshake(HandshakeFailure::ControlTruncated));
    } else {
        // Emulated: the descriptors that fit, no MSG_CTRUNC. Still refused,
        // for the count.
        assert!(
            matches!(
                e,
                Error::Handshake(HandshakeFailure::FdCount { expected: 2, got })
                    if got > MAX_FDS && got < 22
            ),
            "{e:?}"
        );
    }
    // A descriptor that is not a memfd (a socket).
    let e = try_forged(|s| {
        let (hs, mut fds) = good_handshake();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        fds[0] = a.into();
        send(s, &hs.encode(), &fds);
    });
    assert!(
        matches!(e, Error::Handshake(HandshakeFailure::NotMemfd(_))),
        "{e:?}"
    );
    // A memfd smaller than claimed.
    let e = try_forged(|s| {
        let (hs, mut fds) = good_handshake();
        fds[0] = sealed_memfd(4096);
        send(s, &hs.encode(), &fds);
    });
    assert_eq!(
        e,
        Error::Handshake(HandshakeFailure::Size {
            claimed: 640 + 4096,
            actual: 4096
        })
    );
    // A memfd without seals.
    let e = try_forged(|s| {
        let (hs, mut fds) = good_handshake();
        let fd = rustix::fs::memfd_create(c"unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 640 + 4096).unwrap();
        fds[0] = fd;
        send(s, &hs.encode(), &fds);
    });
    assert_eq!(e, Error::Handshake(HandshakeFailure::MissingSeals));
    // Everything right but the region was never initialized: ring-core refuses it.
    let e = try_forged(|s| {
        let (hs, fds) = good_handshake();
        send(s, &hs.encode(), &fds);
    });
    assert_eq!(
        e,
        Error::Handshake(HandshakeFailure::Attach(memtube_ring::Error::BadMagic))
    );
    // The other direction than ours.
    let e = try_forged(|s| {
        let (mut hs, fds) = good_handshake();
        hs.rings[0].producer = Side::Sender;
        send(s, &hs.encode(), &fds);
    });
    assert_eq!(e, Error::Handshake(HandshakeFailure::Mismatch("direction")));
}

#[test]
fn uid_policy_refusals() {
    let me = rustix::process::geteuid().as_raw();
    let other = UidPolicy::Uids(vec![me.wrapping_add(1)]);
    // The listener refuses us: its accept says why, our connect sees a refusal.
    let addr = unique_addr("uid");
    let l = listen(addr.as_str(), &Options::new().uid_policy(other.clone())).unwrap();
    let t = std::thread::spawn(move || l.accept_timeout(T).map(|_| ()));
    let e = connect(addr.as_str(), &Options::new()).unwrap_err();
    assert_eq!(e, Error::Handshake(HandshakeFailure::PeerClosed));
    assert_eq!(t.join().unwrap(), Err(Error::PermissionDenied { uid: me }));
    // We refuse the listener.
    let addr = unique_addr("uid2");
    let l = listen(addr.as_str(), &Options::new()).unwrap();
    // (Our refusal may close the socket before the listener accepts it; then
    // `accept` skips it and times out.)
    let t = std::thread::spawn(move || l.accept_timeout(Duration::from_secs(1)).map(|_| ()));
    let e = connect(addr.as_str(), &Options::new().uid_policy(other)).unwrap_err();
    assert_eq!(e, Error::PermissionDenied { uid: me });
    assert!(t.join().unwrap().is_err());
    // A policy naming our uid, and Any, let us in.
    for p in [UidPolicy::Uids(vec![me]), UidPolicy::Any] {
        let addr = unique_addr("uid3");
        let o = Options::new().uid_policy(p);
        let l = listen(addr.as_str(), &o).unwrap();
        let t = std::thread::spawn(move || l.accept_timeout(T).map(|_| ()));
        connect(addr.as_str(), &o).unwrap();
        t.join().unwrap().unwrap();
    }
}

// ---------------------------------------------------- addresses, timeouts

fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("memtube-{}-{tag}.sock", std::process::id()))
}

/// Leave a stale socket file at `path`: bound, never listening, closed.
/// (A socket that once listened can stay alive for a moment in a child
/// that another test is forking, so it would still look live.)
fn make_stale_socket(path: &std::path::Path) {
    use rustix::net::{bind, SocketAddrUnix};
    let s = seqpacket_socket();
    bind(&s, &SocketAddrUnix::new(path).unwrap()).unwrap();
}

#[test]
fn path_sockets_stale_live_and_mode() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = temp_path("stale");
    let _ = std::fs::remove_file(&path);
    // A stale socket file: bound, then its owner went away without unlinking.
    make_stale_socket(&path);
    assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
    let o = opts(Direction::ConnectorToListener, false);
    let l = listen(path.as_path(), &o).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // A live listener's socket is never stolen, and keeps working.
    assert_eq!(listen(path.as_path(), &o).unwrap_err(), Error::AddrInUse);
    let t = std::thread::spawn(move || {
        let mut c = l.accept_timeout(T)?;
        let m = c.receiver()?.recv_timeout(T)?;
        assert_eq!(&m[..], b"still here");
        Ok::<_, Error>(l)
    });
    let mut c = connect(path.as_path(), &o).unwrap();
    c.sender()
        .unwrap()
        .send_timeout(b"still here", 0, T)
        .unwrap();
    let l = t.join().unwrap().unwrap();
    // Its lock file exists while it lives; dropping the listener removes
    // both files.
    let lock = path.with_extension("sock.lock");
    assert!(lock.exists());
    drop(l);
    assert!(!path.exists());
    assert!(!lock.exists());
    // A file that is not a socket is never removed, and the error says so.
    std::fs::write(&path, b"keep me").unwrap();
    let e = listen(path.as_path(), &o).unwrap_err();
    assert_eq!(e, Error::NotASocket(path.clone()));
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    std::fs::remove_file(&path).unwrap();
    // Nor is a symbolic link, even one to a stale socket: it is not followed.
    let target = path.with_extension("target.sock");
    drop(std::os::unix::net::UnixListener::bind(&target).unwrap()); // stale: nobody listens
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert_eq!(
        listen(path.as_path(), &o).unwrap_err(),
        Error::NotASocket(path.clone())
    );
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(target.exists());
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn racing_listeners_on_one_path_never_steal_each_others_socket() {
    let path = temp_path("race");
    let o = opts(Direction::ConnectorToListener, false);
    for round in 0..30 {
        let _ = std::fs::remove_file(&path);
        // Every other round starts from a stale socket file.
        if round % 2 == 1 {
            make_stale_socket(&path);
        }
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (b, p, o) = (barrier.clone(), path.clone(), o.clone());
                std::thread::spawn(move || {
                    b.wait();
                    listen(p.as_path(), &o)
                })
            })
            .collect();
        let winners: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter_map(|r| match r {
                Ok(l) => Some(l),
                Err(e) => {
                    assert_eq!(e, Error::AddrInUse, "round {round}");
                    None
                }
            })
            .collect();
        // Exactly one listener, and it is reachable at the path.
        assert_eq!(winners.len(), 1, "round {round}");
        let l = winners.into_iter().next().unwrap();
        let t = std::thread::spawn(move || l.accept_timeout(T).map(|_| l));
        connect(path.as_path(), &o).unwrap();
        drop(t.join().unwrap().unwrap());
        assert!(!path.exists());
    }
}

#[test]
fn connect_without_listener_fails_at_once() {
    let o = Options::new();
    let addr = unique_addr("nobody");
    let e = connect(addr.as_str(), &o).unwrap_err();
    assert_eq!(
        e,
        Error::NoListener {
            addr: addr.clone(),
            errno: rustix::io::Errno::CONNREFUSED
        }
    );
    assert!(
        e.to_string().contains(&addr),
        "the error names the address: {e}"
    );
    let path = temp_path("missing");
    let e = connect(path.as_path(), &o).unwrap_err();
    assert_eq!(
        e,
        Error::NoListener {
            addr: path.display().to_string(),
            errno: rustix::io::Errno::NOENT
        }
    );
    assert!(
        std::error::Error::source(&e).is_some(),
        "the errno is the source"
    );
}

#[test]
fn blocking_calls_time_out_with_a_live_peer() {
    // Timeouts shorter than one liveness slice, zero, and spanning several
    // slices: each blocking call returns Timeout, never before its time,
    // while the peer (here: the other end, in this process) stays alive.
    let waits = [0u64, 20, 120].map(Duration::from_millis);
    for pure_spin in [false, true] {
        let addr = unique_addr("timeouts");
        let o = opts(Direction::ConnectorToListener, pure_spin);
        let l = listen(addr.as_str(), &o).unwrap();
        let acceptor = std::thread::spawn(move || l.accept_timeout(T));
        let mut out = connect(addr.as_str(), &o).unwrap();
        let mut inc = acceptor.join().unwrap().unwrap();
        let (tx, rx) = (out.sender().unwrap(), inc.receiver().unwrap());
        for &w in &waits {
            let start = Instant::now();
            assert_eq!(rx.recv_timeout(w).map(|_| ()), Err(Error::Timeout));
            let took = start.elapsed();
            assert!(took >= w, "recv: Timeout after {took:?} < {w:?}");
            assert!(took < w + GONE_BOUND, "recv: Timeout after {took:?}");
        }
        let body = [7u8; 100];
        let mut sent = 0u32;
        while tx.try_send(&body, sent).is_ok() {
            sent += 1;
        }
        assert!(sent > 0);
        for &w in &waits {
            let start = Instant::now();
            assert_eq!(tx.send_timeout(&body, sent, w), Err(Error::Timeout));
            let took = start.elapsed();
            assert!(took >= w, "send: Timeout after {took:?} < {w:?}");
            assert!(took < w + GONE_BOUND, "send: Timeout after {took:?}");
        }
        // Nothing was lost or duplicated by the timed-out calls, and room
        // made by the receiver lets the blocked send through.
        for i in 0..sent {
            let m = rx.recv_timeout(T).unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &body[..]));
        }
        tx.send_timeout(&body, sent, T).unwrap();
        assert_eq!(rx.recv_timeout(T).unwrap().type_id(), sent);
    }
}

#[test]
fn silent_listener_times_out_the_connector() {
    let o = Options::new().handshake_timeout(Duration::from_millis(300));
    // A listener that holds the connection open and silent: Timeout.
    let addr = unique_addr("silent2");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = fake_listener(&addr, move |_| {
        let _ = rx.recv();
    });
    let started = Instant::now();
    let e = connect(addr.as_str(), &o).unwrap_err();
    assert_eq!(e, Error::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    tx.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn accept_times_out_without_clients() {
    let addr = unique_addr("lonely");
    let l = listen(addr.as_str(), &Options::new()).unwrap();
    let started = Instant::now();
    assert_eq!(
        l.accept_timeout(Duration::from_millis(50)).unwrap_err(),
        Error::Timeout
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// `VmHWM` of this process, in KiB, after resetting it to the current RSS
/// (`clear_refs` 5) when `reset`.
fn peak_rss_kib(reset: bool) -> u64 {
    if reset {
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
    }
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hostile_listener_cannot_make_the_connector_map_a_huge_ring() {
    // A claim above the connector's bound (default 64 MiB) is refused
    // before anything is mapped; the sparse memfd costs the forger nothing.
    let e = try_forged(|s| {
        let d = RingDesc::split(1 << 30, Side::Receiver, 0, 1).unwrap();
        let fds = vec![sealed_memfd(d.main_len), sealed_memfd(d.consumer_len)];
        send(s, &Handshake::simplex(d, false).encode(), &fds);
    });
    assert_eq!(
        e,
        Error::Handshake(HandshakeFailure::CapacityTooLarge {
            claimed: 1 << 30,
            max: 64 << 20
        })
    );
    // At the bound, a region whose header is invalid is refused after
    // reading its header page, without faulting in the other 64 MiB.
    let before = peak_rss_kib(true);
    let e = try_forged(|s| {
        let d = RingDesc::split(64 << 20, Side::Receiver, 0, 1).unwrap();
        let fds = vec![sealed_memfd(d.main_len), sealed_memfd(d.consumer_len)];
        send(s, &Handshake::simplex(d, false).encode(), &fds);
    });
    let grew = peak_rss_kib(false).saturating_sub(before);
    assert_eq!(
        e,
        Error::Handshake(HandshakeFailure::Attach(memtube_ring::Error::BadMagic))
    );
    assert!(grew < 16 << 10, "peak RSS grew by {grew} KiB");
    // A connector that expects big rings says so.
    let addr = unique_addr("big");
    let l = listen(
        addr.as_str(),
        &Options::new()
            .capacity(128 << 20)
            .uid_policy(UidPolicy::Any),
    )
    .unwrap();
    let t = std::thread::spawn(move || {
        let refused = l.accept_timeout(Duration::from_secs(10)).is_err();
        (refused, l.accept_timeout(Duration::from_secs(10)).map(drop))
    });
    let small = connect(addr.as_str(), &Options::new()).unwrap_err();
    assert!(
        matches!(
            small,
            Error::Handshake(HandshakeFailure::CapacityTooLarge { claimed, .. }) if claimed == 128 << 20
        ),
        "{small:?}"
    );
    let big = connect(addr.as_str(), &Options::new().max_capacity(128 << 20)).unwrap();
    assert_eq!(big.into_split().0.unwrap().max_payload(), (64 << 20) - 8);
    let (refused, accepted) = t.join().unwrap();
    assert!(refused);
    accepted.unwrap();
}

#[test]
fn listen_never_takes_over_a_lock_file_it_did_not_make() {
    let path = temp_path("lockfile");
    let lock = path.with_extension("sock.lock");
    let _ = std::fs::remove_file(&path);
    let o = opts(Direction::ConnectorToListener, false);
    // A user's file at `<path>.lock`: refused, left exactly as it was.
    std::fs::write(&lock, b"my notes").unwrap();
    let e = listen(path.as_path(), &o).unwrap_err();
    assert_eq!(e, Error::ForeignLockFile(lock.clone()));
    assert!(e.to_string().contains("not made by memtube"), "{e}");
    assert_eq!(std::fs::read(&lock).unwrap(), b"my notes");
    assert!(!path.exists());
    // Nor an empty file (memtube's appear with their mark), nor a directory.
    std::fs::write(&lock, b"").unwrap();
    assert_eq!(
        listen(path.as_path(), &o).unwrap_err(),
        Error::ForeignLockFile(lock.clone())
    );
    assert_eq!(std::fs::read(&lock).unwrap(), b"");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    assert_eq!(
        listen(path.as_path(), &o).unwrap_err(),
        Error::ForeignLockFile(lock.clone())
    );
    std::fs::remove_dir(&lock).unwrap();
    std::fs::write(&lock, b"my notes").unwrap();
    // A symbolic link there is not followed, nor removed.
    std::fs::remove_file(&lock).unwrap();
    let target = path.with_extension("target");
    std::fs::write(&target, b"target").unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    assert_eq!(
        listen(path.as_path(), &o).unwrap_err(),
        Error::ForeignLockFile(lock.clone())
    );
    assert!(std::fs::symlink_metadata(&lock).unwrap().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"target");
    std::fs::remove_file(&lock).unwrap();
    std::fs::remove_file(&target).unwrap();
    // A stale memtube lock file (its listener died without removing it) is
    // reused, and removed with the listener.
    let l = listen(path.as_path(), &o).unwrap();
    let magic = std::fs::read(&lock).unwrap();
    drop(l);
    assert!(!lock.exists());
    std::fs::write(&lock, &magic).unwrap();
    let l = listen(path.as_path(), &o).unwrap();
    drop(l);
    assert!(!lock.exists());
    assert!(!path.exists());
}

/// Fork; the child runs `f` then exits with status 0 (`_exit`: no
/// destructors, no atexit). Returns the child's wait status.
fn fork_child(f: impl FnOnce()) -> i32 {
    // SAFETY: the child only runs `f` (drops and ring calls: getpid, munmap,
    // free, whose glibc implementations are fork-safe) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

// ---------------------------------------------- emulated platforms (qemu-user)
//
// CI also runs this file for aarch64 under qemu-user (docs/verification.md).
// qemu-user emulates two kernel behaviours these tests rely on differently
// from every Linux kernel, on any architecture. Each is probed here with raw
// libc calls (independent of memtube and of rustix, which memtube uses), and
// a test accepts the emulated behaviour only where the probe shows it: on a
// real kernel, aarch64 included, the probe passes and the full check runs. On
// native x86_64, where developers and CI's main run work, the probes are not
// even consulted: the checks there are exactly the strict ones.

/// Whether `recvmsg` reports `MSG_CTRUNC` when more `SCM_RIGHTS` descriptors
/// arrive than the control buffer holds (unix(7): the kernel installs what
/// fits, closes the rest and sets the flag).
///
/// qemu-user (7.2, linux-user/syscall.c `do_sendrecvmsg_locked`) does not: it
/// receives into a host buffer twice the guest's size, so the host kernel
/// truncates nothing; `host_to_target_cmsg` copies the descriptors that fit
/// into the guest's buffer and sets `MSG_CTRUNC` in the guest's flags, which
/// the caller then overwrites with the host's flags. The guest gets as many
/// descriptors as fit, no flag, and the rest stay open in the process unseen.
fn recvmsg_reports_ctrunc() -> bool {
    if cfg!(target_arch = "x86_64") {
        return true;
    }
    const SENT: usize = 12;
    const ROOM: usize = 10;
    let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let fd = a.as_raw_fd();
    let fds = [fd; SENT];
    // u64 words: the control buffers must be aligned for `cmsghdr`.
    let mut sbuf = [0u64; 16];
    let mut rbuf = [0u64; 16];
    let mut byte = [0u8; 1];
    // SAFETY: CMSG_SPACE only computes a size.
    let (sspace, rspace) = unsafe {
        (
            libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) as usize,
            libc::CMSG_SPACE((ROOM * std::mem::size_of::<i32>()) as u32) as usize,
        )
    };
    assert!(sspace <= std::mem::size_of_val(&sbuf) && rspace <= std::mem::size_of_val(&rbuf));
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = sbuf.as_mut_ptr().cast();
    m.msg_controllen = sspace as _;
    // SAFETY: `m` describes `sbuf`, which holds `sspace` bytes, so the first
    // header and its data (CMSG_LEN(size_of_val(&fds)) <= sspace) are inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&m);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), SENT);
    }
    // SAFETY: `m` points at live buffers of the lengths it states.
    assert_eq!(unsafe { libc::sendmsg(fd, &m, 0) }, 1);
    m.msg_control = rbuf.as_mut_ptr().cast();
    m.msg_controllen = rspace as _;
    // SAFETY: as above, with `rbuf` of `rspace` bytes.
    assert_eq!(unsafe { libc::recvmsg(b.as_raw_fd(), &mut m, 0) }, 1);
    // Close what arrived (the copies that were delivered are ours).
    // SAFETY: the kernel wrote well-formed headers within `msg_controllen`;
    // each SCM_RIGHTS payload is descriptors just installed in this process.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p: *const i32 = libc::CMSG_DATA(c).cast();
                for i in 0..n {
                    libc::close(p.add(i).read_unaligned());
                }
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
    }
    let reported = m.msg_flags & libc::MSG_CTRUNC != 0;
    if !reported {
        eprintln!(
            "note: recvmsg does not report MSG_CTRUNC here (qemu-user's SCM_RIGHTS \
             translation); accepting what memtube can see instead"
        );
    }
    reported
}

/// Whether `madvise(MADV_DONTFORK)` keeps a shared mapping out of a forked
/// child: the child's write faults. Every Linux kernel does; qemu-user 7.2
/// ignores `madvise` entirely (returns 0, does nothing), so the child shares
/// the mapping and its write lands in its parent's memory.
fn madv_dontfork_is_honoured() -> bool {
    if cfg!(target_arch = "x86_64") {
        return true;
    }
    // SAFETY: a fresh anonymous shared mapping of one page, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: `p` is the page just mapped.
    assert_eq!(unsafe { libc::madvise(p, 4096, libc::MADV_DONTFORK) }, 0);
    let addr = p as usize;
    let status = fork_child(move || {
        // SAFETY: in the child, a write to the page, which is either absent
        // (the fault this probes for) or the shared page itself.
        unsafe { (addr as *mut u8).write_volatile(1) }
    });
    // SAFETY: the page mapped above, no longer used.
    unsafe { libc::munmap(p, 4096) };
    let honoured = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV;
    if !honoured {
        eprintln!(
            "note: madvise(MADV_DONTFORK) is not honoured here (qemu-user ignores \
             madvise); the forked-writer check is skipped"
        );
    }
    honoured
}

#[test]
fn a_forked_child_never_touches_its_parents_connection() {
    let path = temp_path("fork");
    let _ = std::fs::remove_file(&path);
    let o = opts(Direction::ConnectorToListener, false);
    let l = listen(path.as_path(), &o).unwrap();
    let t = std::thread::spawn({
        let (o, path) = (o.clone(), path.clone());
        move || connect(path.as_path(), &o).unwrap()
    });
    let mut server = l.accept_timeout(T).unwrap();
    let mut client = t.join().unwrap();
    client.sender().unwrap().send(b"one", 1).unwrap();
    // A child that drops the copies it inherited: no close byte, no ring
    // role closed, no file removed, nothing unmapped in its parent.
    let status = fork_child(|| {
        // SAFETY: in the child only, which never uses the originals again
        // (it exits right after): each value is dropped exactly once here.
        unsafe {
            drop(std::ptr::read(&client));
            drop(std::ptr::read(&server));
            drop(std::ptr::read(&l));
        }
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}"
    );
    // A child that sends on its inherited copy: the ring is not mapped in
    // the child (MADV_DONTFORK), so it faults instead of becoming a second
    // producer behind its parent's back. (Not where madvise is emulated as a
    // no-op: there the child would write into its parent's ring.)
    if madv_dontfork_is_honoured() {
        let status = fork_child(|| {
            let _ = client.sender().unwrap().try_send(b"from the child", 9);
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "{status:#x}"
        );
    }
    // The parent's connection and files are intact.
    assert!(path.exists() && path.with_extension("sock.lock").exists());
    assert_eq!(client.probe_peer(), PeerState::Alive);
    assert_eq!(server.probe_peer(), PeerState::Alive);
    client.sender().unwrap().send(b"two", 2).unwrap();
    let rx = server.receiver().unwrap();
    for (ty, p) in [(1, &b"one"[..]), (2, b"two")] {
        let m = rx.recv_timeout(T).unwrap();
        assert_eq!((m.type_id(), &m[..]), (ty, p));
    }
    assert_eq!(rx.try_recv().unwrap_err(), Error::Empty);
    drop(client);
    assert_eq!(rx.recv_timeout(T).unwrap_err(), Error::Closed);
    drop(server);
    drop(l);
    assert!(!path.exists());
}

/// Fork a child that only sleeps (30 s), holding every descriptor it
/// inherited; returns its pid.
fn fork_sleeper() -> i32 {
    // SAFETY: the child calls only async-signal-safe functions (sleep,
    // _exit) before it exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: async-signal-safe; ends the child without destructors.
        unsafe {
            libc::sleep(30);
            libc::_exit(0);
        }
    }
    pid
}

/// A connector that dies while a child it forked still holds the
/// connection's socket is reported gone to the listener, which watches the
/// connecting process (SO_PEERCRED's pid, through a pidfd), not only the
/// socket. (The other way: `a_listener_that_dies_behind_a_forked_child_is_gone`.)
#[test]
fn a_connector_that_dies_behind_a_forked_child_is_gone() {
    let addr = unique_addr("forkgone");
    let l = listen(addr.as_str(), &opts(Direction::ConnectorToListener, false)).unwrap();
    let mut child = spawn("fork-holder", &addr);
    let mut conn = l.accept_timeout(T).unwrap();
    let rx = conn.receiver().unwrap();
    let m = rx.recv_timeout(T).unwrap();
    let holder = i32::from_le_bytes(m[..4].try_into().unwrap());
    drop(m);
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let killed = Instant::now();
    let end = rx.recv_timeout(T).unwrap_err();
    let waited = killed.elapsed();
    // SAFETY: plain kill(2) of the sleeper this test's child forked.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    assert_eq!(end, Error::PeerGone);
    assert!(waited < GONE_BOUND, "PeerGone after {waited:?}");
}

/// A listener process that dies while a child it forked still holds the
/// connection's socket is reported gone to the connector, which watches the
/// process that sent the handshake (the kernel's `SCM_PIDFD`, or
/// `SCM_CREDENTIALS` and a pidfd), not only the socket: to a blocking call
/// and to `probe_peer`.
#[test]
fn a_listener_that_dies_behind_a_forked_child_is_gone() {
    // One message on a SOCK_SEQPACKET (memfd), pieces of a SOCK_STREAM (shm).
    for role in ["fork-listener", "fork-listener-shm"] {
        listener_dies_behind_a_forked_child(role);
    }
}

/// Kernels before 6.5 (no `SO_PASSPIDFD`): the handshake arrives with an
/// `SCM_CREDENTIALS` (`SO_PASSCRED`) next to its `SCM_RIGHTS`; both are read,
/// the sender (here this process) is watched, and the descriptor limit is
/// still exact with the credentials' room added.
#[test]
fn the_handshake_sender_is_watched_through_its_credentials() {
    use rustix::net::{connect as raw_connect, sockopt::set_socket_passcred, SocketAddrUnix};
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    let cred_room = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) } as usize;
    for extra in [0, 20] {
        let addr = unique_addr("passcred");
        let t = fake_listener(&addr, move |s| {
            let (hs, mut fds) = good_handshake();
            for _ in 0..extra {
                fds.push(sealed_memfd(4096));
            }
            send(s, &hs.encode(), &fds);
        });
        let c = seqpacket_socket();
        set_socket_passcred(&c, true).unwrap();
        let name = addr.strip_prefix('@').unwrap();
        raw_connect(
            &c,
            &SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap(),
        )
        .unwrap();
        let got = memtube_posix::handshake::recv_watching::<Linux>(
            c.as_fd(),
            Some(Instant::now() + T),
            memtube::Backend::Memfd,
            cred_room,
        );
        drop(c);
        t.join().unwrap();
        match (extra, got) {
            (0, Ok(got)) => {
                assert_eq!(got.fds.len(), 2);
                assert!(got.sender.is_some(), "no watch of the sender");
            }
            (20, Err(e)) if recvmsg_reports_ctrunc() => {
                assert_eq!(e, Error::Handshake(HandshakeFailure::ControlTruncated))
            }
            // Emulated (qemu-user, see `recvmsg_reports_ctrunc`): the
            // descriptors that fit next to the credentials, no MSG_CTRUNC.
            // Still refused, for the count.
            (20, Err(e)) => assert!(
                matches!(
                    e,
                    Error::Handshake(HandshakeFailure::FdCount { expected: 2, got }) if got < 22
                ),
                "{e:?}"
            ),
            (_, got) => panic!("{extra} extra descriptors: {got:?}"),
        }
    }
}

/// The options of the `fork-listener` roles and their connector.
fn fork_listener_opts(role: &str) -> Options {
    let o = opts(Direction::ListenerToConnector, false);
    if role.ends_with("-shm") {
        o.backend(memtube::Backend::PosixShm)
    } else {
        o
    }
}

fn listener_dies_behind_a_forked_child(role: &str) {
    let addr = unique_addr("listenforkgone");
    let mut child = spawn(role, &addr);
    let o = fork_listener_opts(role);
    let started = Instant::now();
    let mut conn = loop {
        match connect(addr.as_str(), &o) {
            Ok(c) => break c,
            Err(Error::NoListener { .. }) if started.elapsed() < T => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("connect: {e}"),
        }
    };
    let rx = conn.receiver().unwrap();
    let m = rx.recv_timeout(T).unwrap();
    let holder = i32::from_le_bytes(m[..4].try_into().unwrap());
    drop(m);
    assert_eq!(conn.probe_peer(), PeerState::Alive);
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let killed = Instant::now();
    let end = conn.receiver().unwrap().recv_timeout(T).unwrap_err();
    let waited = killed.elapsed();
    let probed = conn.probe_peer();
    // SAFETY: plain kill(2) of the sleeper this test's child forked.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    assert_eq!(end, Error::PeerGone, "{role}");
    assert!(waited < GONE_BOUND, "{role}: PeerGone after {waited:?}");
    assert_eq!(probed, PeerState::Gone, "{role}");
}

#[test]
fn connections_leave_no_descriptor_behind() {
    wait_ok(spawn("no-fd-leak", &unique_addr("fdleak")));
}

/// Messages in `stress_between_processes` (MEMTUBE_STRESS_MESSAGES, default
/// 100 000; the soak before a release: 10 000 000).
fn stress_count() -> u64 {
    common::env_u64("MEMTUBE_STRESS_MESSAGES", 100_000)
}

/// Message `i` of the stress stream: a length drawn from 0..=max (so records
/// end at every offset of the 4 KiB ring, exactly at its end included, and
/// every length of end padding occurs), the bytes a function of `i`.
fn stress_message(i: u64, max: usize, buf: &mut Vec<u8>) {
    let mut seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let len = match rand(&mut seed) % 8 {
        0 => 0,
        1 => max,
        2 => (rand(&mut seed) % 16) as usize,
        _ => (rand(&mut seed) % (max as u64 + 1)) as usize,
    };
    buf.clear();
    buf.extend((0..len).map(|k| {
        if k < 8 {
            i.to_le_bytes()[k]
        } else {
            (i as usize).wrapping_mul(2654435761).wrapping_add(k * 13) as u8
        }
    }));
}

fn fnv32(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

/// Random sizes from 0 to the largest, between two processes, through every
/// way of sending: each message checked against its regeneration and its
/// checksum (the type id), none lost, torn, duplicated or reordered, then
/// the clean end. CI sends 100 000; the soak before a release:
/// `MEMTUBE_STRESS_MESSAGES=10000000 cargo test --release --test ipc stress -- --nocapture`.
#[test]
fn stress_between_processes() {
    let addr = unique_addr("stress");
    let l = listen(addr.as_str(), &opts(Direction::ConnectorToListener, false)).unwrap();
    let child = spawn("stress-send", &addr);
    let mut conn = l.accept_timeout(T).unwrap();
    let rx = conn.receiver().unwrap();
    let max = rx.max_payload() as usize;
    let n = stress_count();
    let (mut want, mut bytes) = (Vec::new(), 0u64);
    let start = Instant::now();
    for i in 0..n {
        let m = rx
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        stress_message(i, max, &mut want);
        assert_eq!(m.type_id(), fnv32(&m), "message {i}: checksum");
        assert!(
            m.payload() == &want[..],
            "message {i}: {} bytes, wrong",
            m.len()
        );
        bytes += m.len() as u64;
    }
    assert_eq!(rx.recv_timeout(T).unwrap_err(), Error::Closed);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{n} messages, {bytes} bytes in {secs:.2} s ({:.2} M msg/s, {:.2} GB/s)",
        n as f64 / secs / 1e6,
        bytes as f64 / secs / 1e9
    );
    wait_ok(child);
}
