//! `memtube ping ADDR`: round trips to a running service.
//!
//! Connects as a new duplex client (the service's other connections are
//! not touched) and sends requests of the reserved type
//! [`memtube_posix::PING`], which `serve` answers itself, with the same
//! body, without calling the application's handler.

use std::time::{Duration, Instant};

/// Connect to `addr` and ping `count` times, each waiting at most
/// `timeout`; returns the exit status.
pub fn run(addr: &str, count: u32, timeout: Duration) -> i32 {
    let t0 = Instant::now();
    let opts = memtube::Options::new().duplex(true);
    let mut conn = match memtube::connect(addr, &opts) {
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
