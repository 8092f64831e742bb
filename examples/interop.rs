//! A peer for cross-language tests: sends, receives, serves or calls a
//! deterministic sequence of messages over a memtube connection, checking
//! every byte, so that a binding in another language (Python, C, ...) can be
//! tested against Rust between two real processes.
//!
//! ```text
//! cargo run --example interop -- (--listen ADDR | --connect ADDR) ROLE [OPTIONS]
//!   ROLE:  --send N    send messages 0..N, then close
//!          --recv      receive until the peer closes, checking each message
//!          --serve     answer calls until the peer closes (duplex)
//!          --call N    make N calls, checking each reply (duplex)
//!          --dump      receive until the stream ends and print every message
//!                      (no checks of content): the conformance vector's reader
//!   OPTIONS: --size S (largest payload, default 256, at least 8)
//!            --capacity C (ring bytes, default 65536)  --timeout SECS (default 10)
//!            --unchecked (with --recv: only count messages and bytes, for rates)
//!            --spin (pure spin: never sleep in the kernel while waiting)
//!   BENCHMARK ROLES (duplex; one side each):
//!          --echo      send every message back unchanged (same bytes, same
//!                      type id) until the peer closes
//!          --ping N    N/10 untimed round trips, then N timed ones: send a
//!                      message of exactly S bytes (S = --size), wait for its
//!                      echo; closing line adds p50_ns, p99_ns and p999_ns
//! ```
//!
//! The sequence (every implementation produces and checks the same): message
//! `i` (from 0) has type id `i` (as u32) and a payload of
//! `8 + (i * 7919) % (S - 7)` bytes: `i` as u64 little-endian, then byte `j`
//! (from 8) equal to `(i * 31 + j) % 256`. A call's request is message `i`;
//! its reply is the request's bytes reversed, with type id `i + 1`.
//!
//! Without `--serve`/`--call` the connection is one-way, from the side that
//! sends: `--listen` with `--send` (or `--connect` with `--recv`) uses
//! `direction = listener_to_connector`, the other way round
//! `connector_to_listener`. The listening side prints `listening` (and
//! flushes) once it listens. Every role ends by printing one line,
//! `ok count=N bytes=B fnv=HEX secs=T`: the messages (or calls), their payload
//! bytes, the FNV-1a 64 hash of every payload in order, and the seconds from
//! the first message to the last; any mismatch prints `error: ...` and exits 1.
//! With `--unchecked`, a receiver checks nothing and hashes nothing (`fnv=0`):
//! a rate benchmark's sink (bindings/python/bench/pingpong.py).
//!
//! `--ping` and `--echo` are the cross-language round-trip benchmark
//! (memtube-bench `langs`): ping message `i` is `i` as u64 little-endian
//! followed by zero bytes up to S; the pinger checks that each echo has
//! S bytes, type id `i` and starts with `i`, and times each round trip with
//! its language's monotonic clock (one reading per round trip, the previous
//! reading being the start of the next). `--echo` and `--ping` print
//! `fnv=0`.
//!
//! `--dump` (normally with `--connect`, as `--recv`: one-way, the connector
//! receives) prints one line per message, `msg TYPE HEX`: the type id in
//! decimal and the payload in lowercase hex, `-` for an empty payload. When
//! the stream ends it prints `end closed` (the peer closed cleanly) and exits
//! 0; any other error ends it with `end KIND` and exit status 1, KIND being
//! the C ABI's status name in lower case without `MEMTUBE_` (`peer_gone`,
//! `corrupt`, `timeout`, `handshake`, ...), the same in every language's
//! peer. bindings/python/tests/test_conformance.py runs every peer this way
//! against the conformance vectors of docs/PROTOCOL.md (8.4).

use memtube::{Connection, Direction, Options};
use std::io::Write;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Message `i` of the sequence with payloads of at most `size` bytes.
fn message(i: u64, size: usize, buf: &mut Vec<u8>) {
    let len = 8 + (i as usize).wrapping_mul(7919) % (size - 7);
    buf.clear();
    buf.extend_from_slice(&i.to_le_bytes());
    buf.extend((8..len).map(|j| (i as usize * 31 + j) as u8));
}

/// FNV-1a, 64-bit.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Send(u64),
    Recv,
    Serve,
    Call(u64),
    Echo,
    Ping(u64),
    Dump,
}

struct Args {
    listen: Option<String>,
    connect: Option<String>,
    role: Role,
    size: usize,
    capacity: u32,
    timeout: Duration,
    unchecked: bool,
    spin: bool,
}

