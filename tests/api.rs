//! The process API as a new user meets it: names, blocking conventions,
//! and the answers it gives when the peer closes, panics, is cancelled or
//! sends what does not fit. The peer is a thread here; tests/ipc.rs runs
//! peers in other processes.

#![cfg(target_os = "linux")]

use memtube::{connect, listen, CancelToken, Direction, Error, Options};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
/// Cancellation and peer death must be noticed well within this (the
/// design figure is one 50 ms liveness slice; this bound only catches hangs).
const BOUND: Duration = Duration::from_secs(5);

fn unique_addr(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@memtube-api-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn a_send_to_a_peer_that_closed_fails_at_once_with_closed() {
    let addr = unique_addr("closed");
    let o = Options::new(); // the connector sends
    let l = listen(addr.as_str(), &o).unwrap();
    let peer = std::thread::spawn(move || {
        let conn = l.accept_timeout(T).unwrap();
        drop(conn); // the receiver goes away before anything was sent
    });
    let mut conn = connect(addr.as_str(), &o).unwrap();
    peer.join().unwrap();
    let tx = conn.sender().unwrap();
    // The ring has room, yet nothing is accepted: as `std::sync::mpsc`.
    assert_eq!(tx.try_send(b"x", 1), Err(Error::Closed));
    assert_eq!(tx.send(b"x", 1), Err(Error::Closed));
    assert_eq!(tx.try_reserve(8).err(), Some(Error::Closed));
    assert_eq!(tx.reserve_timeout(8, T).err(), Some(Error::Closed));
    assert!(Error::Closed.is_disconnected());
}

#[test]
fn a_peer_that_panics_is_gone_not_closed() {
    let addr = unique_addr("panic");
    let o = Options::new();
    let l = listen(addr.as_str(), &o).unwrap();
    let peer = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut conn = connect(addr.as_str(), &o).unwrap();
            let tx = conn.sender().unwrap();
            for i in 0..3u32 {
                tx.send(&i.to_le_bytes(), i).unwrap();
            }
            panic!("the peer's bug (expected by this test)");
        }
    });
    let mut conn = l.accept_timeout(T).unwrap();
    assert!(peer.join().is_err(), "the peer thread panicked");
    let rx = conn.receiver().unwrap();
    // Everything committed before the panic is delivered...
    for i in 0..3u32 {
        assert_eq!(rx.recv_timeout(T).unwrap().type_id(), i);
    }
    // ...then the end is a death, not a clean close.
    let started = Instant::now();
    assert_eq!(rx.recv_timeout(T).err(), Some(Error::PeerGone));
    assert!(started.elapsed() < BOUND);
}

#[test]
fn an_oversized_reply_is_an_error_and_serving_goes_on() {
    let addr = unique_addr("bigreply");
    let o = Options::new().duplex(true).capacity(4096);
    let l = listen(addr.as_str(), &o).unwrap();
    let server = std::thread::spawn(move || {
        let mut conn = l.accept_timeout(T).unwrap();
        conn.serve(|ty, req, reply| {
            match ty {
                1 => reply.resize(5000, 0xEE), // larger than the ring carries
                3 => return u32::MAX,          // the reserved type id
                _ => reply.extend_from_slice(req),
            }
            ty
        })
    });
    let mut conn = connect(addr.as_str(), &o).unwrap();
    let max = conn.max_request();
    assert_eq!(max, memtube::ring::max_payload(4096) - 8);
    match conn.call_timeout(1, b"big", T) {
        Err(Error::ReplyTooLarge { len: 5000, max: m }) => assert_eq!(m, max),
        other => panic!("expected ReplyTooLarge, got {other:?}"),
    }
    // The server is still serving.
    assert_eq!(conn.call_timeout(2, b"ok", T).unwrap().payload(), b"ok");
    assert!(matches!(
        conn.call_timeout(3, b"", T),
        Err(Error::Protocol(_))
    ));
    assert_eq!(conn.call(2, b"again").unwrap().payload(), b"again");
    drop(conn);
    assert_eq!(server.join().unwrap(), Ok(()));
}

