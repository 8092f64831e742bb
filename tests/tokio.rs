//! Readiness descriptors and the tokio handles (`--features tokio`).
#![cfg(all(feature = "tokio", target_os = "linux"))]

mod common;

use memtube::tokio::{AsyncReceiver, AsyncSender};
use memtube::{connect, listen, Connection, Error, HandshakeFailure, Options};
use std::process::Stdio;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn opts() -> Options {
    Options::new().capacity(4096).readiness(true)
}

/// A connected pair (listener side, connector side) made with `o`.
async fn pair(tag: &str, o: &Options) -> (Connection, Connection) {
    let a = common::unique_addr(tag);
    let listener = listen(a.as_str(), o).unwrap();
    let accept = tokio::task::spawn_blocking(move || listener.accept_timeout(T));
    let client = connect(a.as_str(), o).unwrap();
    (accept.await.unwrap().unwrap(), client)
}

/// (receiver on the listener's side, sender on the connector's side).
async fn handles(tag: &str) -> (AsyncReceiver, AsyncSender) {
    let (server, client) = pair(tag, &opts()).await;
    (
        AsyncReceiver::new(server.into_split().1.unwrap()).unwrap(),
        AsyncSender::new(client.into_split().0.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn a_receive_awaits_a_later_message() {
    let (mut rx, mut tx) = handles("later").await;
    let t0 = Instant::now();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(b"late", 9).await.unwrap();
        tx
    });
    let m = rx.recv().await.unwrap();
    assert_eq!((m.type_id(), m.payload()), (9, &b"late"[..]));
    assert!(t0.elapsed() >= Duration::from_millis(90));
    drop(m);
    drop(sender.await.unwrap());
    // The sender closed: the end is reported.
    assert_eq!(rx.recv().await.err(), Some(Error::Closed));
}

/// Woken by the descriptor, not found by a liveness slice: a message sent
/// 10 ms into each wait ends it long before its 50 ms slice; a signal that
/// never came would show as a slice timeout.
#[tokio::test]
async fn the_descriptor_wakes_an_awaiting_receive() {
    let (mut rx, tx) = handles("signal").await;
    let mut tx = tx.into_inner();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<u32>();
    let sender = std::thread::spawn(move || {
        while let Ok(i) = go_rx.recv() {
            std::thread::sleep(Duration::from_millis(10));
            tx.send(&i.to_le_bytes(), 1).unwrap();
        }
    });
    for i in 0..20u32 {
        go_tx.send(i).unwrap();
        let m = rx.recv().await.unwrap();
        assert_eq!(m.payload(), i.to_le_bytes());
    }
    assert_eq!(
        rx.slice_timeouts(),
        0,
        "a wait ended by its slice, not by the signal"
    );
    drop(go_tx);
    sender.join().unwrap();
}

/// On a current-thread runtime both ends run on one thread: each await
/// must hand the thread to the other (no blocking anywhere).
#[tokio::test(flavor = "current_thread")]
async fn both_ends_on_one_thread_stream_in_order() {
    let (mut rx, mut tx) = handles("stream").await;
    let n = 50_000u32;
    let sender = tokio::spawn(async move {
        for i in 0..n {
            tx.send(&i.to_le_bytes(), i % 7).await.unwrap();
        }
    });
    for i in 0..n {
        let m = rx.recv().await.unwrap();
        assert_eq!(m.type_id(), i % 7);
        assert_eq!(u32::from_le_bytes(m.payload().try_into().unwrap()), i);
    }
    sender.await.unwrap();
}

#[tokio::test]
async fn a_send_awaits_room() {
    let (mut rx, mut tx) = handles("room").await;
    let big = vec![7u8; 1500];
    // Fill the ring.
    while tx.get_mut().try_send(&big, 1).is_ok() {}
    let t0 = Instant::now();
    let reader = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..2 {
            drop(rx.recv().await.unwrap());
        }
        rx
    });
    tx.send(&big, 2).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(90));
    drop(reader.await.unwrap());
}

/// Dropping a pending receive loses nothing (cancel safety).
#[tokio::test]
async fn a_dropped_receive_loses_nothing() {
    let (mut rx, mut tx) = handles("cancel").await;
    for _ in 0..3 {
        assert!(tokio::time::timeout(Duration::from_millis(20), rx.recv())
            .await
            .is_err());
    }
    tx.send(b"kept", 1).await.unwrap();
    let m = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(m.payload(), b"kept");
}

/// A peer process killed while a receive awaits: `PeerGone`, soon.
#[tokio::test]
async fn a_killed_peer_ends_a_pending_receive() {
    let a = common::unique_addr("tokio-kill");
    let listener = listen(a.as_str(), &opts()).unwrap();
    let mut kid = common::child_command("send-one-then-sleep", &a)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let conn = tokio::task::spawn_blocking(move || listener.accept_timeout(T))
        .await
        .unwrap()
        .unwrap();
    let mut rx = AsyncReceiver::new(conn.into_split().1.unwrap()).unwrap();
    assert_eq!(rx.recv().await.unwrap().payload(), b"hello");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        kid.kill().unwrap();
        kid.wait().unwrap();
        t
    });
    let got = rx.recv().await.err();
    let killed = killer.join().unwrap();
    assert_eq!(got, Some(Error::PeerGone));
    assert!(
        killed.elapsed() < Duration::from_millis(500),
        "{:?}",
        killed.elapsed()
    );
}

