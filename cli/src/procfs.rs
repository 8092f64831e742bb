//! What `/proc` tells about processes, their mappings, descriptors and
//! listening sockets. Every file here is one the kernel lets this user read:
//! another user's `/proc/<pid>/maps` and `/proc/<pid>/fd` are refused
//! (EACCES) unless this process may ptrace-read that one (same uid, or
//! root), and that refusal is the monitor's whole access rule.
//!
//! References: proc(5) (`/proc/<pid>/maps`, `fd`, `map_files`, `stat`,
//! `/proc/net/unix`).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Which of memtube's regions a memfd is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `memtube-ring`: a ring's main region (control block and data).
    Ring,
    /// `memtube-consumer`: the consumer block of a ring with isolation.
    ConsumerBlock,
}

/// The kind of a region whose link or maps path is `path`
/// (`/memfd:memtube-ring (deleted)`), if it is one of memtube's.
pub fn kind_of(path: &str) -> Option<Kind> {
    let name = path.strip_suffix(" (deleted)").unwrap_or(path);
    match name {
        "/memfd:memtube-ring" => Some(Kind::Ring),
        "/memfd:memtube-consumer" => Some(Kind::ConsumerBlock),
        _ => None,
    }
}

/// A file's identity: `(st_dev as (major, minor), st_ino)`.
pub type FileId = ((u32, u32), u64);

/// One mapping of a memtube region in a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// Start and end addresses (the name under `/proc/<pid>/map_files`).
    pub range: String,
    /// Mapped writable.
    pub writable: bool,
    /// The file mapped.
    pub id: FileId,
    /// Which region.
    pub kind: Kind,
}

/// Parse `/proc/<pid>/maps` text, keeping memtube's regions only.
pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        // address perms offset dev inode [path]; the path may hold spaces.
        let mut it = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(_off), Some(dev), Some(ino), Some(path)) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            continue;
        };
        let Some(kind) = kind_of(path.trim_start()) else {
            continue;
        };
        let Some(dev) = parse_dev(dev) else { continue };
        let Ok(ino) = ino.parse::<u64>() else {
            continue;
        };
        out.push(MapEntry {
            range: range.to_string(),
            writable: perms.as_bytes().get(1) == Some(&b'w'),
            id: (dev, ino),
            kind,
        });
    }
    out
}

/// `"00:01"` (hex major:minor) as numbers.
fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((
        u32::from_str_radix(a, 16).ok()?,
        u32::from_str_radix(b, 16).ok()?,
    ))
}

/// The `(major, minor)` of a `st_dev` (Linux's encoding, as `gnu_dev_major`).
pub fn dev_parts(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    (major as u32, minor as u32)
}

/// memtube's regions that `pid` maps.
pub fn maps(pid: u32) -> io::Result<Vec<MapEntry>> {
    Ok(parse_maps(&std::fs::read_to_string(format!(
        "/proc/{pid}/maps"
    ))?))
}

/// A descriptor of a memtube region that `pid` holds open.
#[derive(Clone, Debug)]
pub struct FdEntry {
    /// `/proc/<pid>/fd/<n>`.
    pub path: PathBuf,
    /// Which region.
    pub kind: Kind,
}

/// memtube's regions that `pid` holds descriptors of.
pub fn fds(pid: u32) -> io::Result<Vec<FdEntry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(e) = e else { continue };
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if let Some(kind) = link.to_str().and_then(kind_of) {
            out.push(FdEntry {
                path: e.path(),
                kind,
            });
        }
    }
    Ok(out)
}

/// The pid namespace of `/proc/<pid>` (`self` for the monitor's):
/// `pid:[inode]`, `None` if it cannot be read.
pub fn pid_ns(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .and_then(|l| l.to_str().map(str::to_string))
}

/// Whether this user may read `pid`'s mappings: `Err` with the reason if
/// the process does not exist or the kernel refuses.
pub fn check_access(pid: u32) -> Result<(), String> {
    match std::fs::File::open(format!("/proc/{pid}/maps")) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!("no process {pid}")),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(format!(
            "process {pid}: permission denied (another user's, or more privileged: \
             the kernel shows its mappings to root only)"
        )),
        Err(e) => Err(format!("process {pid}: {e}")),
    }
}

