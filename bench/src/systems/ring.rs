//! ring-core alone (no platform wrapper): between two threads of the main
//! process, and between the two processes over the shared memfd.

use super::{lat, time_round_trips, Bench, Ctx, Measured, Run};
use crate::shm::{self, Shm};
use crate::{BoxError, TIMEOUT};
use hdrhistogram::Histogram;

/// `split` between two threads of the main process (the peer process sleeps).
pub struct Threads;

impl Bench for Threads {
    fn main(&self, _: &mut Ctx, run: Run, echo_cpu: Option<usize>) -> Result<Measured, BoxError> {
        lat(memtube_threads(run, echo_cpu))
    }

    fn peer(&self, _: &mut Ctx, _: Run) -> Result<(), BoxError> {
        Ok(())
    }
}

/// `init` / `attach` over the shared memfd between the two processes.
pub struct Processes;

impl Bench for Processes {
    fn prepare(&self, ctx: &Ctx, _run: Run) -> Result<(), BoxError> {
        raw_init(&ctx.shm)
    }

    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(memtube_ring_processes_main(&ctx.shm, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        memtube_ring_processes_peer(&ctx.shm, run)
    }
}

/// ring-core between two threads of this process (the peer process sleeps):
/// what the process version adds is the difference.
fn memtube_threads(run: Run, echo_cpu: Option<usize>) -> Result<Histogram<u64>, BoxError> {
    use memtube::ring::{region_size, split, Config, RegionBuf, SpinWait};
    const CAP: u32 = 16 * 1024;
    const SIZE: usize = match region_size(CAP) {
        Some(n) => n,
        None => panic!("capacity"),
    };
    let mut a = Box::new(RegionBuf::<SIZE>::new());
    let mut b = Box::new(RegionBuf::<SIZE>::new());
    let cfg = Config::new(CAP).pure_spin(true);
    let (mut ping_tx, mut ping_rx) = split(a.as_mut_slice(), cfg, SpinWait::std())?;
    let (mut pong_tx, mut pong_rx) = split(b.as_mut_slice(), cfg, SpinWait::std())?;
    let count = run.count;
    // The echo thread starts on this thread's CPU; under SCHED_FIFO (`--fifo`)
    // it would never run there while this thread spins, so this thread
    // sleeps until the echo has moved to its own CPU.
    let pinned = std::sync::Barrier::new(2);
    let pinned = &pinned;
    std::thread::scope(|sc| {
        let echo = sc.spawn(move || -> Result<(), memtube::Error> {
            if let Some(c) = echo_cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            pinned.wait();
            for _ in 0..count {
                let m = ping_rx.recv_timeout(TIMEOUT)?;
                pong_tx.send_timeout(&m, m.type_id(), TIMEOUT)?;
            }
            Ok(())
        });
        pinned.wait();
        let mut payload = vec![0xa5u8; run.len];
        let h = time_round_trips(count, |s| {
            payload[..8].copy_from_slice(&s.to_ne_bytes());
            ping_tx.send_timeout(&payload, 7, TIMEOUT)?;
            let m = pong_rx.recv_timeout(TIMEOUT)?;
            if m[..8] != s.to_ne_bytes() {
                return Err("thread echo mismatch".into());
            }
            Ok(())
        });
        let e = echo.join().map_err(|_| "echo thread panicked")?;
        e?;
        h
    })
}

/// The raw rings' configuration (the same as [`memtube_threads`]').
fn raw_config() -> memtube::ring::Config {
    memtube::ring::Config::new(16 * 1024).pure_spin(true)
}

/// Lay out both raw rings (before the peer attaches).
fn raw_init(shm: &Shm) -> Result<(), BoxError> {
    for off in [shm::RAW_PING, shm::RAW_PONG] {
        // SAFETY: the region lies inside the shared mapping (checked by
        // `Shm::raw`), 128-aligned; no one is attached to it now (the last
        // run's handles are dropped, the peer has not started this run).
        unsafe { memtube::ring::init(shm.raw(off), raw_config())? };
    }
    Ok(())
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_ring_processes_main(shm: &Shm, run: Run) -> Result<Histogram<u64>, BoxError> {
    let w = memtube::ring::SpinWait::std();
    // SAFETY: the regions lie in the never-unmapped shared mapping and were
    // laid out by `raw_init`; ring-core validates them and claims each role once.
    let (mut tx, mut rx) = unsafe {
        (
            memtube::ring::attach_producer(shm.raw(shm::RAW_PING), w)?,
            memtube::ring::attach_consumer(shm.raw(shm::RAW_PONG), w)?,
        )
    };
    let mut payload = vec![0xa5u8; run.len];
    time_round_trips(run.count, |s| {
        payload[..8].copy_from_slice(&s.to_ne_bytes());
        tx.send_timeout(&payload, 7, TIMEOUT)?;
        let m = rx.recv_timeout(TIMEOUT)?;
        if m[..8] != s.to_ne_bytes() {
            return Err("raw echo mismatch".into());
        }
        Ok(())
    })
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_ring_processes_peer(shm: &Shm, run: Run) -> Result<(), BoxError> {
    let w = memtube::ring::SpinWait::std();
    // SAFETY: as in `memtube_ring_processes_main`, the other role of each ring.
    let (mut rx, mut tx) = unsafe {
        (
            memtube::ring::attach_consumer(shm.raw(shm::RAW_PING), w)?,
            memtube::ring::attach_producer(shm.raw(shm::RAW_PONG), w)?,
        )
    };
    for _ in 0..run.count {
        let m = rx.recv_timeout(TIMEOUT)?;
        tx.send_timeout(&m, m.type_id(), TIMEOUT)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- instruction counts

/// One thread sends a 32-byte message and receives it, `n` times, through
/// ring-core's `split` (pure spin): the per-message cost without any waiting.
/// For instruction counts under callgrind (`--selfloop raw N`).
#[inline(never)]
pub fn selfloop_raw(n: u64) -> Result<u64, BoxError> {
    use memtube::ring::{region_size, split, Config, RegionBuf, SpinWait};
    const CAP: u32 = 16 * 1024;
    const SIZE: usize = match region_size(CAP) {
        Some(n) => n,
        None => panic!("capacity"),
    };
    let mut a = Box::new(RegionBuf::<SIZE>::new());
    let (mut tx, mut rx) = split(
        a.as_mut_slice(),
        Config::new(CAP).pure_spin(true),
        SpinWait::std(),
    )?;
    let payload = [0xa5u8; 32];
    let mut sum = 0u64;
    for _ in 0..n {
        tx.send_timeout(&payload, 7, TIMEOUT)?;
        let m = rx.recv_timeout(TIMEOUT)?;
        sum = sum.wrapping_add(u64::from(m[0]));
    }
    Ok(sum)
}