#[test]
fn call_reports_request_sizes_without_its_hidden_id() {
    let addr = unique_addr("bigreq");
    let o = Options::new().duplex(true).capacity(4096);
    let l = listen(addr.as_str(), &o).unwrap();
    let server = std::thread::spawn(move || {
        let mut conn = l.accept_timeout(T).unwrap();
        conn.serve(|_, req, reply| {
            reply.extend_from_slice(req);
            0
        })
    });
    let mut conn = connect(addr.as_str(), &o).unwrap();
    let max = conn.max_request() as usize;
    let big = vec![1u8; max + 1];
    assert_eq!(
        conn.call_timeout(1, &big, T).err(),
        Some(Error::Ring(memtube::ring::Error::TooLarge {
            len: max + 1,
            max: max as u32
        }))
    );
    // The largest request goes through, and so does its echo.
    assert_eq!(
        conn.call_timeout(1, &big[..max], T)
            .unwrap()
            .payload()
            .len(),
        max
    );
    drop(conn);
    assert_eq!(server.join().unwrap(), Ok(()));
}

/// Cancel `token` after `after`, from another thread.
fn cancel_later(token: &CancelToken, after: Duration) -> std::thread::JoinHandle<()> {
    let token = token.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        token.cancel();
    })
}

#[test]
fn a_cancel_token_stops_accept() {
    let token = CancelToken::new();
    let o = Options::new().cancel_token(token.clone());
    let l = listen(unique_addr("cancel-accept").as_str(), &o).unwrap();
    let c = cancel_later(&token, Duration::from_millis(100));
    let started = Instant::now();
    let e = l.accept().unwrap_err();
    assert!(e.is_cancelled(), "{e:?}");
    assert!(started.elapsed() < BOUND);
    c.join().unwrap();
    // A cancelled token stays cancelled: the next call returns at once.
    assert_eq!(l.accept().err().map(|e| e.is_cancelled()), Some(true));
}

#[test]
fn a_cancel_token_stops_recv_send_and_serve_but_not_what_need_not_wait() {
    let addr = unique_addr("cancel-conn");
    let token = CancelToken::new();
    let o = Options::new().duplex(true).capacity(4096);
    let l = listen(addr.as_str(), &o.clone().cancel_token(token.clone())).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut conn = connect(addr.as_str(), &o).unwrap();
            conn.sender().unwrap().send(b"before", 1).unwrap();
            // Stay connected, reading nothing, until the other side is done.
            let _ = done_rx.recv();
        }
    });
    let mut conn = l.accept_timeout(T).unwrap();
    // A message already there is still received after the cancel.
    let rx = conn.receiver().unwrap();
    rx.wait_message(Some(T)).unwrap();
    token.cancel();
    assert_eq!(rx.recv().unwrap().payload(), b"before");
    let started = Instant::now();
    assert_eq!(rx.recv().err(), Some(Error::Cancelled));
    assert!(started.elapsed() < BOUND);
    assert_eq!(conn.serve(|_, _, _| 0), Err(Error::Cancelled));
    // A send that has room needs no wait: it goes through. Filling the
    // ring makes the next one wait, and that is cancelled.
    let tx = conn.sender().unwrap();
    while tx.try_send(&[0; 64], 9).is_ok() {}
    assert_eq!(tx.send(&[0; 64], 9), Err(Error::Cancelled));
    drop(conn);
    done_tx.send(()).unwrap();
    peer.join().unwrap();
}

#[test]
fn one_way_connections_say_which_handle_exists() {
    let addr = unique_addr("oneway");
    let o = Options::new().direction(Direction::ListenerToConnector);
    let l = listen(addr.as_str(), &o).unwrap();
    let peer = std::thread::spawn({
        let addr = addr.clone();
        move || connect(addr.as_str(), &o).unwrap()
    });
    let mut conn = l.accept_timeout(T).unwrap();
    let mut peer_conn = peer.join().unwrap();
    let e = conn.receiver().unwrap_err();
    assert_eq!(e, Error::NoSuchHandle);
    assert!(e.to_string().contains("duplex(true)"), "{e}");
    // Every handle prints something useful.
    let tx = conn.sender().unwrap();
    assert!(format!("{tx:?}").starts_with("Sender"), "{tx:?}");
    let rx = peer_conn.receiver().unwrap();
    assert!(format!("{rx:?}").starts_with("Receiver"), "{rx:?}");
    assert!(format!("{l:?}").contains("Listener"));
    // A call on a one-way connection fails without sending anything.
    assert_eq!(conn.call(1, b"req").unwrap_err(), Error::NoSuchHandle);
    assert_eq!(
        peer_conn.receiver().unwrap().try_recv().unwrap_err(),
        Error::Empty
    );
}

