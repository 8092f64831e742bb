//! The C ABI from C: C programs (`tests/c/*.c`) built with
//! `gcc -std=c99 -Wall -Wextra -Werror -pedantic` against the freshly built
//! `libmemtube.a`, run as real processes against each other and against
//! Rust peers (this test process, or this test binary re-executed as a
//! child that gets SIGKILLed).
//!
//! The static library comes from `$CARGO build -p memtube-ffi --lib` with
//! this test's own profile and target directory (cargo builds a cdylib /
//! staticlib for nobody's tests, and the library's name would collide with
//! the facade's as an rlib): the first test that needs it builds it.
//!
//! Cross runs (CI's aarch64 step, under qemu-user) set `MEMTUBE_TEST_TARGET`
//! to the target triple, which the library is then built for, and
//! `MEMTUBE_TEST_CC` to that target's C compiler.

#![cfg(target_os = "linux")]

use memtube_posix::handshake::send_raw;
use memtube_ring::handshake::{Handshake, RingDesc, Side};
use mt::linux::{memfd, Linux};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const ROLE: &str = "MEMTUBE_FFI_TEST_ROLE";
const ADDR: &str = "MEMTUBE_FFI_TEST_ADDR";

/// The ABI version constants, from the file the library and its build
/// script (which names the shared library after the major) read too.
#[allow(dead_code)]
mod version {
    include!("../src/version.rs");
}
use version::{MEMTUBE_ABI_VERSION_MAJOR as ABI_MAJOR, MEMTUBE_ABI_VERSION_MINOR as ABI_MINOR};

/// Whether `tool --version` runs. A missing tool fails the test in CI (`CI`
/// set, as `CI=true`; .ci/run installs every one); elsewhere what needs it
/// is skipped, and this says so.
fn have_tool(tool: &str, what: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed, and CI requires {what} (.ci/run installs it)"
        );
        eprintln!("{tool} not installed: {what} skipped");
    }
    ok
}

// ------------------------------------------------------------- building

struct Build {
    /// `<target>/<profile>`: where cargo puts `libmemtube.a`.
    profile_dir: PathBuf,
    /// Where the C programs go.
    out: PathBuf,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Build `libmemtube.a` (once per test process) with this test's profile,
/// into this test's target directory.
fn build() -> &'static Build {
    static B: OnceLock<Build> = OnceLock::new();
    B.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/c_abi-<hash>, or
        // <target>/<triple>/<profile>/deps/c_abi-<hash> when cross-built.
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let triple = std::env::var("MEMTUBE_TEST_TARGET").ok();
        let mut target_dir = profile_dir.parent().unwrap();
        if triple.is_some() {
            target_dir = target_dir.parent().unwrap();
        }
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_string(),
            other => other.to_string(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "memtube-ffi", "--lib", "--profile", &profile])
            .args(triple.iter().flat_map(|t| ["--target", t.as_str()]))
            .arg("--manifest-path")
            .arg(manifest_dir().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("run cargo build");
        assert!(st.success(), "cargo build -p memtube-ffi failed: {st}");
        let lib = profile_dir.join("libmemtube.a");
        assert!(lib.exists(), "{} missing after the build", lib.display());
        let out = profile_dir.join("memtube-ffi-c-tests");
        std::fs::create_dir_all(&out).unwrap();
        Build { profile_dir, out }
    })
}