fn parse() -> Result<Args, BoxError> {
    let mut a = std::env::args().skip(1);
    let (mut listen, mut connect, mut role) = (None, None, None);
    let (mut size, mut capacity, mut timeout) = (256usize, 1u32 << 16, 10.0f64);
    let (mut unchecked, mut spin) = (false, false);
    while let Some(arg) = a.next() {
        let mut val = || a.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(val()?),
            "--connect" => connect = Some(val()?),
            "--send" => role = Some(Role::Send(val()?.parse()?)),
            "--recv" => role = Some(Role::Recv),
            "--serve" => role = Some(Role::Serve),
            "--call" => role = Some(Role::Call(val()?.parse()?)),
            "--size" => size = val()?.parse()?,
            "--capacity" => capacity = val()?.parse()?,
            "--timeout" => timeout = val()?.parse()?,
            "--unchecked" => unchecked = true,
            "--spin" => spin = true,
            "--echo" => role = Some(Role::Echo),
            "--ping" => role = Some(Role::Ping(val()?.parse()?)),
            "--dump" => role = Some(Role::Dump),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if listen.is_some() == connect.is_some() {
        return Err("give exactly one of --listen ADDR and --connect ADDR".into());
    }
    if size < 8 {
        return Err("--size must be at least 8".into());
    }
    Ok(Args {
        listen,
        connect,
        role: role.ok_or(
            "give a role: --send N, --recv, --serve, --call N, --echo, --ping N or --dump",
        )?,
        size,
        capacity,
        timeout: Duration::from_secs_f64(timeout),
        unchecked,
        spin,
    })
}

fn open(args: &Args) -> Result<Connection, BoxError> {
    let duplex = matches!(
        args.role,
        Role::Serve | Role::Call(_) | Role::Echo | Role::Ping(_)
    );
    let sends = matches!(args.role, Role::Send(_));
    let listening = args.listen.is_some();
    let direction = if sends == listening {
        Direction::ListenerToConnector
    } else {
        Direction::ConnectorToListener
    };
    let opts = Options::new()
        .capacity(args.capacity)
        .duplex(duplex)
        .direction(direction)
        .pure_spin(args.spin);
    if let Some(addr) = &args.listen {
        let l = memtube::listen(addr.as_str(), &opts)?;
        println!("listening");
        std::io::stdout().flush()?;
        return Ok(l.accept_timeout(args.timeout)?);
    }
    let addr = args.connect.as_deref().unwrap_or_default();
    let until = Instant::now() + args.timeout;
    loop {
        match memtube::connect(addr, &opts) {
            Err(memtube::Error::NoListener { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return Ok(r?),
        }
    }
}

/// The closing line's fields after `secs` (the percentiles of `--ping`).
type Extra = String;

fn run(args: &Args) -> Result<(u64, u64, u64, f64, Extra), BoxError> {
    let mut conn = open(args)?;
    let mut extra = Extra::new();
    let (mut count, mut bytes, mut fnv) = (0u64, 0u64, Fnv::new());
    let mut want = Vec::new();
    let mut start = None;
    match args.role {
        Role::Send(n) => {
            let tx = conn.sender()?;
            for i in 0..n {
                message(i, args.size, &mut want);
                tx.send_timeout(&want, i as u32, args.timeout)?;
                start.get_or_insert_with(Instant::now);
                fnv.update(&want);
                bytes += want.len() as u64;
                count += 1;
            }
        }
        Role::Recv => {
            let rx = conn.receiver()?;
            loop {
                let m = match rx.recv_timeout(args.timeout) {
                    Ok(m) => m,
                    Err(memtube::Error::Closed) => break,
                    Err(e) => return Err(e.into()),
                };
                start.get_or_insert_with(Instant::now);
                if args.unchecked {
                    bytes += m.len() as u64;
                    count += 1;
                    continue;
                }
                message(count, args.size, &mut want);
                if m.type_id() != count as u32 || m.payload() != want.as_slice() {
                    return Err(format!(
                        "message {count} differs: type id {}, {} bytes (expected {} bytes)",
                        m.type_id(),
                        m.len(),
                        want.len()
                    )
                    .into());
                }
                fnv.update(m.payload());
                bytes += m.len() as u64;
                count += 1;
            }
        }
        Role::Serve => {
            let (c, b, f) = (&mut count, &mut bytes, &mut fnv);
            let mut bad = None;
            conn.serve(|ty, req, reply| {
                start.get_or_insert_with(Instant::now);
                message(*c, args.size, &mut want);
                if ty != *c as u32 || req != want.as_slice() {
                    bad.get_or_insert(*c);
                }
                f.update(req);
                *b += req.len() as u64;
                *c += 1;
                reply.extend(req.iter().rev());
                ty.wrapping_add(1)
            })?;
            if let Some(i) = bad {
                return Err(format!("request {i} differs").into());
            }
        }
        Role::Echo => {
            let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
                return Err("a duplex connection has both handles".into());
            };
            loop {
                let m = match rx.recv_timeout(args.timeout) {
                    Ok(m) => m,
                    Err(memtube::Error::Closed) => break,
                    Err(e) => return Err(e.into()),
                };
                start.get_or_insert_with(Instant::now);
                tx.send_timeout(&m, m.type_id(), args.timeout)?;
                bytes += m.len() as u64;
                count += 1;
            }
        }
        Role::Ping(n) => {
            let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
                return Err("a duplex connection has both handles".into());
            };
            let warm = n / 10;
            let mut msg = vec![0u8; args.size];
            let mut samples = Vec::with_capacity(n as usize);
            let mut prev = Instant::now();
            for i in 0..warm + n {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                tx.send_timeout(&msg, i as u32, args.timeout)?;
                let m = rx.recv_timeout(args.timeout)?;
                if m.len() != args.size || m.type_id() != i as u32 || m[..8] != msg[..8] {
                    return Err(format!("echo {i} differs").into());
                }
                drop(m);
                let now = Instant::now();
                if i >= warm {
                    samples.push((now - prev).as_nanos() as u64);
                    start.get_or_insert(prev);
                    bytes += args.size as u64;
                    count += 1;
                }
                prev = now;
            }
            samples.sort_unstable();
            if let Some(last) = samples.len().checked_sub(1) {
                let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(last)];
                extra = format!(" p50_ns={} p99_ns={} p999_ns={}", q(0.5), q(0.99), q(0.999));
            }
        }
        Role::Dump => unreachable!("--dump runs in dump()"),
        Role::Call(n) => {
            let mut rev = Vec::new();
            for i in 0..n {
                message(i, args.size, &mut want);
                let reply = conn.call_timeout(i as u32, &want, args.timeout)?;
                start.get_or_insert_with(Instant::now);
                rev.clear();
                rev.extend(want.iter().rev());
                if reply.type_id() != (i as u32).wrapping_add(1) || reply.payload() != rev {
                    return Err(format!("reply {i} differs").into());
                }
                fnv.update(&want);
                bytes += want.len() as u64;
                count += 1;
            }
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let fnv = if args.unchecked { 0 } else { fnv.0 };
    let fnv = if matches!(args.role, Role::Echo | Role::Ping(_)) {
        0
    } else {
        fnv
    };
    Ok((count, bytes, fnv, secs, extra))
}

/// A payload as `--dump` prints it: lowercase hex, `-` when empty.
fn hex(p: &[u8]) -> String {
    if p.is_empty() {
        return "-".into();
    }
    p.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kind of an error as `--dump` prints it: the C ABI's status name,
/// lower case, without `MEMTUBE_` (bindings/c/src/error.rs maps the same).
fn kind(e: &(dyn std::error::Error + 'static)) -> &'static str {
    use memtube::ring::Error as R;
    use memtube::Error as E;
    let ring = |r: &R| match r {
        R::Full => "full",
        R::Empty => "empty",
        R::Timeout => "timeout",
        R::Closed => "closed",
        R::TooLarge { .. } => "too_large",
        R::Corrupt(_) => "corrupt",
        R::RoleTaken => "role_taken",
        _ => "bad_region",
    };
    match e.downcast_ref::<E>() {
        Some(E::Os(_)) => "os",
        Some(E::PeerGone) => "peer_gone",
        Some(E::Closed) => "closed",
        Some(E::Timeout) => "timeout",
        Some(E::Full) => "full",
        Some(E::Empty) => "empty",
        Some(E::Handshake(_)) => "handshake",
        Some(E::Ring(r)) => ring(r),
        Some(E::PermissionDenied { .. }) => "permission_denied",
        Some(E::AddrInUse) => "addr_in_use",
        Some(E::NotASocket(_) | E::ForeignLockFile(_)) => "not_a_socket",
        Some(E::NoListener { .. }) => "no_listener",
        Some(E::Cancelled) => "cancelled",
        Some(E::ReplyTooLarge { .. }) => "reply_too_large",
        Some(E::Protocol(_)) => "protocol",
        Some(E::NoSuchHandle) => "no_such_handle",
        Some(E::PathTooLong { .. }) => "invalid_argument",
        Some(_) => "unsupported",
        None => "os", // the standard output's own errors
    }
}

/// `--dump`: print every message until the stream ends; the error that
/// ended it (`Closed` for a clean end).
fn dump(args: &Args) -> BoxError {
    let mut conn = match open(args) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let rx = match conn.receiver() {
        Ok(rx) => rx,
        Err(e) => return e.into(),
    };
    let mut out = std::io::stdout().lock();
    loop {
        let m = match rx.recv_timeout(args.timeout) {
            Ok(m) => m,
            Err(e) => return e.into(),
        };
        if let Err(e) = writeln!(out, "msg {} {}", m.type_id(), hex(m.payload())) {
            return e.into();
        }
    }
}

fn main() {
    let args = parse();
    if let Some(a) = args.as_ref().ok().filter(|a| a.role == Role::Dump) {
        let end = kind(&*dump(a));
        println!("end {end}");
        std::process::exit(i32::from(end != "closed"));
    }
    let result = args.and_then(|a| run(&a));
    match result {
        Ok((count, bytes, fnv, secs, extra)) => {
            println!("ok count={count} bytes={bytes} fnv={fnv:016x} secs={secs:.6}{extra}")
        }
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
