//! Finding the rings of running processes and mapping their control blocks
//! read-only.
//!
//! A process's memtube regions are memfds named `memtube-ring` (a ring) and
//! `memtube-consumer` (the consumer block of a ring with isolation). They
//! show in `/proc/<pid>/maps` (who maps them, and writable or not) and, for
//! as long as the process keeps a descriptor (connections do), in
//! `/proc/<pid>/fd`. A region is reached through such a descriptor (or,
//! for a privileged monitor, through `/proc/<pid>/map_files`): pinned with
//! `O_PATH` (nothing opened in its file system yet), checked by name, type
//! and device (a memfd, not on hugetlbfs, the same file as listed), only
//! then opened read-only through the pinned descriptor, its seals read
//! (sealed against shrinking) before its size (a sane one), mapped
//! `PROT_READ` and validated by [`memtube_ring::Monitor::attach`]; nothing
//! is ever written to it. Anything that fails is listed as skipped, with
//! the reason.

use crate::procfs::{self, FileId, Kind};
use memtube_ring::{Monitor, RawRegion, Stats, CONSUMER_BLOCK_SIZE, DATA_OFFSET, MIN_CAPACITY};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{AtFlags, MemfdFlags, Mode, OFlags, SealFlags, StatxFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The most regions one scan opens (a process that creates thousands of
/// memfds named `memtube-ring` does not make the monitor map them all).
pub const MAX_REGIONS: usize = 4096;

/// The largest main region mapped: a ring of the largest capacity, rounded
/// up to a huge page.
const MAX_MAIN_LEN: u64 = DATA_OFFSET as u64 + (1 << 31) + (2 << 20);

/// What to look at.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every process this user may inspect.
    All,
    /// These processes, and the rings they share with any other.
    Pids(Vec<u32>),
}

/// A read-only shared mapping of a whole region; unmapped on drop.
///
/// Invariant: `ptr..ptr + len` is a live `PROT_READ`, `MAP_SHARED` mapping
/// of a file sealed against shrinking, made by [`RoMap::open`] and unmapped
/// only by `Drop`, so every byte of it stays readable while `self` lives.
#[derive(Debug)]
pub struct RoMap {
    ptr: *mut u8,
    len: usize,
}

impl Drop for RoMap {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (type invariant) and nothing borrows
        // it any more (monitors never outlive a `stats` call).
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// What an opened region is.
struct Opened {
    map: RoMap,
    /// Its status change time (creation, for memtube's memfds).
    ctime: Option<SystemTime>,
}

/// `f_type` of hugetlbfs (`linux/magic.h`).
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// The devices (`st_dev`) of the kernel's internal mounts that memfds live
/// on: one tmpfs mount for every ordinary memfd of the system, one
/// hugetlbfs mount per huge page size for `MFD_HUGETLB` ones. Found once by
/// creating memfds of our own.
struct MemfdDevs {
    /// Ordinary memfds; `None` if this process could not create one.
    plain: Option<(u32, u32)>,
    /// Huge page memfds, of each size the kernel offers.
    huge: Vec<(u32, u32)>,
}

fn memfd_devs() -> &'static MemfdDevs {
    static DEVS: OnceLock<MemfdDevs> = OnceLock::new();
    DEVS.get_or_init(|| {
        let dev = |flags: MemfdFlags| {
            let fd = rustix::fs::memfd_create("memtube-monitor-probe", MemfdFlags::CLOEXEC | flags)
                .ok()?;
            rustix::fs::fstat(&fd)
                .ok()
                .map(|s| procfs::dev_parts(s.st_dev))
        };
        let mut huge: Vec<(u32, u32)> = dev(MemfdFlags::HUGETLB).into_iter().collect();
        // Every size in /sys/kernel/mm/hugepages/hugepages-<kB>kB, as
        // MFD_HUGETLB | log2(size) << MFD_HUGE_SHIFT.
        if let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
            for e in dir.flatten() {
                let name = e.file_name();
                let kb = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("hugepages-")?.strip_suffix("kB"))
                    .and_then(|k| k.parse::<u64>().ok());
                if let Some(bytes) = kb.and_then(|k| k.checked_mul(1024)) {
                    if bytes.is_power_of_two() {
                        let flags = MemfdFlags::from_bits_retain(
                            MemfdFlags::HUGETLB.bits() | (bytes.trailing_zeros() << 26),
                        );
                        huge.extend(dev(flags));
                    }
                }
            }
        }
        MemfdDevs {
            plain: dev(MemfdFlags::empty()),
            huge,
        }
    })
}