/// Compile `tests/c/<name>.c` (once per test process) and return the program.
fn program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let b = build();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let src = manifest_dir().join("tests/c").join(format!("{name}.c"));
    let exe = b.out.join(name);
    let cc = std::env::var("MEMTUBE_TEST_CC").unwrap_or_else(|_| "gcc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O1",
            "-g",
        ])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(&src)
        .arg(b.profile_dir.join("libmemtube.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    built.insert(name.to_string(), exe.clone());
    exe
}

// ------------------------------------------------------------ processes

/// A running program whose stdout lines arrive on a channel; killed if
/// still running when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Proc {
    fn spawn(mut cmd: Command, name: &str) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            name: name.to_string(),
        }
    }

    /// The C test program `prog` with `args`.
    fn c(prog: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(program(prog));
        cmd.args(args);
        Proc::spawn(cmd, &format!("{prog} {}", args.join(" ")))
    }

    /// This test binary as a Rust peer playing `role` at `addr`.
    fn rust(role: &str, addr: &str) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "child_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(ADDR, addr);
        Proc::spawn(cmd, role)
    }

    /// The next line that starts with `prefix`.
    fn line(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(T) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("{}: no line starting with {prefix:?} ({e})", self.name),
            }
        }
    }

    /// Wait for a successful exit; the last line that starts with `prefix`.
    fn finish(mut self, prefix: &str) -> String {
        let line = self.line(prefix);
        let st = self.child.wait().unwrap();
        assert!(
            st.success(),
            "{} failed: {st} (its last line: {line})",
            self.name
        );
        line
    }

    /// Wait for a successful exit; every line printed (not yet read).
    fn all_lines(mut self) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            match self.lines.recv_timeout(T) {
                Ok(l) => all.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("{}: no end of output ({e}) after {all:?}", self.name),
            }
        }
        let st = self.child.wait().unwrap();
        assert!(
            st.success(),
            "{} failed: {st} (its output: {all:?})",
            self.name
        );
        all
    }

    /// Wait until something listens at the abstract address `addr`
    /// (/proc/net/unix lists it), failing if this program exits first.
    fn wait_listening(&mut self, addr: &str) {
        let listed = format!(" {addr}");
        let deadline = std::time::Instant::now() + T;
        loop {
            let table = std::fs::read_to_string("/proc/net/unix").unwrap();
            // The name shows from bind(2) on; the flags column says
            // 00010000 (accepting) only after listen(2).
            if table
                .lines()
                .any(|l| l.ends_with(&listed) && l.split_whitespace().nth(3) == Some("00010000"))
            {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("{} exited before listening at {addr}: {st}", self.name);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: nothing listens at {addr}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unique_addr(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@memtube-ffi-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ----------------------------------------------------- the stream format

/// Message `i` of a stream, as `payload` in tests/c/common.h: 8 to 608
/// bytes, `i` little-endian first, then a pattern of `i`; type id `i`.
fn payload(i: u64) -> Vec<u8> {
    let len = 8 + (i.wrapping_mul(37) % 601) as usize;
    let mut v = i.to_le_bytes().to_vec();
    v.extend((8..len).map(|k| (i.wrapping_mul(131) as usize).wrapping_add(k * 7) as u8));
    v
}

/// FNV-1a, as `fnv` in common.h.
fn fnv(mut h: u64, p: &[u8]) -> u64 {
    for &b in p {
        h ^= u64::from(b);
        h = h.wrapping_mul(1_099_511_628_211);
    }
    h
}
const FNV_START: u64 = 14_695_981_039_346_656_037;

fn checksum_of(line: &str) -> u64 {
    let hex = line
        .split_whitespace()
        .skip_while(|w| *w != "checksum")
        .nth(1)
        .unwrap_or_else(|| panic!("no checksum in {line:?}"));
    u64::from_str_radix(hex, 16).unwrap()
}

fn one_way(rust_sends: bool, rust_listens: bool) -> mt::Options {
    let d = if rust_sends == rust_listens {
        mt::Direction::ListenerToConnector
    } else {
        mt::Direction::ConnectorToListener
    };
    mt::Options::new().capacity(4096).direction(d)
}

fn duplex() -> mt::Options {
    mt::Options::new().capacity(4096).duplex(true)
}

fn rust_send(conn: &mut mt::Connection, n: u64) -> u64 {
    let tx = conn.sender().unwrap();
    let mut h = FNV_START;
    for i in 0..n {
        let p = payload(i);
        h = fnv(h, &p);
        if i % 2 == 0 {
            tx.send_timeout(&p, i as u32, T).unwrap();
        } else {
            let mut g = tx.reserve_timeout(p.len(), T).unwrap();
            g.copy_from_slice(&p);
            g.commit(p.len(), i as u32);
        }
    }
    h
}

fn rust_recv(conn: &mut mt::Connection, n: u64) -> u64 {
    let rx = conn.receiver().unwrap();
    let mut h = FNV_START;
    for i in 0..n {
        let m = rx.recv_timeout(T).unwrap();
        assert_eq!(
            (m.type_id(), m.payload()),
            (i as u32, &payload(i)[..]),
            "message {i}"
        );
        h = fnv(h, m.payload());
    }
    assert_eq!(rx.recv_timeout(T).err(), Some(mt::Error::Closed));
    h
}

const N: u64 = 20_000;

// ---------------------------------------------------------------- tests

/// Every function, the misuse cases, timeouts, call/serve, split, cancel
/// and regions, from C in one process (tests/c/unit.c).
#[test]
fn c_unit() {
    let line = Proc::c("unit", &[]).finish("unit:");
    assert!(line.ends_with(", 0 failed"), "{line}");
}

/// A ring in a region the C program mapped itself (MAP_SHARED), between
/// it and a forked child, both ways, blocking on the futex.
#[test]
fn c_region_between_processes() {
    let line = Proc::c("peer", &["region-fork", "20000"]).finish("echoed");
    assert!(line.contains("end MEMTUBE_CLOSED child 0"), "{line}");
}

/// The same, with the producer SIGKILLed mid-stream: the consumer drains
/// what it published, probes it GONE, and a successor process takes the
/// role over (`memtube_ring_take_over_producer`).
#[test]
fn c_region_producer_killed_and_replaced() {
    for n in [1, 777, 5000] {
        let line = Proc::c("peer", &["region-kill", &n.to_string()]).finish("killed");
        assert!(line.contains("end MEMTUBE_CLOSED child 0"), "{line}");
    }
}

/// The bindings' conformance image of docs/PROTOCOL.md (8.4) from plain C
/// (tests/c/conformance.c, 34 checks): the program reads the `ring-1k-conformance`
/// block from the document, copies it into its own 128-byte-aligned memory,
/// attaches a consumer (`memtube_ring_attach_consumer`) and must receive the
/// four messages, then CLOSED, through `memtube_recv` and, over a fresh
/// copy, `memtube_recv_copy`.
#[test]
fn c_conformance_image_in_own_memory() {
    let doc = manifest_dir().join("../../docs/PROTOCOL.md");
    let line = Proc::c("conformance", &[doc.to_str().unwrap()]).finish("conformance:");
    assert_eq!(line, "conformance: 34 passed, 0 failed");
}

#[test]
fn rust_to_c_stream() {
    let addr = unique_addr("r2c");
    let l = mt::listen(addr.as_str(), &one_way(true, true)).unwrap();
    let c = Proc::c("peer", &["recv", &addr, "connect", &N.to_string()]);
    let mut conn = l.accept_timeout(T).unwrap();
    let sent = rust_send(&mut conn, N);
    drop(conn);
    let line = c.finish("received");
    assert_eq!(checksum_of(&line), sent, "{line}");
    assert!(line.ends_with("end MEMTUBE_CLOSED"), "{line}");
}

#[test]
fn c_to_rust_stream() {
    let addr = unique_addr("c2r");
    let c = Proc::c("peer", &["send", &addr, "listen", &N.to_string()]);
    c.line("listening");
    let mut conn = mt::connect(addr.as_str(), &one_way(false, false)).unwrap();
    let got = rust_recv(&mut conn, N);
    let line = c.finish("sent");
    assert_eq!(checksum_of(&line), got, "{line}");
}

#[test]
fn c_to_c_stream() {
    let addr = unique_addr("c2c");
    let rx = Proc::c("peer", &["recv", &addr, "listen", &N.to_string()]);
    rx.line("listening");
    let tx = Proc::c("peer", &["send", &addr, "connect", &N.to_string()]);
    let sent = tx.finish("sent");
    let got = rx.finish("received");
    assert_eq!(checksum_of(&sent), checksum_of(&got));
    assert!(got.ends_with("end MEMTUBE_CLOSED"), "{got}");
}

fn check_reply(i: u64, r: &mt::Reply<'_>) {
    let mut want = payload(i);
    want.reverse();
    assert_eq!(
        (r.type_id(), r.payload()),
        (i as u32 + 1, &want[..]),
        "reply {i}"
    );
}

#[test]
fn c_serves_rust_calls() {
    let addr = unique_addr("cserve");
    let c = Proc::c("peer", &["serve", &addr, "listen"]);
    c.line("listening");
    let mut conn = mt::connect(addr.as_str(), &duplex()).unwrap();
    for i in 0..2000 {
        let r = conn.call_timeout(i as u32, &payload(i), T).unwrap();
        check_reply(i, &r);
    }
    drop(conn);
    let line = c.finish("served");
    assert_eq!(line, "served 2000 MEMTUBE_OK");
}

#[test]
fn rust_serves_c_calls() {
    let addr = unique_addr("rserve");
    let l = mt::listen(addr.as_str(), &duplex()).unwrap();
    let c = Proc::c("peer", &["call", &addr, "connect", "2000"]);
    let mut conn = l.accept_timeout(T).unwrap();
    let mut served = 0;
    conn.serve(|ty, req, reply| {
        served += 1;
        reply.extend(req.iter().rev());
        ty.wrapping_add(1)
    })
    .unwrap();
    assert_eq!(served, 2000);
    assert_eq!(c.finish("called"), "called 2000");
}

/// A Rust sender process is SIGKILLed after sending: the C receiver gets
/// every message, then PEER_GONE (never a crash, never a hang).
#[test]
fn c_receiver_gets_peer_gone_after_sigkill() {
    let addr = unique_addr("gone-rx");
    let c = Proc::c("peer", &["recv-until-gone", &addr]);
    c.line("listening");
    let mut rust = Proc::rust("sender-then-hang", &addr);
    c.line("got 100");
    rust.line("sent 150"); // every message committed, then killed
    rust.child.kill().unwrap();
    rust.child.wait().unwrap();
    let line = c.finish("end");
    assert_eq!(line, "end MEMTUBE_PEER_GONE after 150, peer state 2");
}

/// A Rust receiver process that never reads is SIGKILLed while the C
/// sender blocks on a full ring: the C sender gets PEER_GONE.
#[test]
fn c_sender_gets_peer_gone_after_sigkill() {
    let addr = unique_addr("gone-tx");
    let mut rust = Proc::rust("sink", &addr);
    rust.line("listening");
    let c = Proc::c("peer", &["send-until-gone", &addr]);
    c.line("full");
    std::thread::sleep(Duration::from_millis(100)); // let it block
    rust.child.kill().unwrap();
    rust.child.wait().unwrap();
    assert_eq!(c.finish("end"), "end MEMTUBE_PEER_GONE");
}

/// The Rust peers of the kill tests, run in a child process.
#[test]
#[ignore = "run by the tests above as a child process"]
fn child_entry() {
    let (Ok(role), Ok(addr)) = (std::env::var(ROLE), std::env::var(ADDR)) else {
        return;
    };
    match role.as_str() {
        "sender-then-hang" => {
            let mut conn = mt::connect(addr.as_str(), &one_way(true, false)).unwrap();
            let tx = conn.sender().unwrap();
            for i in 0..150 {
                tx.send_timeout(&payload(i), i as u32, T).unwrap();
            }
            println!("\nsent 150");
            std::thread::sleep(Duration::from_secs(600));
        }
        "sink" => {
            let l = mt::listen(addr.as_str(), &one_way(false, true)).unwrap();
            println!("\nlistening"); // own line: the harness printed "test child_entry ... "
            let _conn = l.accept_timeout(T).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

// ------------------------------------------------------ hostile listener

fn seqpacket_listener(addr: &str) -> OwnedFd {
    use rustix::net::*;
    let s = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let name = addr.strip_prefix('@').unwrap();
    bind(
        &s,
        &SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap(),
    )
    .unwrap();
    listen(&s, 8).unwrap();
    s
}

fn sealed_memfd(len: u64) -> OwnedFd {
    let fd = memfd::create(c"forged", len, false).unwrap();
    memfd::seal(fd.as_fd(), false).unwrap();
    fd
}

fn good_handshake() -> (Handshake, Vec<OwnedFd>) {
    let d = RingDesc::split(4096, Side::Receiver, 0, 1).unwrap();
    let fds = vec![sealed_memfd(d.main_len), sealed_memfd(d.consumer_len)];
    (Handshake::simplex(d, false), fds)
}

fn send_forged(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[OwnedFd]) {
    let b: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    send_raw::<Linux>(sock, bytes, &b).unwrap();
}

/// One forged handshake, written to an accepted socket.
type Forgery = Box<dyn Fn(BorrowedFd<'_>) + Send>;

/// The forgeries of tests/ipc.rs, one per connection: each must be refused.
fn forgeries() -> Vec<Forgery> {
    vec![
        Box::new(|s| {
            let (hs, fds) = good_handshake();
            let mut b = hs.encode();
            b[0] = b'X'; // bad magic
            send_forged(s, &b, &fds);
        }),
        Box::new(|s| {
            let (hs, fds) = good_handshake();
            let mut b = hs.encode();
            b[8] = 2; // bad version
            send_forged(s, &b, &fds);
        }),
        Box::new(|s| {
            let (hs, fds) = good_handshake();
            send_forged(s, &hs.encode()[..40], &fds); // truncated
        }),
        Box::new(|s| {
            let (hs, fds) = good_handshake();
            send_forged(s, &hs.encode(), &fds[..1]); // too few descriptors
        }),
        Box::new(|s| {
            let (hs, mut fds) = good_handshake();
            for _ in 0..10 {
                fds.push(sealed_memfd(4096)); // far too many
            }
            send_forged(s, &hs.encode(), &fds);
        }),
        Box::new(|s| {
            let (hs, mut fds) = good_handshake();
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            fds[0] = a.into(); // not a memfd
            send_forged(s, &hs.encode(), &fds);
        }),
        Box::new(|s| {
            let (hs, mut fds) = good_handshake();
            fds[0] = sealed_memfd(4096); // smaller than claimed
            send_forged(s, &hs.encode(), &fds);
        }),
        Box::new(|s| {
            let (hs, mut fds) = good_handshake();
            let fd =
                rustix::fs::memfd_create(c"unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
            rustix::fs::ftruncate(&fd, 640 + 4096).unwrap();
            fds[0] = fd; // no seals
            send_forged(s, &hs.encode(), &fds);
        }),
        Box::new(|s| {
            let (hs, fds) = good_handshake();
            send_forged(s, &hs.encode(), &fds); // never initialized: bad magic in the ring
        }),
        Box::new(|s| {
            let (mut hs, fds) = good_handshake();
            hs.rings[0].producer = Side::Sender; // the other direction than the client's
            send_forged(s, &hs.encode(), &fds);
        }),
    ]
}

/// Serve each forgery to one connection, then wait for that client to close.
fn fake_listener(addr: &str) -> (usize, std::thread::JoinHandle<()>) {
    let s = seqpacket_listener(addr);
    let forged = forgeries();
    let n = forged.len();
    let t = std::thread::spawn(move || {
        for f in forged {
            let c = rustix::net::accept(&s).unwrap();
            f(c.as_fd());
            let mut b = [0u8; 16];
            let _ = rustix::net::recv(&c, &mut b[..], rustix::net::RecvFlags::empty());
        }
    });
    (n, t)
}

/// Forged handshakes against a C client: HANDSHAKE each time, no crash,
/// no descriptor leaked (the C program counts /proc/self/fd).
#[test]
fn c_client_refuses_hostile_handshakes() {
    let addr = unique_addr("hostile");
    let (n, t) = fake_listener(&addr);
    let line = Proc::c("peer", &["hostile", &addr, &n.to_string()]).finish("refused");
    assert!(line.starts_with(&format!("refused {n} of {n}")), "{line}");
    t.join().unwrap();
}

/// The same under valgrind's memcheck: no definite leak and no invalid
/// access on the refusal paths. Skipped without valgrind, except in CI.
#[test]
fn c_client_refuses_hostile_handshakes_under_valgrind() {
    if !have_tool("valgrind", "the memcheck run of the hostile handshakes") {
        return;
    }
    let addr = unique_addr("hostile-vg");
    let (n, t) = fake_listener(&addr);
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--quiet",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--error-exitcode=99",
    ])
    .arg(program("peer"))
    .args(["hostile", &addr, &n.to_string()]);
    let line = Proc::spawn(cmd, "valgrind peer hostile").finish("refused");
    assert!(line.starts_with(&format!("refused {n} of {n}")), "{line}");
    t.join().unwrap();
}

/// `bindings/c/install.sh` into a scratch prefix: the versioned shared
/// library (its SONAME `libmemtube.so.<ABI major>`, the links to it), both
/// headers and `memtube.pc`. Then, through `pkg-config` (required in CI;
/// elsewhere its flags are given by hand without it): the example of
/// docs/c-abi.md (`examples/c/hello.c`) linked against the shared library,
/// which it records by its SONAME and loads from the prefix, and a C++
/// program over the installed `memtube.hpp` (tests/cpp/installed.cpp), which
/// checks the loaded library's ABI version against the SONAME's major.
#[test]
fn install_pkg_config_and_shared_library() {
    let b = build();
    let prefix = b.out.join(format!("prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    let st = Command::new("sh")
        .arg(manifest_dir().join("install.sh"))
        .arg(&prefix)
        .env("TARGET_DIR", &b.profile_dir)
        .status()
        .unwrap();
    assert!(st.success(), "install.sh failed");
    let lib = prefix.join("lib");
    let pc = std::fs::read_to_string(lib.join("pkgconfig/memtube.pc")).unwrap();
    assert!(pc.contains(&format!("prefix={}", prefix.display())), "{pc}");
    assert!(
        pc.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{pc}"
    );
    for h in ["memtube.h", "memtube.hpp"] {
        let installed = std::fs::read(prefix.join("include").join(h))
            .unwrap_or_else(|e| panic!("{h} not installed: {e}"));
        let source = std::fs::read(manifest_dir().join("include").join(h)).unwrap();
        assert!(
            installed == source,
            "the installed {h} differs from include/{h}"
        );
    }

    // The layout: the file, and the links the loader and the linker follow.
    let soname = format!("libmemtube.so.{ABI_MAJOR}");
    let real = format!("{soname}.{ABI_MINOR}");
    let is_file = |name: &str| {
        std::fs::symlink_metadata(lib.join(name)).is_ok_and(|m| m.file_type().is_file())
    };
    assert!(is_file(&real), "lib/{real} is not a file");
    assert!(is_file("libmemtube.a"), "lib/libmemtube.a is not a file");
    let link = |name: &str| std::fs::read_link(lib.join(name)).map(|p| p.display().to_string());
    assert_eq!(link(&soname).ok(), Some(real.clone()), "lib/{soname}");
    assert_eq!(
        link("libmemtube.so").ok(),
        Some(soname.clone()),
        "lib/libmemtube.so"
    );
    let readelf = have_tool("readelf", "the SONAME and DT_NEEDED checks");
    let dynamic = |file: &Path| {
        let o = Command::new("readelf")
            .arg("-d")
            .arg(file)
            .output()
            .unwrap();
        assert!(o.status.success(), "readelf -d {}: {o:?}", file.display());
        String::from_utf8(o.stdout).unwrap()
    };
    if readelf {
        let d = dynamic(&lib.join(&real));
        assert!(
            d.contains(&format!("Library soname: [{soname}]")),
            "{real} has not the SONAME {soname}:\n{d}"
        );
    }

    let flags = if have_tool("pkg-config", "building through pkg-config") {
        let o = Command::new("pkg-config")
            .args(["--cflags", "--libs", "memtube"])
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pkg-config --cflags --libs memtube: {o:?}"
        );
        String::from_utf8(o.stdout).unwrap()
    } else {
        eprintln!("using the flags pkg-config would give");
        format!("-I{0}/include -L{0}/lib -lmemtube", prefix.display())
    };

    // C: examples/c/hello.c, linked against the shared library.
    let exe = b.out.join("hello");
    let out = Command::new("gcc")
        .args([
            "-std=c99",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg(manifest_dir().join("../../examples/c/hello.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc hello.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if readelf {
        // The program records the SONAME, not the linker's name.
        let d = dynamic(&exe);
        assert!(
            d.contains(&format!("Shared library: [{soname}]"))
                && !d.contains("Shared library: [libmemtube.so]"),
            "hello does not need {soname}:\n{d}"
        );
    }
    let run = Command::new(&exe)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    assert!(run.status.success(), "hello failed: {run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello (type 1)\n");
    // The program really loads the shared library, from the prefix.
    if let Ok(l) = Command::new("ldd")
        .arg(&exe)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
    {
        let l = String::from_utf8_lossy(&l.stdout);
        let want = format!("{soname} => {}", lib.join(&soname).display());
        assert!(l.contains(&want), "ldd hello has no {want:?}:\n{l}");
    }

    // C++: memtube.hpp from the prefix, the same flags.
    if have_tool("g++", "the C++ program over the installed memtube.hpp") {
        let exe = b.out.join("installed-cpp");
        let out = Command::new("g++")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(manifest_dir().join("tests/cpp/installed.cpp"))
            .args(flags.split_whitespace())
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "g++ tests/cpp/installed.cpp against the prefix failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe)
            .env("LD_LIBRARY_PATH", &lib)
            .output()
            .unwrap();
        assert!(run.status.success(), "installed-cpp failed: {run:?}");
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            format!("ABI {ABI_MAJOR}.{ABI_MINOR}, compatible\n"),
            "the library loaded through {soname} reports another ABI"
        );
    }
    let _ = std::fs::remove_dir_all(&prefix);
}

/// memtube.hpp (over memtube.h, declarations inside `extern "C"`), built as
/// C++17 and C++20 with `-pedantic -Werror`, and as C++17 without
/// exceptions or RTTI (`-fno-exceptions -fno-rtti`: the wrapper needs
/// neither): results, move-only handles, zero-copy send and receive,
/// call/serve, split handles on two threads, rings in caller memory and the
/// conformance image of docs/PROTOCOL.md (tests/cpp/hpp.cpp). The C++
/// examples (examples/cpp) are compiled without exceptions or RTTI too.
/// Without g++ it is skipped, except in CI.
#[test]
fn cpp_wrapper_as_cpp17_and_cpp20() {
    let b = build();
    if !have_tool("g++", "the C++ wrapper's test") {
        return;
    }
    const BARE: [&str; 2] = ["-fno-exceptions", "-fno-rtti"];
    let src = manifest_dir().join("tests/cpp/hpp.cpp");
    let doc = manifest_dir().join("../../docs/PROTOCOL.md");
    for (std, extra, tag) in [
        ("c++17", &[][..], "c++17"),
        ("c++20", &[][..], "c++20"),
        ("c++17", &BARE[..], "c++17-bare"),
    ] {
        let exe = b.out.join(format!("hpp-{tag}"));
        let out = Command::new("g++")
            .args([
                &format!("-std={std}"),
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
            ])
            .args(extra)
            .args(["-O1", "-g", "-I"])
            .arg(manifest_dir().join("include"))
            .arg(&src)
            .arg(b.profile_dir.join("libmemtube.a"))
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&exe)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "g++ -std={std} {extra:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe).arg(&doc).output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains(", 0 failed"),
            "{tag}: {stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    for example in ["interop", "pingpong"] {
        let src = manifest_dir().join(format!("../../examples/cpp/{example}.cpp"));
        let out = Command::new("g++")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
            .args(BARE)
            .args(["-O1", "-c", "-I"])
            .arg(manifest_dir().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(b.out.join(format!("{example}-bare.o")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "g++ {BARE:?} examples/cpp/{example}.cpp failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The README's C and C++ blocks compile and link as they are (`-Wall
/// -Wextra -Werror`), so the copy-paste examples stay true; and the ones
/// that talk over `@demo` (each program a receiver, and with the argument
/// `send` a sender) run: every receiver with every sender, C and C++ both
/// ways, over an address of this test run, each receiver printing what its
/// sender sent.
#[test]
fn readme_c_and_cpp_blocks_build_and_run() {
    let b = build();
    let readme = std::fs::read_to_string(manifest_dir().join("../../README.md")).unwrap();
    let addr = unique_addr("readme");
    let mut n = 0;
    let mut talkers = Vec::new();
    for (fence, compiler, std, ext) in [
        ("```c\n", "gcc", "-std=c99", "c"),
        ("```cpp\n", "g++", "-std=c++17", "cpp"),
    ] {
        if !have_tool(compiler, "the README's blocks") {
            continue;
        }
        let talkers_before = talkers.len();
        for (i, block) in readme.split(fence).skip(1).enumerate() {
            let code = block.split("```").next().unwrap();
            let talks = code.contains("\"@demo\"");
            let src = b.out.join(format!("readme-{ext}-{i}.{ext}"));
            std::fs::write(&src, code.replace("\"@demo\"", &format!("\"{addr}\""))).unwrap();
            let exe = b.out.join(format!("readme-{ext}-{i}"));
            let out = Command::new(compiler)
                .args([std, "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(manifest_dir().join("include"))
                .arg(&src)
                .arg(b.profile_dir.join("libmemtube.a"))
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(&exe)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README block {i} ({ext}) does not build:\n{code}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
            if talks {
                talkers.push(exe);
            }
        }
        assert!(
            talkers.len() > talkers_before,
            "the README has no {ext} block that sends and receives over @demo"
        );
    }
    assert!(
        n >= 2 || std::env::var_os("CI").is_none(),
        "no README blocks found"
    );
    // What the README's senders send, as their receivers print it.
    let sent = ["type 0: hello 0", "type 1: hello 1", "type 2: hello 2"];
    for rx in &talkers {
        for tx in &talkers {
            let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
            let pair = format!("{} receiving from {} send", name(rx), name(tx));
            let mut receiver = Proc::spawn(Command::new(rx), &pair);
            receiver.wait_listening(&addr);
            let out = Command::new(tx).arg("send").output().unwrap();
            assert!(out.status.success(), "{pair}: the sender failed: {out:?}");
            assert_eq!(receiver.all_lines(), sent, "{pair}");
        }
    }
}

/// Teardown races from C, threads of one process (tests/c/teardown.c): a
/// split sender freed while another thread blocks receiving on the same
/// connection, a split receiver freed while another blocks sending, a
/// cancel while a thread blocks. Rounds: `MEMTUBE_TEARDOWN_ROUNDS` (10).
#[test]
fn c_teardown_races() {
    let rounds = std::env::var("MEMTUBE_TEARDOWN_ROUNDS").unwrap_or_else(|_| "10".into());
    let p = Proc::c("teardown", &[&rounds]);
    // About 0.3 s a round: wait for the summary accordingly.
    let wait = T + Duration::from_secs(rounds.parse::<u64>().unwrap());
    let worst = loop {
        match p.lines.recv_timeout(wait) {
            Ok(l) if l.starts_with("teardown: worst") => break l,
            Ok(_) => {}
            Err(e) => panic!("teardown {rounds}: no summary ({e})"),
        }
    };
    eprintln!("{worst}");
    let line = p.finish("teardown:");
    assert!(line.ends_with(", 0 failed"), "{line}");
}