/// Both sides must ask for readiness.
#[tokio::test]
async fn readiness_must_match() {
    let a = common::unique_addr("tokio-mismatch");
    let listener = listen(a.as_str(), &Options::new()).unwrap();
    let accept = tokio::task::spawn_blocking(move || listener.accept_timeout(T));
    let got = connect(a.as_str(), &Options::new().readiness(true)).err();
    assert_eq!(
        got,
        Some(Error::Handshake(HandshakeFailure::Mismatch("readiness")))
    );
    let _ = accept.await;
    // A handle without readiness cannot go async.
    let (server, _client) = pair("tokio-plain", &Options::new().capacity(4096)).await;
    let e = AsyncReceiver::new(server.into_split().1.unwrap()).err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some(Error::NoSuchHandle.to_string())
    );
}

/// One task serves many callers through an awaited poll set; callers call
/// from threads at their own pace (so the set often sleeps), and each gets
/// its own replies; the set also reports each caller's end.
#[tokio::test(flavor = "current_thread")]
async fn an_async_poll_set_serves_many_callers() {
    use memtube::tokio::AsyncPollSet;
    use memtube::{Events, PollSet};
    let o = opts().duplex(true);
    let a = common::unique_addr("tokio-pollset");
    let listener = listen(a.as_str(), &o).unwrap();
    let n = 6;
    let callers: Vec<_> = (0..n)
        .map(|i| {
            let (a, o) = (a.clone(), o.clone());
            std::thread::spawn(move || {
                let mut c = connect(a.as_str(), &o).unwrap();
                for k in 0..50u32 {
                    if k % 10 == 0 {
                        // Let the server's set go to sleep now and then.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let r = c.call_timeout(k, &[i as u8], T).unwrap();
                    assert_eq!((r.type_id(), r.payload()), (k, &[i as u8, 1][..]));
                }
            })
        })
        .collect();
    let mut set = PollSet::new();
    for _ in 0..n {
        // The callers are threads: a blocking accept is fine here.
        set.insert(listener.accept_timeout(T).unwrap());
    }
    let mut set = AsyncPollSet::new(set).unwrap();
    let mut events = Events::new();
    let mut open = n;
    while open > 0 {
        tokio::time::timeout(T, set.wait(&mut events))
            .await
            .expect("the set was never woken")
            .unwrap();
        for ev in &events {
            let conn = set.set_mut().get_mut(ev.key()).unwrap();
            match conn.serve_one(Some(T), |ty, req, reply| {
                reply.extend_from_slice(&[req[0], 1]);
                ty
            }) {
                Ok(()) => {}
                Err(Error::Closed) => {
                    set.set_mut().remove(ev.key());
                    open -= 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    for c in callers {
        c.join().unwrap();
    }
}

/// Async accept and call: a task accepts callers and serves them; the
/// callers call from tasks; a call dropped midway leaves the connection
/// usable (its reply is skipped by the next call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_accept_and_call() {
    use memtube::tokio::{AsyncConnection, AsyncListener};
    let o = opts().duplex(true);
    let a = common::unique_addr("tokio-call");
    let mut listener = AsyncListener::new(listen(a.as_str(), &o).unwrap(), None);
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let mut conn = listener.accept().await.unwrap();
            // A blocking server on its own thread (serve blocks).
            tokio::task::spawn_blocking(move || {
                conn.serve(|ty, req, reply| {
                    if ty == 99 {
                        // Slow: the caller gives up on this one.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    reply.extend(req.iter().rev());
                    ty + 1
                })
            });
        }
    });
    let mut callers = Vec::new();
    for i in 0..2u8 {
        let (a, o) = (a.clone(), o.clone());
        callers.push(tokio::spawn(async move {
            let conn = tokio::task::spawn_blocking(move || connect(a.as_str(), &o))
                .await
                .unwrap()
                .unwrap();
            let mut c = AsyncConnection::new(conn).unwrap();
            for k in 0..200u32 {
                let r = c.call(k, &[i, k as u8]).await.unwrap();
                assert_eq!((r.type_id(), r.payload()), (k + 1, &[k as u8, i][..]));
            }
            // Dropped while its reply is on its way.
            let slow = tokio::time::timeout(Duration::from_millis(10), c.call(99, &[1]))
                .await
                .map(|r| r.map(|_| ()));
            assert!(slow.is_err());
            let r = c.call(5, &[i, 9]).await.unwrap();
            assert_eq!((r.type_id(), r.payload()), (6, &[9, i][..]));
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    server.await.unwrap();
}

#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn child_entry() {
    common::child_main(|role, addr| match role {
        "send-one-then-sleep" => common::send_one_then_sleep(addr, &opts()),
        r => Err(format!("unknown role {r}")),
    });
}
