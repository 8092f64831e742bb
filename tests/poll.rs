//! The poll set: many connections, one wait.
#![cfg(any(target_os = "linux", target_os = "macos"))]

use memtube::{connect, listen, Events, Interest, Options, PollSet};
use std::time::{Duration, Instant};

fn addr(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("memtube-poll-{tag}-{}.sock", std::process::id()))
}

/// `n` accepted receivers in a set, and their clients.
fn receivers(tag: &str, n: usize, opts: &Options) -> (PollSet<memtube::Receiver>, Vec<memtube::Connection>) {
    let a = addr(tag);
    let listener = listen(a.as_path(), opts).unwrap();
    let mut set = PollSet::new();
    let o = opts.clone();
    let clients = std::thread::spawn(move || {
        (0..n).map(|_| connect(a.as_path(), &o).unwrap()).collect::<Vec<_>>()
    });
    for _ in 0..n {
        let conn = listener.accept_timeout(Duration::from_secs(5)).unwrap();
        set.insert(conn.into_split().1.unwrap());
    }
    (set, clients.join().unwrap())
}

#[test]
fn reports_the_ready_receiver() {
    let (mut set, mut clients) = receivers("ready", 3, &Options::new());
    clients[1].sender().unwrap().send(b"hi", 7).unwrap();
    let mut events = Events::new();
    set.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(events.len(), 1);
    let ev = *events.iter().next().unwrap();
    assert_eq!(ev.key(), 1);
    assert!(ev.is_readable() && !ev.is_closed());
    let m = set.get_mut(1).unwrap().try_recv().unwrap();
    assert_eq!((m.type_id(), m.payload()), (7, &b"hi"[..]));
}

