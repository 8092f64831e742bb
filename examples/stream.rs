//! One-way throughput between two processes over a memtube connection:
//! messages per second and GB/s for several payload sizes.
//!
//! ```text
//! cargo run --release --example stream            # a few seconds
//! cargo run --release --example stream -- --quick
//! ```
//!
//! The program re-executes itself as the sending process (`--send ADDR N`);
//! the main process listens, accepts one connection per size and receives.
//! The sender copies each payload into the ring (`send`: write in
//! place, commit, publish; line padding off, see `Sender::set_line_padding`);
//! the receiver reads every byte of each payload
//! in place (a wrapping sum) and checks the sequence number in its first 8
//! bytes. Time runs from the first message to the clean close after the
//! last. The two processes are pinned to two different CPUs when possible.

use memtube::{listen, Direction, Options};
use std::error::Error as StdError;
use std::process::Command;
use std::time::{Duration, Instant};

/// Payload sizes measured.
const SIZES: [usize; 5] = [32, 256, 1024, 4096, 65536];
/// Data-area bytes of the ring.
const CAP: u32 = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn StdError + Send + Sync>;

/// Messages sent for payloads of `len` bytes: about 1 GiB (100 MiB quick),
/// within sensible bounds.
fn count(len: usize, quick: bool) -> u64 {
    let bytes: u64 = if quick { 100 << 20 } else { 1 << 30 };
    (bytes / len as u64).clamp(10_000, 5_000_000)
}

fn options() -> Options {
    Options::new()
        .capacity(CAP)
        .direction(Direction::ConnectorToListener)
}

fn pin(which: usize) -> Option<usize> {
    let ids = core_affinity::get_core_ids()?;
    let id = *ids.get(which)?;
    core_affinity::set_for_current(id).then_some(id.id)
}

fn sender(addr: &str, quick: bool) -> Result<(), BoxError> {
    pin(1);
    for len in SIZES {
        let mut conn = memtube::connect(addr, &options())?;
        let tx = conn.sender()?;
        // A stream of small messages sent one by one goes faster packed:
        // line padding (on by default with isolation, for round-trip
        // latency) would give each 32-byte message a cache line of its own.
        tx.set_line_padding(false);
        let mut payload = vec![0x5au8; len];
        for i in 0..count(len, quick) {
            payload[..8].copy_from_slice(&i.to_le_bytes());
            tx.send_timeout(&payload, 1, TIMEOUT)?;
        }
    } // dropping the connection closes the ring cleanly
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(i) = args.iter().position(|a| a == "--send") {
        let addr = args.get(i + 1).ok_or("--send ADDR")?;
        return sender(addr, quick);
    }
    let addr = format!("@memtube-stream-{}", std::process::id());
    let listener = listen(addr.as_str(), &options())?;
    // Read the CPU list before pinning: the child inherits our mask.
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--send", &addr]);
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd.spawn()?;
    let pinned = pin(0).is_some();
    println!(
        "memtube stream: one-way, two processes, {CAP}-byte ring, pinned: {}",
        if pinned {
            "yes (CPU 0 and CPU 1)"
        } else {
            "no"
        }
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    println!(
        "{:>8} {:>10} {:>10} {:>14} {:>10}",
        "size", "messages", "seconds", "messages/s", "GB/s"
    );
    for len in SIZES {
        let mut conn = listener.accept_timeout(TIMEOUT)?;
        let rx = conn.receiver()?;
        let mut n = 0u64;
        let mut sum = 0u64;
        let mut start = None;
        loop {
            match rx.recv_timeout(TIMEOUT) {
                Ok(m) => {
                    start.get_or_insert_with(Instant::now);
                    let seq = u64::from_le_bytes(m[..8].try_into()?);
                    if seq != n || m.len() != len {
                        return Err(
                            format!("message {n}: got sequence {seq}, {} bytes", m.len()).into(),
                        );
                    }
                    // Read every byte in place.
                    for w in m.chunks_exact(8) {
                        sum = sum.wrapping_add(u64::from_le_bytes(w.try_into()?));
                    }
                    n += 1;
                }
                Err(memtube::Error::Closed) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let rate = n as f64 / secs;
        println!(
            "{len:>8} {n:>10} {secs:>10.3} {rate:>14.0} {:>10.2}",
            rate * len as f64 / 1e9
        );
        std::hint::black_box(sum);
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the sending process failed: {status}").into());
    }
    Ok(())
}
