//! A small request/reply service between two processes over a duplex
//! memtube connection: typed requests, `call` on one side, `serve` on the other.
//!
//! ```text
//! cargo run --release --example rpc
//! ```
//!
//! The main process listens and re-executes itself as the server
//! (`--server ADDR`), which connects and serves until the main process
//! closes. Requests are typed by the message's type id; each body is a
//! fixed little-endian layout (no serialization library). `call` puts a
//! correlation id in the first 8 bytes of each message; `serve` echoes it.

use memtube::{listen, Connection, Options};
use std::error::Error as StdError;
use std::process::Command;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn StdError + Send + Sync>;

/// The service's requests.
#[derive(Debug, PartialEq)]
enum Request {
    /// Add two integers.
    Add(i64, i64),
    /// Upper-case a UTF-8 string.
    Upper(String),
    /// Sum a list of `u32`.
    Sum(Vec<u32>),
}

/// The replies.
#[derive(Debug, PartialEq)]
enum Reply {
    Int(i64),
    Text(String),
    Error(String),
}

const ADD: u32 = 1;
const UPPER: u32 = 2;
const SUM: u32 = 3;
const R_INT: u32 = 101;
const R_TEXT: u32 = 102;
const R_ERROR: u32 = 199;

impl Request {
    fn encode(&self, out: &mut Vec<u8>) -> u32 {
        out.clear();
        match self {
            Request::Add(a, b) => {
                out.extend_from_slice(&a.to_le_bytes());
                out.extend_from_slice(&b.to_le_bytes());
                ADD
            }
            Request::Upper(s) => {
                out.extend_from_slice(s.as_bytes());
                UPPER
            }
            Request::Sum(v) => {
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                SUM
            }
        }
    }
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The server's handler: decode in place, compute, encode the reply.
fn handle(type_id: u32, body: &[u8], out: &mut Vec<u8>) -> u32 {
    let reply = match type_id {
        ADD => match (i64_at(body, 0), i64_at(body, 8)) {
            (Some(a), Some(b)) => Reply::Int(a.wrapping_add(b)),
            _ => Reply::Error("Add needs 16 bytes".into()),
        },
        UPPER => match std::str::from_utf8(body) {
            Ok(s) => Reply::Text(s.to_uppercase()),
            Err(_) => Reply::Error("Upper needs UTF-8".into()),
        },
        SUM => Reply::Int(
            body.chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .sum(),
        ),
        other => Reply::Error(format!("unknown request type {other}")),
    };
    match reply {
        Reply::Int(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            R_INT
        }
        Reply::Text(s) => {
            out.extend_from_slice(s.as_bytes());
            R_TEXT
        }
        Reply::Error(e) => {
            out.extend_from_slice(e.as_bytes());
            R_ERROR
        }
    }
}

fn call(conn: &mut Connection, req: &Request, buf: &mut Vec<u8>) -> Result<Reply, BoxError> {
    let ty = req.encode(buf);
    let r = conn.call_timeout(ty, buf, TIMEOUT)?;
    Ok(match r.type_id() {
        R_INT => Reply::Int(i64_at(r.payload(), 0).ok_or("short reply")?),
        R_TEXT => Reply::Text(String::from_utf8(r.payload().to_vec())?),
        R_ERROR => Reply::Error(String::from_utf8_lossy(r.payload()).into_owned()),
        t => return Err(format!("unknown reply type {t}").into()),
    })
}

fn options() -> Options {
    Options::new().duplex(true).capacity(1 << 16)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr] = args.as_slice() {
        if flag == "--server" {
            let mut conn = memtube::connect(addr.as_str(), &options())?;
            // Serves until the client closes cleanly.
            conn.serve(handle)?;
            return Ok(());
        }
    }
    let addr = format!("@memtube-rpc-{}", std::process::id());
    let listener = listen(addr.as_str(), &options())?;
    let mut server = Command::new(std::env::current_exe()?)
        .args(["--server", &addr])
        .spawn()?;
    let mut conn = listener.accept_timeout(TIMEOUT)?;
    println!("memtube rpc: server pid {}", conn.peer_cred().pid);
    let mut buf = Vec::new();
    for (label, req) in [
        ("Add(40, 2)", Request::Add(40, 2)),
        (
            "Upper(\"hello, memtube\")",
            Request::Upper("hello, memtube".into()),
        ),
        ("Sum(1..=100)", Request::Sum((1..=100).collect())),
    ] {
        let reply = call(&mut conn, &req, &mut buf)?;
        println!("{label} -> {reply:?}");
    }
    // An unknown request type gets an error reply, not a dead server.
    let r = conn.call_timeout(42, b"?", TIMEOUT)?;
    println!("type 42 -> {:?}", String::from_utf8_lossy(r.payload()));
    drop(r);

    // Round-trip time of small calls.
    let n = 100_000;
    let mut times = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let t = Instant::now();
        let reply = call(&mut conn, &Request::Add(i, 1), &mut buf)?;
        times.push(t.elapsed().as_nanos() as u64);
        if reply != Reply::Int(i + 1) {
            return Err(format!("call {i}: {reply:?}").into());
        }
    }
    times.sort_unstable();
    let pct = |q: f64| times[((q * n as f64) as usize).min(n - 1)];
    println!(
        "{n} Add calls: round trip p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns (unpinned, default spin-then-sleep mode)",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        times[n - 1]
    );
    drop(conn); // clean close: the server's `serve` returns Ok
    let status = server.wait()?;
    if !status.success() {
        return Err(format!("server failed: {status}").into());
    }
    match listener.accept_timeout(Duration::ZERO) {
        Err(memtube::Error::Timeout) => Ok(()),
        other => Err(format!("unexpected connection: {other:?}").into()),
    }
}
