//! The smallest use: a ring between two threads.
//!
//! ```text
//! cargo run --example threads
//! ```
//!
//! `memtube::ring::channel` puts the ring in a heap region of its own and
//! returns two `'static` handles, so each moves into its own thread.

use memtube::ring::{channel, Error};

fn main() -> Result<(), Error> {
    let (mut tx, mut rx) = channel(64 * 1024)?;

    let producer = std::thread::spawn(move || -> Result<(), Error> {
        for i in 0..1000u32 {
            let text = format!("message {i}");
            tx.send(text.as_bytes(), i)?; // blocks while the ring is full
        }
        Ok(()) // dropping `tx` closes the ring
    });

    let mut received = 0;
    loop {
        match rx.recv() {
            Ok(msg) => {
                // `msg` is a view into the ring; its space is released when it drops.
                assert_eq!(
                    msg.payload(),
                    format!("message {}", msg.type_id()).as_bytes()
                );
                received += 1;
            }
            Err(Error::Closed) => break, // after every message sent before the close
            Err(e) => return Err(e),
        }
    }
    producer.join().expect("producer thread panicked")?;
    println!("received {received} messages");
    Ok(())
}