/// A file reached through a `/proc` magic link (`/proc/<pid>/fd/<n>`,
/// `/proc/<pid>/map_files/<range>`), pinned by an `O_PATH` descriptor of our
/// own: the other process can no longer swap it, and nothing so far has
/// opened it in its file system (a FIFO or a FUSE file would block there).
struct Pinned {
    /// `O_PATH`.
    fd: OwnedFd,
    /// Which of memtube's regions its name says it is.
    kind: Kind,
    /// `(st_dev, st_ino)`.
    id: FileId,
    /// `st_mode`.
    mode: u32,
}

/// Pin the file `path` leads to and read what can be read of it without
/// asking its file system anything: its name (`/proc/self/fd/<ours>`, which
/// must be one of memtube's memfd names) and its cached attributes
/// (`statx` with `AT_STATX_DONT_SYNC`).
fn pin(path: &Path) -> Result<Pinned, String> {
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| format!("readlink: {e}"))?;
    let kind = link
        .to_str()
        .and_then(procfs::kind_of)
        .ok_or_else(|| format!("no longer one of memtube's memfds (now {})", link.display()))?;
    let st = rustix::fs::statx(
        &fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE | StatxFlags::MODE | StatxFlags::INO,
    )
    .map_err(|e| format!("statx: {e}"))?;
    Ok(Pinned {
        fd,
        kind,
        id: ((st.stx_dev_major, st.stx_dev_minor), st.stx_ino),
        mode: u32::from(st.stx_mode),
    })
}

impl RoMap {
    /// Open the region `path` leads to read-only and map it whole, if it
    /// still is `id`, a memfd of `kind` (not on hugetlbfs), sealed against
    /// shrinking, and its size is in `min..=max`.
    ///
    /// The order matters against a hostile holder: the file is pinned
    /// (`O_PATH`) and vetted by name, type and device before anything opens
    /// it, so a descriptor swapped for a FIFO or a FUSE file is refused
    /// instead of blocking the monitor; its seals are read before its size,
    /// so the size cannot shrink after it was read.
    fn open(path: &Path, id: FileId, kind: Kind, min: u64, max: u64) -> Result<Opened, String> {
        let p = pin(path)?;
        if p.id != id || p.kind != kind {
            return Err("the descriptor changed while it was looked at".into());
        }
        if p.mode & 0o170000 != 0o100000 {
            return Err("not a regular file".into());
        }
        let devs = memfd_devs();
        if devs.huge.contains(&p.id.0) {
            return Err(HUGE_PAGES.into());
        }
        match devs.plain {
            Some(d) if d == p.id.0 => {}
            Some(_) => return Err("not a memfd (on another file system)".into()),
            None => return Err("cannot create a memfd to compare with".into()),
        }
        // A memfd, pinned: only now open it, through our own descriptor.
        let fd = rustix::fs::open(
            format!("/proc/self/fd/{}", p.fd.as_raw_fd()),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot reopen {}: {e}", path.display()))?;
        drop(p.fd);
        // Seals first: once SHRINK is set, no size read after it can
        // shrink; a size read before it could (shrunk, then sealed).
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|_| "not a memfd".to_string())?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err("not sealed against shrinking (not made by memtube)".into());
        }
        let st = rustix::fs::fstat(&fd).map_err(|e| format!("fstat: {e}"))?;
        if (procfs::dev_parts(st.st_dev), st.st_ino) != id {
            return Err("the descriptor changed while it was looked at".into());
        }
        // Belt and braces (the device check above already refuses them):
        // holes can be punched in a hugetlbfs file despite its seals.
        let fs = rustix::fs::fstatfs(&fd).map_err(|e| format!("fstatfs: {e}"))?;
        #[allow(clippy::unnecessary_cast)] // f_type's type differs between targets
        if fs.f_type as i64 == HUGETLBFS_MAGIC {
            return Err(HUGE_PAGES.into());
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size < min || size > max {
            return Err(format!("size {size} is not a region's ({min}..={max})"));
        }
        let len = usize::try_from(size).map_err(|_| "too large".to_string())?;
        // SAFETY: a fresh mapping at an address the kernel chooses (no
        // MAP_FIXED) aliases nothing; read-only and shared, it never changes
        // the file.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| format!("mmap: {e}"))?;
        let ctime = u64::try_from(st.st_ctime)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        Ok(Opened {
            map: RoMap {
                ptr: ptr.cast(),
                len,
            },
            ctime,
        })
    }
}

