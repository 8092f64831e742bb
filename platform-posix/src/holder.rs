//! Process identities for ring roles: the [`Holder`] of a process, and
//! whether the process a holder names is gone. These make a ring in a
//! region the caller mapped itself recoverable (memtube-ring's
//! `attach_producer_as`, `take_over_producer`, ...).
//!
//! A holder packs the process id (low 32 bits) with the low 32 bits of the
//! process's start time ([`Os::process_start`]), so a holder recorded by a
//! process that has exited never names a later process that got the same
//! id (unless that one also started at the same tick modulo 2^32 ticks).

use crate::os::Os;
use memtube_ring::Holder;

fn pack(pid: u32, start: u64) -> Option<Holder> {
    Holder::new(u64::from(pid) | (start & 0xffff_ffff) << 32)
}

/// The holder that names this process.
///
/// # Panics
///
/// Never on a working system: this process's start time is always
/// readable (`/proc/self/stat` on Linux). A system without it (a Linux
/// without /proc) panics with a message that says so.
pub fn this_process<O: Os>() -> Holder {
    let pid = std::process::id();
    let start = O::process_start(pid as i32)
        .ok()
        .flatten()
        .expect("memtube: this process's start time is unreadable (is /proc mounted?)");
    // A pid is never 0, so the holder is not 0.
    pack(pid, start).expect("a process id is not 0")
}

/// Whether the process `holder` names (a holder from [`this_process`], in
/// this or another process of the same pid namespace) can never touch the
/// ring again: it has exited (a zombie counts), or its pid now names a
/// process that started at another time. `false` when it runs, and when
/// the system will not tell (so an unanswerable question never leads to a
/// take-over).
///
/// A holder recorded in another pid namespace (a container sharing the
/// region with the host, say) names another process here: do not use
/// process holders across pid namespaces.
pub fn is_gone<O: Os>(holder: Holder) -> bool {
    let pid = holder.get() as u32;
    let Ok(pid_i) = i32::try_from(pid) else {
        // Not a pid any system hands out: not a holder from `this_process`.
        return false;
    };
    match O::process_start(pid_i) {
        Ok(None) => true,
        Ok(Some(start)) => pack(pid, start) != Some(holder),
        Err(_) => false,
    }
}
