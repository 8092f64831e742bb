//! The Rust side of `bindings/c/bench/ffi_cost.c`: the same loop (32-byte
//! send, receive, look at it, release) over the Rust API, for callgrind:
//!
//! ```text
//! cargo build --release -p memtube-ffi --example ffi_cost
//! valgrind --tool=callgrind --toggle-collect='*run_loop*' target/release/examples/ffi_cost 100000
//! ```

use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[inline(never)]
fn run_loop(tx: &mut mt::Sender, rx: &mut mt::Receiver, n: u64) -> u64 {
    // A Vec, as in examples/pingpong.rs (its length is not a constant).
    let mut payload = vec![0xa5u8; 32];
    let mut sum = 0u64;
    for i in 0..n {
        payload[..8].copy_from_slice(&i.to_ne_bytes());
        tx.send_timeout(&payload, 7, T).unwrap();
        let m = rx.recv_timeout(T).unwrap();
        sum += u64::from(m[0]) + m.len() as u64 + u64::from(m.type_id());
    }
    sum
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().unwrap());
    let addr = format!("@memtube-ffi-cost-rs-{}", std::process::id());
    let o = mt::Options::new()
        .duplex(true)
        .capacity(16384)
        .pure_spin(true);
    let l = mt::listen(addr.as_str(), &o).unwrap();
    let server = std::thread::spawn(move || l.accept_timeout(T).unwrap());
    let client = mt::connect(addr.as_str(), &o).unwrap();
    let server = server.join().unwrap();
    let (Some(mut tx), Some(_rx)) = client.into_split() else {
        panic!("duplex")
    };
    let (Some(_stx), Some(mut srx)) = server.into_split() else {
        panic!("duplex")
    };
    println!("{}", run_loop(&mut tx, &mut srx, n));
}
