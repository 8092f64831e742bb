//! Where two CPUs sit relative to each other, as the kernel describes the
//! machine (`/sys/devices/system/cpu`): two hyperthreads of one core, two
//! cores sharing a cache, two dies of one package, or two sockets. A
//! round trip between SMT siblings crosses no core boundary at all; one
//! between cores sharing a last-level cache crosses the cache's
//! interconnect; across dies or sockets costs more again. Other projects
//! publish figures from SMT siblings: a figure is only comparable beside
//! the floor of the same kind of pair.
//!
//! In a virtual machine this is the topology the hypervisor presents,
//! which need not match where the vCPUs really run (it is still what the
//! guest's scheduler and this report can know).

use std::path::Path;

/// The relation of two CPUs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Placement {
    /// The same CPU.
    SameCpu,
    /// Two hardware threads of one core.
    SmtSiblings,
    /// Two cores that share a cache of this level (the lowest shared one).
    SharedCache(u32),
    /// Two cores of one die with no shared cache.
    SameDie,
    /// Two dies of one package.
    AcrossDies,
    /// Two packages (sockets).
    AcrossSockets,
    /// The kernel does not say.
    Unknown,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::SameCpu => write!(f, "one CPU (not a cross-CPU measurement)"),
            Placement::SmtSiblings => write!(f, "SMT siblings (two hardware threads of one core)"),
            Placement::SharedCache(l) => write!(f, "two cores sharing an L{l} cache"),
            Placement::SameDie => write!(f, "two cores of one die, no shared cache"),
            Placement::AcrossDies => write!(f, "two dies of one package"),
            Placement::AcrossSockets => write!(f, "two sockets"),
            Placement::Unknown => write!(f, "unknown (no CPU topology in sysfs)"),
        }
    }
}

/// Parse a kernel CPU list ("0-3,8,10-11").
pub fn parse_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let mut ends = part.splitn(2, '-').map(|x| x.trim().parse::<usize>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), None) => out.push(a),
            (Some(Ok(a)), Some(Ok(b))) if a <= b => out.extend(a..=b),
            _ => return Vec::new(), // not a list: treat as unknown
        }
    }
    out
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The relation of CPUs `a` and `b` under `root` (normally
/// `/sys/devices/system/cpu`).
pub fn placement_in(root: &Path, a: usize, b: usize) -> Placement {
    if a == b {
        return Placement::SameCpu;
    }
    let topo = |cpu: usize, f: &str| read(root, &format!("cpu{cpu}/topology/{f}"));
    let Some(siblings) = topo(a, "thread_siblings_list") else {
        return Placement::Unknown;
    };
    if parse_list(&siblings).contains(&b) {
        return Placement::SmtSiblings;
    }
    // The lowest cache level whose sharing list holds both.
    let mut shared: Option<u32> = None;
    for index in 0..16 {
        let dir = format!("cpu{a}/cache/index{index}");
        let Some(level) = read(root, &format!("{dir}/level")) else {
            break;
        };
        let ty = read(root, &format!("{dir}/type")).unwrap_or_default();
        let (Ok(level), Some(list)) = (
            level.parse::<u32>(),
            read(root, &format!("{dir}/shared_cpu_list")),
        ) else {
            continue;
        };
        if ty != "Instruction" && parse_list(&list).contains(&b) {
            shared = Some(shared.map_or(level, |s| s.min(level)));
        }
    }
    if let Some(level) = shared {
        return Placement::SharedCache(level);
    }
    let id = |cpu, f| topo(cpu, f).and_then(|s| s.parse::<i64>().ok());
    match (
        id(a, "physical_package_id"),
        id(b, "physical_package_id"),
        id(a, "die_id"),
        id(b, "die_id"),
    ) {
        (Some(pa), Some(pb), _, _) if pa != pb => Placement::AcrossSockets,
        (Some(_), Some(_), Some(da), Some(db)) if da != db => Placement::AcrossDies,
        (Some(_), Some(_), _, _) => Placement::SameDie,
        _ => Placement::Unknown,
    }
}

/// The relation of CPUs `a` and `b` on this machine.
pub fn placement(a: usize, b: usize) -> Placement {
    placement_in(Path::new("/sys/devices/system/cpu"), a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A cache: level, type, shared CPU list.
    type Cache<'a> = (u32, &'a str, &'a str);

    /// A fake sysfs: cpu -> (siblings, package, die, caches).
    fn fake(cpus: &[(&str, i64, i64, &[Cache<'_>])]) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        for (n, (sib, pkg, die, caches)) in cpus.iter().enumerate() {
            let t = d.0.join(format!("cpu{n}/topology"));
            fs::create_dir_all(&t).unwrap();
            fs::write(t.join("thread_siblings_list"), format!("{sib}\n")).unwrap();
            fs::write(t.join("physical_package_id"), format!("{pkg}\n")).unwrap();
            fs::write(t.join("die_id"), format!("{die}\n")).unwrap();
            for (i, (level, ty, shared)) in caches.iter().enumerate() {
                let c = d.0.join(format!("cpu{n}/cache/index{i}"));
                fs::create_dir_all(&c).unwrap();
                fs::write(c.join("level"), format!("{level}\n")).unwrap();
                fs::write(c.join("type"), format!("{ty}\n")).unwrap();
                fs::write(c.join("shared_cpu_list"), format!("{shared}\n")).unwrap();
            }
        }
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "memtube-topo-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_list("5"), vec![5]);
        assert_eq!(parse_list("3-1"), Vec::<usize>::new());
        assert_eq!(parse_list("x"), Vec::<usize>::new());
    }

    #[test]
    fn each_kind_of_pair() {
        let l1 = |c: &'static str| (1, "Data", c);
        let l1i = |c: &'static str| (1, "Instruction", c);
        // cpu0+1: SMT pair; cpu2: another core sharing L3 with 0-2 (an
        // instruction cache listing cpu 2 must not count); cpu3: another die;
        // cpu4: another socket; cpu5: same die, no shared cache.
        let d = fake(&[
            (
                "0-1",
                0,
                0,
                &[
                    l1("0-1"),
                    l1i("0-2"),
                    (2, "Unified", "0-1"),
                    (3, "Unified", "0-2"),
                ],
            ),
            (
                "0-1",
                0,
                0,
                &[l1("0-1"), (2, "Unified", "0-1"), (3, "Unified", "0-2")],
            ),
            (
                "2",
                0,
                0,
                &[l1("2"), (2, "Unified", "2"), (3, "Unified", "0-2")],
            ),
            ("3", 0, 1, &[l1("3"), (3, "Unified", "3")]),
            ("4", 1, 0, &[l1("4")]),
            ("5", 0, 0, &[l1("5")]),
        ]);
        let p = |a, b| placement_in(&d.0, a, b);
        assert_eq!(p(0, 0), Placement::SameCpu);
        assert_eq!(p(0, 1), Placement::SmtSiblings);
        assert_eq!(p(0, 2), Placement::SharedCache(3));
        assert_eq!(p(2, 3), Placement::AcrossDies);
        assert_eq!(p(3, 4), Placement::AcrossSockets);
        assert_eq!(p(2, 5), Placement::SameDie);
        assert_eq!(p(0, 9), Placement::Unknown);
        assert_eq!(placement_in(&d.0.join("none"), 0, 1), Placement::Unknown);
    }
}
