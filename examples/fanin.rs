//! One server, many client processes: fan-in streams and a request/reply
//! service, each served by one thread through a [`PollSet`].
//!
//! ```text
//! cargo run --release --example fanin              # 8 clients
//! cargo run --release --example fanin -- --clients 32 --messages 100000
//! ```
//!
//! The main process listens and re-executes itself as each client
//! (`--client stream|call ADDR ID N`). First every client streams `N`
//! numbered messages to the server, which receives them all through one
//! poll set and checks each client's sequence; then every client makes `N`
//! calls and the server answers them through a poll set of duplex
//! connections. A client that ends is removed from its set when its ring
//! reports closed.

use memtube::{connect, listen, Connection, Error, Events, Options, PollSet, Receiver};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--client") {
        return client(&args[1..]);
    }
    let mut clients = 8usize;
    let mut messages = 100_000u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--clients" => clients = it.next().ok_or("--clients N")?.parse()?,
            "--messages" => messages = it.next().ok_or("--messages N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let addr = std::env::temp_dir().join(format!("memtube-fanin-{}.sock", std::process::id()));
    let addr = addr
        .to_str()
        .ok_or("temporary path is not UTF-8")?
        .to_owned();
    stream(&addr, clients, messages)?;
    serve(&addr, clients, messages.min(100_000))?;
    Ok(())
}

/// Start `n` clients of `kind`, accept each, and keep its handle.
fn accept_all<T: memtube::Pollable>(
    addr: &str,
    opts: &Options,
    kind: &str,
    n: usize,
    messages: u64,
    take: impl Fn(Connection) -> Option<T>,
) -> Result<(PollSet<T>, Vec<Child>), BoxError> {
    let listener = listen(addr, opts)?;
    let mut set = PollSet::new();
    let mut kids = Vec::new();
    for id in 0..n {
        kids.push(
            Command::new(std::env::current_exe()?)
                .args([
                    "--client",
                    kind,
                    addr,
                    &id.to_string(),
                    &messages.to_string(),
                ])
                .spawn()?,
        );
        let conn = listener.accept_timeout(TIMEOUT)?;
        set.insert(take(conn).ok_or("the connection lacks the handle")?);
    }
    Ok((set, kids))
}

fn reap(kids: Vec<Child>) -> Result<(), BoxError> {
    for mut k in kids {
        let status = k.wait()?;
        if !status.success() {
            return Err(format!("a client failed: {status}").into());
        }
    }
    Ok(())
}

/// Fan-in: every client streams `messages` numbered messages.
fn stream(addr: &str, clients: usize, messages: u64) -> Result<(), BoxError> {
    let opts = Options::new().capacity(1 << 16);
    let (mut set, kids): (PollSet<Receiver>, _) =
        accept_all(addr, &opts, "stream", clients, messages, |c| {
            c.into_split().1
        })?;
    // The next sequence number expected from each client; its id is its key
    // (clients were accepted in order, keys are given from 0).
    let mut next = vec![0u64; clients];
    let mut events = Events::with_capacity(clients);
    let t0 = Instant::now();
    let mut total = 0u64;
    while !set.is_empty() {
        set.wait(&mut events, Some(TIMEOUT))?;
        for ev in &events {
            let key = ev.key();
            let rx = set.get_mut(key).ok_or("an event for a removed key")?;
            // Drain what is there now (up to a bound, for fairness).
            let mut closed = false;
            for _ in 0..256 {
                match rx.try_recv() {
                    Ok(m) => {
                        let seq = u64::from_le_bytes(m.payload().try_into()?);
                        if seq != next[key] || m.type_id() as usize != key {
                            let want = next[key];
                            return Err(format!("client {key}: got {seq}, expected {want}").into());
                        }
                        next[key] += 1;
                        total += 1;
                    }
                    Err(Error::Empty) => break,
                    Err(Error::Closed) => {
                        closed = true;
                        break;
                    }
                    Err(e) => return Err(format!("client {key}: {e}").into()),
                }
            }
            if closed {
                set.remove(key);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    reap(kids)?;
    if next.iter().any(|&n| n != messages) {
        return Err(format!("missing messages: {next:?}").into());
    }
    println!(
        "fan-in: {clients} clients x {messages} messages: {total} in order, {:.1} M msg/s through one poll set",
        total as f64 / secs / 1e6
    );
    Ok(())
}

/// Request/reply: every client calls `calls` times; one thread serves all.
fn serve(addr: &str, clients: usize, calls: u64) -> Result<(), BoxError> {
    let opts = Options::new().duplex(true).capacity(1 << 16);
    let (mut set, kids) = accept_all(addr, &opts, "call", clients, calls, Some)?;
    let mut events = Events::with_capacity(clients);
    let t0 = Instant::now();
    let mut served = 0u64;
    while !set.is_empty() {
        set.wait(&mut events, Some(TIMEOUT))?;
        for ev in &events {
            let conn = set.get_mut(ev.key()).ok_or("an event for a removed key")?;
            // The request is there: `serve_one` takes it at once; the
            // timeout bounds only the wait for room for the reply.
            match conn.serve_one(Some(TIMEOUT), |ty, req, reply| {
                let x = u64::from_le_bytes(req.try_into().unwrap_or([0; 8]));
                reply.extend_from_slice(&(x * 2).to_le_bytes());
                ty
            }) {
                Ok(()) => served += 1,
                Err(Error::Closed) => {
                    set.remove(ev.key());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    reap(kids)?;
    println!(
        "request/reply: {clients} callers x {calls} calls: {served} served by one thread, {:.2} M calls/s",
        served as f64 / secs / 1e6
    );
    Ok(())
}

fn client(args: &[String]) -> Result<(), BoxError> {
    let [kind, addr, id, n] = args else {
        return Err("--client stream|call ADDR ID N".into());
    };
    let id: u32 = id.parse()?;
    let n: u64 = n.parse()?;
    match kind.as_str() {
        "stream" => {
            let mut c = connect(addr.as_str(), &Options::new().capacity(1 << 16))?;
            let tx = c.sender()?;
            for seq in 0..n {
                tx.send(&seq.to_le_bytes(), id)?;
            }
        }
        "call" => {
            let mut c = connect(
                addr.as_str(),
                &Options::new().duplex(true).capacity(1 << 16),
            )?;
            for x in 0..n {
                let r = c.call_timeout(id, &x.to_le_bytes(), TIMEOUT)?;
                let got = u64::from_le_bytes(r.payload().try_into()?);
                if (r.type_id(), got) != (id, x * 2) {
                    return Err(format!("client {id}: call {x} answered {got}").into());
                }
            }
        }
        k => return Err(format!("unknown client kind {k}").into()),
    }
    Ok(())
}