#[test]
fn a_call_in_two_halves_waits_on_after_a_timeout() {
    let addr = unique_addr("halves");
    let o = Options::new().duplex(true).capacity(4096);
    let l = listen(addr.as_str(), &o).unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut conn = l.accept_timeout(T).unwrap();
        // Answer only when told to, in the order requests came.
        while go_rx.recv().is_ok() {
            conn.serve_one(Some(T), |ty, req, reply| {
                reply.extend_from_slice(req);
                ty + 100
            })?;
        }
        Ok::<_, Error>(())
    });
    let mut conn = connect(addr.as_str(), &o).unwrap();
    let a = conn.send_request(1, b"first", None).unwrap();
    let b = conn.send_request(2, b"second", Some(T)).unwrap();
    assert_eq!((a, b), (1, 2));
    // With several outstanding, replies are awaited in order (see recv_reply).
    // Nothing answered yet: the wait times out and the request stays outstanding.
    assert_eq!(
        conn.recv_reply(a, Some(Duration::from_millis(20)))
            .unwrap_err(),
        Error::Timeout
    );
    go_tx.send(()).unwrap();
    go_tx.send(()).unwrap();
    let r = conn.recv_reply(a, Some(T)).unwrap();
    assert_eq!((r.id(), r.type_id(), r.payload()), (1, 101, &b"first"[..]));
    drop(r);
    // Waiting for the second skips nothing; a third call after it skips the
    // late reply of a request whose waiter gave up.
    let r = conn.recv_reply(b, None).unwrap();
    assert_eq!((r.id(), r.payload()), (2, &b"second"[..]));
    drop(r);
    let c = conn.send_request(3, b"given up", None).unwrap();
    go_tx.send(()).unwrap();
    go_tx.send(()).unwrap();
    let d = conn.send_request(4, b"fourth", None).unwrap();
    let r = conn.recv_reply(d, Some(T)).unwrap();
    assert_eq!((r.id(), r.payload()), (4, &b"fourth"[..]));
    drop(r);
    assert!(c < d);
    // A reply already taken, or skipped, is refused at once (not waited for).
    for gone in [a, b, c] {
        assert!(
            matches!(conn.recv_reply(gone, Some(T)), Err(Error::Protocol(_))),
            "request {gone}"
        );
    }
    // Ids never sent are refused.
    assert!(matches!(conn.recv_reply(99, None), Err(Error::Protocol(_))));
    assert!(matches!(conn.recv_reply(0, None), Err(Error::Protocol(_))));
    drop(go_tx);
    drop(conn);
    server.join().unwrap().unwrap();
}

/// Typed values through a process connection: a value aligned to 64 bytes
/// lands on a 64-byte boundary of the receiver's mapping (another address
/// than the sender's), read in place.
#[test]
fn typed_values_cross_a_connection_in_place() {
    use memtube::typed::{Pod, TypedPayload, TypedSend, Zeroable};

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C, align(64))]
    struct Block([u64; 8]);
    // SAFETY: repr(C), eight u64s: no padding, every bit pattern is valid.
    unsafe impl Zeroable for Block {}
    // SAFETY: as above.
    unsafe impl Pod for Block {}

    let addr = unique_addr("typed");
    let o = Options::new();
    let l = listen(addr.as_str(), &o).unwrap();
    let peer = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut conn = connect(addr.as_str(), &o).unwrap();
            let tx = conn.sender().unwrap();
            for i in 0..50u64 {
                tx.send(&[0; 8][..(i % 2) as usize * 8], 0).unwrap(); // vary the position
                tx.send_value(&Block([i; 8]), 1).unwrap();
            }
        }
    });
    let mut conn = l.accept_timeout(T).unwrap();
    let rx = conn.receiver().unwrap();
    for i in 0..50u64 {
        drop(rx.recv_timeout(T).unwrap());
        let m = rx.recv_timeout(T).unwrap();
        let b: &Block = m.value().unwrap();
        assert_eq!(b, &Block([i; 8]));
        assert_eq!(b as *const Block as usize % 64, 0);
    }
    peer.join().unwrap();
}
