//! What the facade's multi-process tests share: each test binary re-executes
//! itself to play the peer process (its ignored `child_entry` test), told
//! its role and address through the environment.

#![allow(dead_code)] // each test binary uses what it needs

use std::process::{Command, Stdio};

/// The environment variable naming a child's role.
pub const ROLE: &str = "MEMTUBE_TEST_ROLE";
/// The environment variable holding a child's address (or path).
pub const ADDR: &str = "MEMTUBE_TEST_ADDR";

/// A command that runs this test binary again as the peer `role` at `addr`
/// (stdout discarded); add environment or stdio, then spawn it.
pub fn child_command(role: &str, addr: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the test binary's path"));
    c.args([
        "child_entry",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE, role)
    .env(ADDR, addr)
    .stdout(Stdio::null());
    c
}

/// The body of each binary's `child_entry`: in a process started by
/// [`child_command`], run `child(role, addr)` and exit 0 on success, 1 (with
/// the error on stderr) otherwise; in a normal test run, nothing.
pub fn child_main(child: impl FnOnce(&str, &str) -> Result<(), String>) {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let addr = std::env::var(ADDR).unwrap_or_default();
    let code = match child(&role, &addr) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child {role}: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// A Linux abstract socket name no other test of any binary uses: the
/// process id, a counter, and `tag`.
pub fn unique_addr(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@memtube-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// xorshift64: deterministic, no dependency. `seed` must not be 0.
pub fn rand(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A count from the environment variable `name` (a soak's size), else
/// `default` (CI's size).
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A child role: connect to `addr` with `opts`, send `b"hello"` (type 1),
/// then sleep a minute (until the test kills it).
pub fn send_one_then_sleep(addr: &str, opts: &memtube::Options) -> Result<(), String> {
    let mut c = memtube::connect(addr, opts).map_err(|e| e.to_string())?;
    c.sender()
        .map_err(|e| e.to_string())?
        .send(b"hello", 1)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(std::time::Duration::from_secs(60));
    Ok(())
}
