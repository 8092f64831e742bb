//! Finding the rings of running processes and mapping their control blocks
//! read-only.
//!
//! A process's memtube regions are memfds named `memtube-ring` (a ring) and
//! `memtube-consumer` (the consumer block of a ring with isolation). They
//! show in `/proc/<pid>/maps` (who maps them, and writable or not) and, for
//! as long as the process keeps a descriptor (connections do), in
//! `/proc/<pid>/fd`. A region is opened read-only through such a
//! descriptor (or, for a privileged monitor, through
//! `/proc/<pid>/map_files`), checked (the same file as listed, sealed
//! against shrinking so that a mapping cannot fault, a sane size), mapped
//! `PROT_READ` and validated by [`memtube_ring::Monitor::attach`]; nothing
//! is ever written to it. Anything that fails is listed as skipped, with
//! the reason.

use crate::procfs::{self, FileId, Kind};
use memtube_ring::{Monitor, RawRegion, Stats, CONSUMER_BLOCK_SIZE, DATA_OFFSET, MIN_CAPACITY};
use rustix::fs::{Mode, OFlags, SealFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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

impl RoMap {
    /// Open `path` read-only, check that it is still `id` and sealed
    /// against shrinking, and map it whole if its size is in `min..=max`.
    fn open(path: &std::path::Path, id: FileId, min: u64, max: u64) -> Result<Opened, String> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| format!("fstat: {e}"))?;
        if (procfs::dev_parts(st.st_dev), st.st_ino) != id {
            return Err("the descriptor changed while it was looked at".into());
        }
        // A file that can shrink could make a read of our mapping fault
        // (SIGBUS): memtube seals every region against shrinking.
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|_| "not a memfd".to_string())?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err("not sealed against shrinking (not made by memtube)".into());
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
    // Descriptors: identify each by its target (stat follows the link).
    for (pid, path, kind, pass) in fd_paths {
        let Ok(st) = rustix::fs::stat(&path) else {
            continue;
        };
        let id = (procfs::dev_parts(st.st_dev), st.st_ino);
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
            match RoMap::open(p, id, min, max) {
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
        let (capacity, cons, block) = match first {
            Ok(cap) => (cap, None, None),
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
                match unsafe { Monitor::attach(raw) } {
                    Ok(m) => (m.capacity(), Some(bo.map), Some((bid, guess))),
                    Err(e) => {
                        out.skipped.push(Skipped {
                            id: id_name(id),
                            pids,
                            reason: format!("invalid ring: {e}"),
                        });
                        continue;
                    }
                }
            }
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
/// in the region if they are among the processes that map it, else the
/// mapping permissions of a ring with isolation.
fn assign_roles(v: &mut RingView) {
    if let Ok(s) = v.stats() {
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