/// The process ids in `/proc`.
pub fn pids() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// A process's owner (the uid of `/proc/<pid>`: its effective uid).
pub fn uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// A process's command name (`/proc/<pid>/comm`), `?` if unreadable.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A process's state letter (`/proc/<pid>/stat` field 3): `R`, `S`, `Z`, ...
pub fn state(pid: u32) -> Option<char> {
    let s = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold anything up to the last ')'.
    let close = s.iter().rposition(|&b| b == b')')?;
    s.get(close + 2).map(|&b| b as char)
}

/// The inodes of listening Unix sockets bound to `addr` (`@name` for an
/// abstract name, as `/proc/net/unix` writes it, or a path), in this
/// network namespace.
pub fn listening_inodes(net_unix: &str, addr: &str) -> Vec<u64> {
    // A path may have been bound relative to another directory: compare
    // the absolute form too.
    let abs = std::fs::canonicalize(addr)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string));
    let mut out = Vec::new();
    for line in net_unix.lines().skip(1) {
        // Num RefCount Protocol Flags Type St Inode [Path]
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let listening = u32::from_str_radix(f[3], 16).is_ok_and(|x| x & 0x1_0000 != 0);
        let path = f[7..].join(" ");
        if listening && (path == addr || abs.as_deref() == Some(path.as_str())) {
            if let Ok(ino) = f[6].parse() {
                out.push(ino);
            }
        }
    }
    out
}

/// The processes holding a listening socket bound to `addr`.
pub fn listener_pids(addr: &str) -> io::Result<Vec<u32>> {
    let net = std::fs::read_to_string("/proc/net/unix")?;
    let inodes = listening_inodes(&net, addr);
    if inodes.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut out = Vec::new();
    for pid in pids() {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = dir.filter_map(|e| e.ok()).any(|e| {
            std::fs::read_link(e.path())
                .ok()
                .and_then(|l| l.to_str().map(|s| wanted.iter().any(|w| w == s)))
                .unwrap_or(false)
        });
        if holds {
            out.push(pid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let text = "\
7f0ad3139000-7f0ad313a000 rw-s 00000000 00:01 2071                       /memfd:memtube-ring (deleted)
7f0ad313a000-7f0ad313b000 r--s 00000000 00:01 2072                       /memfd:memtube-consumer (deleted)
7f0ad313b000-7f0ad313c000 rw-s 00000000 00:01 2073                       /memfd:other (deleted)
7f0ad313c000-7f0ad313d000 r--p 00000000 fd:01 99                         /usr/lib/x y/memtube-ring
garbage line
7f-7f rw-s 0 zz:01 5 /memfd:memtube-ring (deleted)
";
        let m = parse_maps(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, ((0, 1), 2071));
        assert!(m[0].writable);
        assert_eq!(m[0].kind, Kind::Ring);
        assert_eq!(m[0].range, "7f0ad3139000-7f0ad313a000");
        assert!(!m[1].writable);
        assert_eq!(m[1].kind, Kind::ConsumerBlock);
    }

    #[test]
    fn dev_numbers() {
        // makedev(8, 1) and makedev(4100, 70000), as glibc encodes them.
        let makedev = |ma: u64, mi: u64| {
            (ma & 0xfff) << 8 | (ma & !0xfff) << 32 | (mi & 0xff) | (mi & !0xff) << 12
        };
        assert_eq!(makedev(8, 1), 0x801);
        assert_eq!(dev_parts(0x801), (8, 1));
        assert_eq!(dev_parts(makedev(4100, 70000)), (4100, 70000));
    }

    #[test]
    fn net_unix_listeners() {
        let text = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0005 01 4242 @memtube-demo
0000000000000000: 00000003 00000000 00000000 0005 03 4243 @memtube-demo
0000000000000000: 00000002 00000000 00010000 0001 01 4244 /tmp/a b.sock
0000000000000000: 00000002 00000000 00010000 0001 01 4245
";
        assert_eq!(listening_inodes(text, "@memtube-demo"), vec![4242]);
        assert_eq!(listening_inodes(text, "/tmp/a b.sock"), vec![4244]);
        assert!(listening_inodes(text, "@other").is_empty());
    }

    #[test]
    fn region_names() {
        assert_eq!(kind_of("/memfd:memtube-ring (deleted)"), Some(Kind::Ring));
        assert_eq!(
            kind_of("/memfd:memtube-consumer (deleted)"),
            Some(Kind::ConsumerBlock)
        );
        assert_eq!(kind_of("/memfd:memtube-ringx (deleted)"), None);
        assert_eq!(kind_of("socket:[1]"), None);
    }
}
