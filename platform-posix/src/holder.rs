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
/// When this process's start time is unreadable, which a working system
/// never does (Linux reads `/proc/self/stat`; a chroot or container
/// without `/proc` has none): [`try_this_process`] returns `None` there.
pub fn this_process<O: Os>() -> Holder {
    try_this_process::<O>()
        .expect("memtube: this process's start time is unreadable (is /proc mounted?)")
}

/// The holder that names this process, or `None` when the system will not
/// say when this process started (Linux without `/proc`).
pub fn try_this_process<O: Os>() -> Option<Holder> {
    let pid = std::process::id();
    let start = O::process_start(i32::try_from(pid).ok()?).ok().flatten()?;
    pack(pid, start)
}

/// Whether the process `holder` names (a holder from [`this_process`], in
/// this or another process of the same pid namespace) can never touch the
/// ring again: it has exited (a zombie counts), or its pid now names a
/// process that started at another time. `false` when it runs, and when
/// the system will not tell (so an unanswerable question never leads to a
/// take-over).
///
/// A holder names the process that recorded it, not its children: a
/// process that attaches, forks and exits is gone even if the child goes
/// on using the handle (it must not: a handle belongs to the process that
/// attached it). A holder recorded in another pid namespace (a container
/// sharing the region with the host, say) names another process here: do
/// not use process holders across pid namespaces.
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
