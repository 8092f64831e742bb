//! `memtube`: memtube's command-line tools.
//!
//! - `memtube top [--pid PID | --addr ADDR] [--interval MS]`: the rings of
//!   running processes (this user's, or all for root), refreshed every
//!   interval, in a terminal UI.
//! - `memtube stat --json [--pid PID | --addr ADDR] [--interval MS]`: one
//!   snapshot for scripts (with rates over `MS`, default 1000; 0: counters only).
//! - `memtube ping ADDR [-c N] [--timeout MS]`: round trips to a running
//!   duplex service.
//!
//! See docs/monitor.md.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_os = "linux")]
mod discover;
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod ping;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod top;

use std::time::Duration;

const USAGE: &str = "\
usage:
  memtube top [--pid PID | --addr ADDR] [--interval MS]
  memtube stat --json [--pid PID | --addr ADDR] [--interval MS]
  memtube ping ADDR [-c COUNT] [--timeout MS]

top and stat show the rings of running processes that this user may
inspect (all of them for root): per ring, messages/s, bytes/s, fill,
times full, wake-ups, producer and consumer pid, uid, state and age.
--pid: the rings of one process; --addr: those of the process listening
on ADDR (a path, or @name for an abstract name).

ping connects as a new duplex client (whatever the listener's readiness
and capacity) and times COUNT (default 5) round trips; --timeout (default
2000 ms) bounds the connect, the handshake and each round trip.

exit status:
  top, stat: 0 shown; 1 the process (--pid, --addr) does not exist, is
             not this user's to inspect, or the terminal failed; 2 usage;
             top ended by a signal: 128 + its number, terminal restored
  ping:      0 every ping answered; 1 connected, but a ping was not
             answered (timeout, wrong reply); 2 could not connect (no
             listener, refused handshake, one-way listener, timeout), or
             usage";

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Top(Target, Duration),
    Stat(Target, Duration),
    Ping {
        addr: String,
        count: u32,
        timeout: Duration,
    },
}

/// Which processes to look at.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    All,
    Pid(u32),
    Addr(String),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    let cmd = it.next().ok_or("no command")?;
    let mut target = Target::All;
    let mut interval = Duration::from_millis(1000);
    let mut json = false;
    let mut count = 5u32;
    let mut timeout = Duration::from_secs(2);
    let mut positional = Vec::new();
    let num = |v: Option<&String>, what: &str| -> Result<u64, String> {
        v.ok_or(format!("{what} needs a value"))?
            .parse()
            .map_err(|_| format!("{what}: not a number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pid" => {
                let p = num(it.next(), "--pid")?;
                target = Target::Pid(u32::try_from(p).map_err(|_| "--pid: too large")?);
            }
            "--addr" => target = Target::Addr(it.next().ok_or("--addr needs a value")?.clone()),
            "--interval" => interval = Duration::from_millis(num(it.next(), "--interval")?),
            "--json" => json = true,
            "-c" | "--count" => {
                count = u32::try_from(num(it.next(), "-c")?).map_err(|_| "-c: too large")?
            }
            "--timeout" => timeout = Duration::from_millis(num(it.next(), "--timeout")?),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => positional.push(s.to_string()),
        }
    }
    match cmd.as_str() {
        "top" if positional.is_empty() => {
            if interval.is_zero() {
                return Err("top: --interval must be at least 1 ms".into());
            }
            Ok(Command::Top(target, interval))
        }
        "stat" if positional.is_empty() => {
            if !json {
                return Err("stat: only --json output exists".into());
            }
            Ok(Command::Stat(target, interval))
        }
        "ping" => match positional.as_slice() {
            [addr] => Ok(Command::Ping {
                addr: addr.clone(),
                count,
                timeout,
            }),
            _ => Err("ping: one ADDR".into()),
        },
        "top" | "stat" => Err(format!("{cmd}: unexpected argument {}", positional[0])),
        other => Err(format!("unknown command {other}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let cmd = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("memtube: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(cmd));
}

#[cfg(target_os = "linux")]
fn scope(t: &Target) -> Result<(discover::Scope, String), String> {
    Ok(match t {
        Target::All => (discover::Scope::All, "all processes".into()),
        Target::Pid(p) => (discover::Scope::Pids(vec![*p]), format!("pid {p}")),
        Target::Addr(a) => {
            let pids = procfs::listener_pids(a).map_err(|e| format!("/proc/net/unix: {e}"))?;
            if pids.is_empty() {
                return Err(format!(
                    "no process of this user listens on {a} (in this network namespace)"
                ));
            }
            (
                discover::Scope::Pids(pids.clone()),
                format!("{a} (pid {pids:?})"),
            )
        }
    })
}

/// With `--pid` or `--addr`: every process asked for must exist and be
/// this user's to inspect (else the answer would be an empty list, as for a
/// process without rings).
#[cfg(target_os = "linux")]
fn check_access(sc: &discover::Scope) -> Result<(), String> {
    match sc {
        discover::Scope::All => Ok(()),
        discover::Scope::Pids(pids) => {
            let errs: Vec<String> = pids
                .iter()
                .filter_map(|&p| procfs::check_access(p).err())
                .collect();
            if errs.is_empty() {
                Ok(())
            } else {
                Err(errs.join("; "))
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn run(cmd: Command) -> i32 {
    match cmd {
        Command::Ping {
            addr,
            count,
            timeout,
        } => ping::run(&addr, count, timeout),
        Command::Stat(t, interval) => {
            let (sc, _) = match scope(&t) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("memtube stat: {e}");
                    return 1;
                }
            };
            if let Err(e) = check_access(&sc) {
                eprintln!("memtube stat: {e}");
                return 1;
            }
            let scan = discover::scan(&sc);
            let (rows, skipped) = report::measure(&scan, interval);
            println!("{:#}", report::to_json(&scan, &rows, &skipped, interval));
            0
        }
        Command::Top(t, interval) => {
            let (sc, title) = match scope(&t) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("memtube top: {e}");
                    return 1;
                }
            };
            if let Err(e) = check_access(&sc) {
                eprintln!("memtube top: {e}");
                return 1;
            }
            match top::run(sc, interval, title) {
                Ok(None) => 0,
                Ok(Some(sig)) => 128 + sig,
                Err(e) => {
                    eprintln!("memtube top: {e}");
                    1
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(cmd: Command) -> i32 {
    match cmd {
        #[cfg(target_os = "macos")]
        Command::Ping {
            addr,
            count,
            timeout,
        } => ping::run(&addr, count, timeout),
        _ => {
            eprintln!(
                "memtube: top and stat read Linux's /proc; they are not available on this system"
            );
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            p("top"),
            Ok(Command::Top(Target::All, Duration::from_millis(1000)))
        );
        assert_eq!(
            p("stat --json --pid 42 --interval 0"),
            Ok(Command::Stat(Target::Pid(42), Duration::ZERO))
        );
        assert_eq!(
            p("stat --json --addr @svc"),
            Ok(Command::Stat(
                Target::Addr("@svc".into()),
                Duration::from_millis(1000)
            ))
        );
        assert_eq!(
            p("ping @svc -c 3 --timeout 500"),
            Ok(Command::Ping {
                addr: "@svc".into(),
                count: 3,
                timeout: Duration::from_millis(500)
            })
        );
        assert!(p("stat").is_err());
        assert!(p("top --interval 0").is_err());
        assert!(p("ping").is_err());
        assert!(p("top --pid x").is_err());
        assert!(p("top --bogus").is_err());
        assert!(p("frobnicate").is_err());
    }
}