/// Why a region on hugetlbfs is skipped.
pub const HUGE_PAGES: &str = "huge pages: not monitored (holes can be punched in a hugetlbfs \
                              memfd despite its seals, and reading one could fault)";

/// How a ring's roles were matched to processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleSource {
    /// The holders recorded in the region (pid and start time).
    Holder,
    /// Who maps which region writable (rings with isolation).
    Permissions,
    /// Not known: the processes that map the ring are listed instead.
    Unknown,
}

impl RoleSource {
    /// Its name in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            RoleSource::Holder => "holder",
            RoleSource::Permissions => "mapping permissions",
            RoleSource::Unknown => "unknown",
        }
    }
}

/// A ring found and mapped.
pub struct RingView {
    /// Its main region's identity.
    pub id: FileId,
    /// Its data-area capacity in bytes.
    pub capacity: u32,
    /// With isolation: the consumer block's identity, and whether it was
    /// paired with this ring only by creation order (a guess).
    pub consumer_block: Option<(FileId, bool)>,
    /// Processes mapping the main region, and whether writable.
    pub mappers: BTreeMap<u32, bool>,
    /// The producer's and the consumer's process, where known.
    pub producer_pid: Option<u32>,
    /// See `producer_pid`.
    pub consumer_pid: Option<u32>,
    /// How the two pids were found.
    pub roles: RoleSource,
    /// When the region was created (its memfd's status change time).
    pub created: Option<SystemTime>,
    /// A process mapping or holding it is in another pid namespace than
    /// the monitor (or its namespace could not be read): the holder pids
    /// recorded in the region are that namespace's, so they are not used.
    pub foreign_pid_ns: bool,
    main: RoMap,
    cons: Option<RoMap>,
}

impl RingView {
    fn raw(&self) -> RawRegion {
        let r = RawRegion::new(self.main.ptr, self.main.len);
        match &self.cons {
            Some(c) => r.with_consumer_block(c.ptr, c.len),
            None => r,
        }
    }

    /// A snapshot of the counters; the header is validated again (a peer
    /// may have rewritten it since).
    pub fn stats(&self) -> Result<Stats, memtube_ring::Error> {
        // SAFETY: both mappings are live and readable for as long as `self`
        // (RoMap's invariant); the monitor only reads and is dropped here.
        let m = unsafe { Monitor::attach(self.raw()) }?;
        Ok(m.stats())
    }

    /// The ring's identity as text: `dev:ino` of its main region.
    pub fn name(&self) -> String {
        id_name(self.id)
    }
}

/// `major:minor:inode`.
pub fn id_name(id: FileId) -> String {
    format!("{}:{}:{}", id.0 .0, id.0 .1, id.1)
}

/// A region that was found but not shown, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// `dev:ino`.
    pub id: String,
    /// The processes mapping or holding it.
    pub pids: Vec<u32>,
    /// Why.
    pub reason: String,
}

/// The outcome of one scan.
#[derive(Default)]
pub struct Scan {
    /// The rings mapped, in a stable order (by creation, then identity).
    pub rings: Vec<RingView>,
    /// What was found but could not be shown.
    pub skipped: Vec<Skipped>,
    /// Processes looked at.
    pub processes: usize,
    /// Processes whose mappings the kernel would not show (another user's).
    pub not_permitted: usize,
}

#[derive(Default)]
struct Region {
    kind: Option<Kind>,
    mappers: BTreeMap<u32, bool>,
    /// Ways to open it: descriptors first, then `map_files` links.
    paths: Vec<PathBuf>,
    holders: BTreeSet<u32>,
}

impl Region {
    /// The processes that map it or hold it open.
    fn pids(&self) -> Vec<u32> {
        let s: BTreeSet<u32> = self.mappers.keys().chain(&self.holders).copied().collect();
        s.into_iter().collect()
    }
}

