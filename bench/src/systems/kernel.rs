//! The kernel paths: a unix socket pair, two pipes, two eventfds, two futex
//! words (round trips), and one futex word (the wake-up).

use super::{histogram, interval, lat, time_round_trips, Bench, Ctx, Fds, Measured, Rng, Run};
use crate::shm;
use crate::{mono_ns, BoxError, TIMEOUT};
use hdrhistogram::Histogram;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::thread::futex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// A round trip through the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The unix stream socket pair.
    Uds,
    /// Two pipes.
    Pipe,
    /// Two eventfds (a counter, not a payload).
    Eventfd,
    /// Two futex words in the shared page.
    Futex,
}

impl Bench for Kernel {
    fn prepare(&self, ctx: &Ctx, _run: Run) -> Result<(), BoxError> {
        if *self == Kernel::Futex {
            ctx.shm.u32(shm::FUTEX_PING).store(0, Ordering::Relaxed);
            ctx.shm.u32(shm::FUTEX_PONG).store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(kernel_main(*self, ctx, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        kernel_peer(*self, ctx, run)
    }
}

/// A sleeping receiver (main side) woken through one futex word; the peer
/// stores the send time, then the message number, and wakes it.
pub struct WakeFutex;

impl Bench for WakeFutex {
    fn prepare(&self, ctx: &Ctx, _run: Run) -> Result<(), BoxError> {
        ctx.shm.u32(shm::WAKE_WORD).store(0, Ordering::Relaxed);
        Ok(())
    }

    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(wake_main(ctx, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        wake_peer(ctx, run)
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), BoxError> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn read_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8]) -> Result<(), BoxError> {
    while !buf.is_empty() {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return Err("kernel path: end of file".into()),
            Ok(n) => buf = &mut buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The (read, write) descriptors of a byte-stream kernel path.
fn stream_fds(fds: &Fds, sys: Kernel) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
    match sys {
        Kernel::Uds => (fds.uds.as_fd(), fds.uds.as_fd()),
        Kernel::Pipe => (fds.pipe_r.as_fd(), fds.pipe_w.as_fd()),
        _ => (fds.ev_r.as_fd(), fds.ev_w.as_fd()),
    }
}

fn futex_wait_change(word: &AtomicU32, want: u32) -> Result<(), BoxError> {
    futex_wait_until(word, |v| v == want)
}

fn futex_wait_at_least(word: &AtomicU32, want: u32) -> Result<(), BoxError> {
    futex_wait_until(word, |v| v >= want)
}

/// Sleep on `word` (10 ms slices) until its value satisfies `ok`.
fn futex_wait_until(word: &AtomicU32, ok: impl Fn(u32) -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = word.load(Ordering::Acquire);
        if ok(v) {
            return Ok(());
        }
        let t = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        match futex::wait(word, futex::Flags::empty(), v, Some(&t)) {
            Ok(()) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::TIMEDOUT) => {
                if Instant::now() > deadline {
                    return Err("futex: no answer".into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn kernel_main(sys: Kernel, ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    if sys == Kernel::Futex {
        let (ping, pong) = (ctx.shm.u32(shm::FUTEX_PING), ctx.shm.u32(shm::FUTEX_PONG));
        return time_round_trips(run.count, |s| {
            let v = s as u32 + 1;
            ping.store(v, Ordering::Release);
            futex::wake(ping, futex::Flags::empty(), 1)?;
            futex_wait_change(pong, v)
        });
    }
    let (r, w) = stream_fds(&ctx.fds, sys);
    let mut buf = vec![0x33u8; run.len];
    time_round_trips(run.count, |_| {
        if sys == Kernel::Eventfd {
            write_all(w, &1u64.to_ne_bytes())?;
            read_exact(r, &mut buf[..8])
        } else {
            write_all(w, &buf)?;
            read_exact(r, &mut buf)
        }
    })
}

fn kernel_peer(sys: Kernel, ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    if sys == Kernel::Futex {
        let (ping, pong) = (ctx.shm.u32(shm::FUTEX_PING), ctx.shm.u32(shm::FUTEX_PONG));
        for s in 0..run.count {
            let v = s as u32 + 1;
            futex_wait_change(ping, v)?;
            pong.store(v, Ordering::Release);
            futex::wake(pong, futex::Flags::empty(), 1)?;
        }
        return Ok(());
    }
    let (r, w) = stream_fds(&ctx.fds, sys);
    let mut buf = vec![0u8; run.len];
    for _ in 0..run.count {
        read_exact(r, &mut buf)?;
        write_all(w, &buf)?;
    }
    Ok(())
}

fn wake_main(ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    let mut h = histogram();
    let (word, time) = (ctx.shm.u32(shm::WAKE_WORD), ctx.shm.u64(shm::WAKE_TIME));
    for i in 0..run.count {
        // At least message i (the receiver may have slept through one).
        futex_wait_at_least(word, i as u32 + 1)?;
        let now = mono_ns();
        h.saturating_record(now.saturating_sub(time.load(Ordering::Acquire)));
    }
    Ok(h)
}

fn wake_peer(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let mut rng = Rng::for_run(run.id);
    let (word, time) = (ctx.shm.u32(shm::WAKE_WORD), ctx.shm.u64(shm::WAKE_TIME));
    for i in 0..run.count {
        std::thread::sleep(interval(&mut rng));
        time.store(mono_ns(), Ordering::Relaxed);
        word.store(i as u32 + 1, Ordering::Release);
        futex::wake(word, futex::Flags::empty(), 1)?;
    }
    Ok(())
}
