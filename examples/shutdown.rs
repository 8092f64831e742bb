//! A service that stops cleanly on Ctrl-C (SIGINT).
//!
//! ```text
//! cargo run --example shutdown            # serves until you press Ctrl-C
//! cargo run --example shutdown -- --demo  # a client calls, then SIGINT is raised
//! ```
//!
//! One `CancelToken` is given to the listener through its `Options`; every
//! connection accepted with those options shares it. The SIGINT handler
//! (installed with `signal-hook`) only sets the token's flag, which is
//! async-signal-safe. Blocked calls (`accept`, `serve`, `recv`, ...) notice
//! it within about `LIVENESS_SLICE` (50 ms) and return `Error::Cancelled`;
//! the program then drops its handles, which closes every connection
//! cleanly, and exits.

use memtube::{connect, listen, CancelToken, Options};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    let token = CancelToken::new();
    signal_hook::flag::register(signal_hook::consts::SIGINT, token.flag())?;

    let path = std::env::temp_dir().join(format!("memtube-shutdown-{}.sock", std::process::id()));
    let opts = Options::new().duplex(true).cancel_token(token.clone());
    let listener = listen(path.as_path(), &opts)?;
    println!("serving on {}; press Ctrl-C to stop", path.display());

    let client = demo.then(|| {
        let path = path.clone();
        std::thread::spawn(
            move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let mut conn = connect(path.as_path(), &Options::new().duplex(true))?;
                for i in 0..3u32 {
                    let reply = conn.call_timeout(1, &i.to_le_bytes(), Duration::from_secs(5))?;
                    println!("client: reply {:?}", reply.payload());
                }
                // Stop the server as a user's Ctrl-C would.
                signal_hook::low_level::raise(signal_hook::consts::SIGINT)?;
                Ok(())
            },
        )
    });

    let mut served = 0;
    loop {
        let mut conn = match listener.accept() {
            Ok(conn) => conn,
            Err(e) if e.is_cancelled() => break,
            Err(e) => return Err(e.into()),
        };
        // One client at a time: serve until it closes or we are cancelled.
        match conn.serve(|_type_id, request, reply| {
            served += 1;
            reply.extend(request.iter().rev());
            0
        }) {
            Ok(()) => println!("client closed"),
            Err(e) if e.is_cancelled() => break,
            Err(e) => eprintln!("client failed: {e}"),
        }
    }
    println!("stopped after {served} requests: connections closed cleanly");
    if let Some(client) = client {
        client
            .join()
            .expect("client thread panicked")
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
