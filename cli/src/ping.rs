//! `memtube ping ADDR`: round trips to a running service.
//!
//! Connects as a new duplex client (the service's other connections are
//! not touched) and sends requests of the reserved type
//! [`memtube_posix::PING`], which `serve` answers itself, with the same
//! body, without calling the application's handler.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Connect to `addr` as a duplex client whatever the listener's capacity
/// and readiness setting, within `timeout` in all (connect and handshake).
///
/// The listener decides the rings: the largest capacity is accepted, and a
/// handshake refused for its readiness setting (which both sides must
/// share) is tried once more with the other one. Isolation, huge pages and
/// pure spin follow the listener and cannot mismatch.
pub fn connect(addr: &str, timeout: Duration) -> memtube::Result<memtube::Connection> {
    let deadline = Instant::now() + timeout;
    // The connect and the handshake have a timeout each; a token cancelled
    // at the deadline bounds the two together (within LIVENESS_SLICE).
    let token = memtube::CancelToken::new();
    let (stop, stopped) = mpsc::channel::<()>();
    let timer = {
        let token = token.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(timeout) {
                token.cancel();
            }
        })
    };
    let attempt = |readiness: bool| {
        let left = deadline.saturating_duration_since(Instant::now());
        let opts = memtube::Options::new()
            .duplex(true)
            .readiness(readiness)
            .max_capacity(memtube_ring::MAX_CAPACITY)
            .connect_timeout(left)
            .handshake_timeout(left)
            .cancel_token(token.clone());
        memtube::connect(addr, &opts)
    };
    let mismatch = memtube::Error::Handshake(memtube::HandshakeFailure::Mismatch("readiness"));
    let mut result = attempt(false);
    if matches!(&result, Err(e) if *e == mismatch) {
        result = attempt(true);
    }
    let _ = stop.send(());
    let _ = timer.join();
    match result {
        // The token is the connection's too: one cancelled just as the
        // connect ended would cancel the pings.
        Ok(_) if token.is_cancelled() => Err(memtube::Error::Timeout),
        Err(memtube::Error::Cancelled) => Err(memtube::Error::Timeout),
        r => r,
    }
}

/// Connect to `addr` and ping `count` times, each waiting at most
/// `timeout` (the connect and handshake too); returns the exit status: 0
/// every ping answered, 1 connected but a ping was not answered, 2 not
/// connected.
pub fn run(addr: &str, count: u32, timeout: Duration) -> i32 {
    let t0 = Instant::now();
    let mut conn = match connect(addr, timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "memtube ping: cannot connect to {addr} (after {:.1?}): {e}",
                t0.elapsed()
            );
            if matches!(
                e,
                memtube::Error::Handshake(memtube::HandshakeFailure::Mismatch("duplex"))
            ) {
                eprintln!("memtube ping: the listener makes one-way connections; only a duplex service (call/serve) answers pings");
            }
            if matches!(e, memtube::Error::Timeout) {
                eprintln!(
                    "memtube ping: no handshake within {timeout:?}: the service may not be \
                     accepting (busy serving another client?)"
                );
            }
            return 2;
        }
    };
    let connect = t0.elapsed();
    let mut rtts = Vec::new();
    println!(
        "connected to {addr} in {:.1?} (pid {} uid {})",
        connect,
        conn.peer_cred().pid,
        conn.peer_cred().uid
    );
    for i in 0..count {
        let body = u64::from(i).to_le_bytes();
        let t = Instant::now();
        match conn.call_timeout(memtube_posix::PING, &body, timeout) {
            Ok(r) if r.type_id() == memtube_posix::PING && r.payload() == body => {
                let d = t.elapsed();
                drop(r);
                println!("ping {}: {:.1} us", i + 1, d.as_secs_f64() * 1e6);
                rtts.push(d);
            }
            Ok(r) => {
                eprintln!(
                    "memtube ping: the service answered with type {} (not a ping reply): \
                     its handler saw the ping, so it was built before pings were answered by serve",
                    r.type_id()
                );
                return 1;
            }
            Err(memtube::Error::Timeout) => {
                eprintln!(
                    "memtube ping: no answer within {timeout:?}: the service does not serve this \
                     connection (it may serve one client at a time, or not with call/serve), or \
                     its memtube does not answer pings; only the connect time ({:.1?}) was measured",
                    connect
                );
                return 1;
            }
            Err(e) => {
                eprintln!("memtube ping: {e}");
                return 1;
            }
        }
    }
    let mut v = rtts;
    v.sort();
    if let (Some(min), Some(max)) = (v.first(), v.last()) {
        let med = v[v.len() / 2];
        println!(
            "{} pings: min {:.1} us, median {:.1} us, max {:.1} us",
            v.len(),
            min.as_secs_f64() * 1e6,
            med.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6
        );
    }
    0
}
