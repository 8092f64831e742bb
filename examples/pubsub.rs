//! A publisher and a subscriber in two processes, with typed messages.
//!
//! ```text
//! cargo run --example pubsub
//! ```
//!
//! The publisher listens on a socket path and starts this program again as
//! the subscriber (`--subscriber PATH`), which connects. The connection is
//! one-way (listener to connector). Each message is a `#[repr(C)]` `Tick`
//! written into the ring and read in place on the other side: no
//! serialization, no copy on receipt. When the publisher drops its
//! connection the subscriber receives every tick sent before, then `Closed`.

use bytemuck::{Pod, Zeroable};
use memtube::typed::{TypedPayload, TypedSend};
use memtube::{connect, listen, Direction, Error, Options};
use std::process::Command;
use std::time::Duration;

/// One market-data tick, 24 bytes, the same layout in both processes.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    qty: u32,
    side: u32,
}

/// The message type id of a `Tick`.
const TICK: u32 = 1;
const TICKS: u64 = 100_000;

fn options() -> Options {
    Options::new().direction(Direction::ListenerToConnector)
}

fn publisher() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("memtube-pubsub-{}.sock", std::process::id()));
    let listener = listen(path.as_path(), &options())?;
    let mut subscriber = Command::new(std::env::current_exe()?)
        .arg("--subscriber")
        .arg(&path)
        .spawn()?;

    let mut conn = listener.accept_timeout(Duration::from_secs(10))?;
    let tx = conn.sender()?;
    for seq in 0..TICKS {
        let tick = Tick {
            seq,
            price: 100.0 + (seq % 100) as f64 * 0.25,
            qty: (seq % 7) as u32 + 1,
            side: (seq % 2) as u32,
        };
        tx.send_value(&tick, TICK)?; // blocks while the ring is full
    }
    drop(conn); // a clean close: the subscriber gets `Closed` after the last tick
    let status = subscriber.wait()?;
    assert!(status.success(), "subscriber failed: {status}");
    Ok(())
}

fn subscriber(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = connect(path, &options())?;
    let rx = conn.receiver()?;
    let (mut count, mut volume) = (0u64, 0u64);
    loop {
        match rx.recv() {
            Ok(msg) if msg.type_id() == TICK => {
                let tick: &Tick = msg.value()?; // checked size and alignment, in place
                assert_eq!(tick.seq, count, "ticks arrive in order");
                volume += u64::from(tick.qty);
                count += 1;
            }
            Ok(msg) => return Err(format!("unknown message type {}", msg.type_id()).into()),
            Err(Error::Closed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("subscriber: {count} ticks, volume {volume}");
    assert_eq!(count, TICKS);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--subscriber") => subscriber(args.get(2).ok_or("--subscriber needs a path")?),
        _ => publisher(),
    }
}