/// Scan `scope`: find memtube's regions, open, pair and validate them.
pub fn scan(scope: &Scope) -> Scan {
    let mut out = Scan::default();
    let pids = match scope {
        Scope::All => procfs::pids(),
        Scope::Pids(p) => p.clone(),
    };
    let me = std::process::id();
    let mut regions: BTreeMap<FileId, Region> = BTreeMap::new();
    let mut fd_paths: Vec<(u32, PathBuf, Kind, i32)> = Vec::new();
    // First the processes asked for, then (with `--pid` or `--addr`) every
    // other one, for the peers of the rings already found.
    let rest: Vec<u32> = match scope {
        Scope::All => Vec::new(),
        Scope::Pids(_) => procfs::pids()
            .into_iter()
            .filter(|p| !pids.contains(p))
            .collect(),
    };
    for (pass, list) in [(0, &pids), (1, &rest)] {
        for &pid in list {
            if pid == me {
                continue;
            }
            let maps = match procfs::maps(pid) {
                Ok(m) => m,
                Err(e) => {
                    if pass == 0 {
                        out.processes += 1;
                        if e.kind() == std::io::ErrorKind::PermissionDenied {
                            out.not_permitted += 1;
                        }
                    }
                    continue;
                }
            };
            if pass == 0 {
                out.processes += 1;
            }
            let maps: Vec<_> = maps
                .into_iter()
                .filter(|m| pass == 0 || regions.contains_key(&m.id))
                .collect();
            for m in &maps {
                let r = regions.entry(m.id).or_default();
                r.kind = Some(m.kind);
                let w = r.mappers.entry(pid).or_insert(false);
                *w |= m.writable;
                r.paths
                    .push(PathBuf::from(format!("/proc/{pid}/map_files/{}", m.range)));
            }
            if pass == 0 || !maps.is_empty() {
                if let Ok(fds) = procfs::fds(pid) {
                    fd_paths.extend(fds.into_iter().map(|f| (pid, f.path, f.kind, pass)));
                }
            }
        }
    }
    // Descriptors: identify each by its target, pinned (never opened
    // there: the process may have swapped it for a FIFO).
    for (pid, path, _, pass) in fd_paths {
        let Ok(Pinned { id, kind, .. }) = pin(&path) else {
            continue;
        };
        if pass == 1 && !regions.contains_key(&id) {
            continue;
        }
        let r = regions.entry(id).or_default();
        r.kind = Some(kind);
        r.holders.insert(pid);
        // Descriptors first: any process of the same user may open them.
        r.paths.insert(0, path);
    }

    let mut mains = Vec::new();
    let mut blocks: Vec<(FileId, Region, Opened)> = Vec::new();
    for (i, (id, r)) in regions.into_iter().enumerate() {
        let pids = r.pids();
        if i >= MAX_REGIONS {
            out.skipped.push(Skipped {
                id: id_name(id),
                pids,
                reason: format!("more than {MAX_REGIONS} regions"),
            });
            continue;
        }
        let (min, max) = match r.kind {
            Some(Kind::ConsumerBlock) => (CONSUMER_BLOCK_SIZE as u64, 1 << 20),
            _ => ((DATA_OFFSET as u32 + MIN_CAPACITY) as u64, MAX_MAIN_LEN),
        };
        let mut last_err = String::from("no way to open it");
        let mut opened = None;
        for p in &r.paths {
            match RoMap::open(p, id, r.kind.unwrap_or(Kind::Ring), min, max) {
                Ok(o) => {
                    opened = Some(o);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let Some(o) = opened else {
            if r.holders.is_empty() && last_err.contains("Operation not permitted") {
                last_err = "mapped but not held open: opening another process's mapping \
                            needs CAP_CHECKPOINT_RESTORE (run as root), or a memtube \
                            that keeps its region descriptors"
                    .into();
            }
            out.skipped.push(Skipped {
                id: id_name(id),
                pids,
                reason: last_err,
            });
            continue;
        };
        match r.kind {
            Some(Kind::ConsumerBlock) => blocks.push((id, r, o)),
            _ => mains.push((id, r, o, pids)),
        }
    }

    // Pair each ring with isolation with its consumer block. The block is
    // mapped writable by the ring's consumer and read-only by its
    // producer, the main region the other way round; several rings between
    // the same two processes in the same direction are paired in creation
    // (inode) order, which is a guess.
    let my_ns = procfs::pid_ns("self");
    let foreign = |pids: &[u32]| {
        my_ns.is_none() || pids.iter().any(|p| procfs::pid_ns(&p.to_string()) != my_ns)
    };
    let mut free_blocks: Vec<Option<(FileId, Region, Opened)>> =
        blocks.into_iter().map(Some).collect();
    let writers = |m: &BTreeMap<u32, bool>, w: bool| -> Vec<u32> {
        m.iter().filter(|(_, &x)| x == w).map(|(&p, _)| p).collect()
    };
    for (id, r, o, pids) in mains {
        let single = RawRegion::new(o.map.ptr, o.map.len);
        // SAFETY: the mapping is live and readable (RoMap's invariant); the
        // monitor only reads and is dropped at once.
        let first = unsafe { Monitor::attach(single) }.map(|m| m.capacity());
        let attached = match first {
            Ok(cap) => Ok((cap, None, None)),
            Err(memtube_ring::Error::LayoutMismatch) => {
                let prod = writers(&r.mappers, true);
                let cons = writers(&r.mappers, false);
                let fits = |b: &Region| {
                    writers(&b.mappers, true) == cons && writers(&b.mappers, false) == prod
                };
                let candidates: Vec<usize> = free_blocks
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.as_ref().is_some_and(|(_, br, _)| fits(br)))
                    .map(|(i, _)| i)
                    .collect();
                let guess = candidates.len() > 1;
                let Some(&i) = candidates.first() else {
                    out.skipped.push(Skipped {
                        id: id_name(id),
                        pids,
                        reason: "a ring with isolation whose consumer block was not found".into(),
                    });
                    continue;
                };
                let (bid, _, bo) = free_blocks[i].take().expect("a candidate is present");
                let raw = single.with_consumer_block(bo.map.ptr, bo.map.len);
                // SAFETY: as above, for both live read-only mappings.
                unsafe { Monitor::attach(raw) }
                    .map(|m| (m.capacity(), Some(bo.map), Some((bid, guess))))
            }
            Err(e) => Err(e),
        };
        let (capacity, cons, block) = match attached {
            Ok(a) => a,
            Err(e) => {
                out.skipped.push(Skipped {
                    id: id_name(id),
                    pids,
                    reason: format!("invalid ring: {e}"),
                });
                continue;
            }
        };
        let mut view = RingView {
            id,
            capacity,
            consumer_block: block,
            mappers: r.mappers,
            producer_pid: None,
            consumer_pid: None,
            roles: RoleSource::Unknown,
            created: o.ctime,
            foreign_pid_ns: foreign(&pids),
            main: o.map,
            cons,
        };
        assign_roles(&mut view);
        out.rings.push(view);
    }
    for (bid, br, _) in free_blocks.into_iter().flatten() {
        out.skipped.push(Skipped {
            id: id_name(bid),
            pids: br.pids(),
            reason: "a consumer block whose ring was not found".into(),
        });
    }
    out.rings.sort_by_key(|v| (v.created, v.id));
    out
}

/// Decide which process produces and which consumes: the holders recorded
/// in the region if they are among the processes that map it (and those
/// are in the monitor's pid namespace), else the mapping permissions of a
/// ring with isolation.
fn assign_roles(v: &mut RingView) {
    if let Some(s) = v.stats().ok().filter(|_| !v.foreign_pid_ns) {
        let pid = |h: Option<memtube_ring::Holder>| h.map(|h| h.get() as u32);
        let (p, c) = (pid(s.producer_holder), pid(s.consumer_holder));
        let known = |x: Option<u32>| x.is_some_and(|x| v.mappers.contains_key(&x));
        if known(p) || known(c) {
            v.producer_pid = p.filter(|x| v.mappers.contains_key(x));
            v.consumer_pid = c.filter(|x| v.mappers.contains_key(x));
            // One role not (yet) recorded: between two processes, it is
            // the other one's.
            let other = |x: Option<u32>| {
                let rest: Vec<u32> = v
                    .mappers
                    .keys()
                    .copied()
                    .filter(|&m| Some(m) != x)
                    .collect();
                (v.mappers.len() == 2 && rest.len() == 1).then(|| rest[0])
            };
            if v.consumer_pid.is_none() {
                v.consumer_pid = other(v.producer_pid);
            }
            if v.producer_pid.is_none() {
                v.producer_pid = other(v.consumer_pid);
            }
            v.roles = RoleSource::Holder;
            return;
        }
    }
    if v.consumer_block.is_some() {
        let one = |w: bool| {
            let v: Vec<u32> = v
                .mappers
                .iter()
                .filter(|(_, &x)| x == w)
                .map(|(&p, _)| p)
                .collect();
            (v.len() == 1).then(|| v[0])
        };
        v.producer_pid = one(true);
        v.consumer_pid = one(false);
        v.roles = RoleSource::Permissions;
    }
}
