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
