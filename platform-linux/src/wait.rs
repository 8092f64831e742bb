//! `futex(FUTEX_WAIT / FUTEX_WAKE)`: ring-core's [`Wait`] for processes.
//!
//! The operations are process-shared (no `FUTEX_PRIVATE_FLAG`): the kernel
//! keys a shared futex by the page of the file it lives in, so a waiter and a
//! waker in two processes that map the same memfd meet. Waiting works on a
//! read-only mapping (the word a side sleeps on is in the peer's pages, which
//! it maps read-only under isolation).
//!
//! Light wakes: this process registers for
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (once, when the first
//! handle asks), so that its handles wake their peers without a fence after
//! publishing; a handle about to sleep whose peer wakes lightly calls that
//! membarrier, which makes every running thread of the peer's process run a
//! full barrier (ring-core's sleep protocol says why that suffices). The
//! environment variable `MEMTUBE_LIGHT_WAKE=0`, read at that first
//! registration, keeps the fence instead.
//!
//! References: futex(2), futex(7), clock_gettime(2), membarrier(2).

use memtube_ring::atomic::AtomicU32;
use memtube_ring::{SleepWord, Wait};
use rustix::io::Errno;
use rustix::thread::{futex, membarrier, membarrier_query, MembarrierCommand};
use rustix::time::{ClockId, Timespec};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// The futex [`Wait`]: sleeps in the kernel until the peer wakes the word or
/// the timeout passes; `now` reads `CLOCK_MONOTONIC` (vDSO, no system call).
///
/// ```
/// use memtube_linux::FutexWait;
/// use memtube_ring::{atomic::AtomicU32, Wait};
/// use std::time::Duration;
///
/// let w = FutexWait;
/// let word = AtomicU32::new(0);
/// let t0 = w.now();
/// w.wait(&word, 0, Some(Duration::from_millis(5))); // times out
/// assert!(w.now() - t0 >= Duration::from_millis(4));
/// w.wait(&word, 1, None); // the word is not 1: returns at once
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FutexWait;

fn std_word(word: &AtomicU32) -> &std::sync::atomic::AtomicU32 {
    // SAFETY: `word` is a live, 4-byte aligned `u32` for the borrow's
    // lifetime (portable-atomic's `AtomicU32` has the layout of `u32`), and
    // every access to it, by either type, is atomic.
    unsafe { std::sync::atomic::AtomicU32::from_ptr(word.as_ptr()) }
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

impl Wait for FutexWait {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let w = std_word(word);
        let deadline = timeout.map(|t| self.now().saturating_add(t));
        loop {
            let ts = match deadline {
                Some(d) => {
                    let left = d.saturating_sub(self.now());
                    if left.is_zero() {
                        return;
                    }
                    Some(timespec(left))
                }
                None => None,
            };
            match futex::wait(w, futex::Flags::empty(), expected, ts.as_ref()) {
                // A signal interrupted the sleep: go back to sleep for what is left.
                Err(Errno::INTR) => continue,
                // Woken, the word already differed (EAGAIN), or timed out.
                _ => return,
            }
        }
    }

    fn wake(&self, word: &AtomicU32) {
        let _ = futex::wake(std_word(word), futex::Flags::empty(), i32::MAX as u32);
    }

    fn now(&self) -> Duration {
        let t = rustix::time::clock_gettime(ClockId::Monotonic);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }

    fn wait_any(&self, words: &[SleepWord<'_>], timeout: Option<Duration>) {
        if words.len() < 2 || words.len() > WAITV_MAX || !waitv_any(words, self.now(), timeout) {
            // One word, too many for one call, or no `futex_waitv` (Linux
            // before 5.16, or refused by a seccomp filter): the portable
            // wait, in slices.
            default_wait_any(self, words, timeout);
        }
    }

    fn light_wake(&self) -> bool {
        membarrier_state() & LIGHT != 0
    }

    fn barrier_light_wakers(&self) -> bool {
        membarrier_state() & BARRIER != 0 && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    }
}

/// The most words one `futex_waitv` takes (the kernel's `FUTEX_WAITV_MAX`).
pub const WAITV_MAX: usize = 128;

/// The portable [`Wait::wait_any`] (ring-core's default), for the cases
/// `futex_waitv` does not cover.
fn default_wait_any(w: &FutexWait, words: &[SleepWord<'_>], timeout: Option<Duration>) {
    struct Portable<'w>(&'w FutexWait);
    impl Wait for Portable<'_> {
        fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
            self.0.wait(word, expected, timeout)
        }
        fn wake(&self, word: &AtomicU32) {
            self.0.wake(word)
        }
        fn now(&self) -> Duration {
            self.0.now()
        }
    }
    Portable(w).wait_any(words, timeout)
}

/// `futex_waitv` over `words` (2 to [`WAITV_MAX`] of them) until one
/// differs from its expected value, is woken, or `timeout` (counted from
/// `now`, on `CLOCK_MONOTONIC`) passes. `false` when the kernel does not
/// offer the call (remembered: it is not tried again).
fn waitv_any(words: &[SleepWord<'_>], now: Duration, timeout: Option<Duration>) -> bool {
    static UNAVAILABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return false;
    }
    let mut waits = [futex::Wait::new(); WAITV_MAX];
    for (w, word) in waits.iter_mut().zip(words) {
        w.val = u64::from(word.expected());
        w.uaddr = futex::WaitPtr::new(word.word().as_ptr().cast());
        // Process-shared (no FUTEX2_PRIVATE): the words are in memory
        // shared with the peers, as for `futex::wait` above.
        w.flags = futex::WaitFlags::SIZE_U32;
    }
    // `futex_waitv` takes an absolute deadline.
    let deadline = timeout.map(|t| timespec(now.saturating_add(t)));
    loop {
        match futex::waitv(
            &waits[..words.len()],
            futex::WaitvFlags::empty(),
            deadline.as_ref(),
            ClockId::Monotonic,
        ) {
            // A signal: sleep again until the same deadline.
            Err(Errno::INTR) => continue,
            Err(Errno::NOSYS) | Err(Errno::PERM) => {
                UNAVAILABLE.store(true, Ordering::Relaxed);
                return false;
            }
            // Woken (the index of a word), a word already differed, or
            // timed out.
            Ok(_) | Err(Errno::AGAIN) | Err(Errno::TIMEDOUT) => return true,
            // Anything else (a sandbox's EINVAL or EFAULT, say): this call
            // did not sleep; the portable wait does.
            Err(_) => return false,
        }
    }
}

/// [`membarrier_state`]: this process registered for global expedited
/// barriers (its handles may wake lightly).
const LIGHT: u8 = 1;
/// [`membarrier_state`]: the kernel offers global expedited barriers (a
/// sleeper can make one).
const BARRIER: u8 = 2;
/// [`membarrier_state`]: not yet found out.
const UNKNOWN: u8 = 0x80;

/// What this process can do with `membarrier`, found out once: whether the
/// kernel offers `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (Linux 4.16+, not
/// refused by a seccomp filter) and whether registering this process for it
/// succeeded (and `MEMTUBE_LIGHT_WAKE` is not `0`).
fn membarrier_state() -> u8 {
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    // Acquire / Release: a thread that sees the registration also sees
    // everything before it (the kernel's own barriers order it anyway).
    let s = STATE.load(Ordering::Acquire);
    if s != UNKNOWN {
        return s;
    }
    let q = membarrier_query();
    let mut s = 0;
    if q.contains_command(MembarrierCommand::GlobalExpedited) {
        s |= BARRIER;
        let wanted = std::env::var_os("MEMTUBE_LIGHT_WAKE").is_none_or(|v| v != "0");
        if wanted
            && q.contains_command(MembarrierCommand::RegisterGlobalExpedited)
            && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
        {
            s |= LIGHT;
        }
    }
    // Racing first calls find the same answer (registering twice is harmless).
    STATE.store(s, Ordering::Release);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    /// Light wakes and the barrier follow what the kernel offers (and the
    /// environment switch); the barrier returns when it can be made.
    #[test]
    fn light_wakes_follow_the_kernel() {
        let q = membarrier_query();
        let global = q.contains_command(MembarrierCommand::GlobalExpedited);
        let off = std::env::var_os("MEMTUBE_LIGHT_WAKE").is_some_and(|v| v == "0");
        assert_eq!(FutexWait.light_wake(), global && !off, "query {q:?}");
        assert_eq!(FutexWait.barrier_light_wakers(), global);
        // Cached: the same answer again, and the barrier can be repeated.
        assert_eq!(FutexWait.light_wake(), global && !off);
        assert_eq!(FutexWait.barrier_light_wakers(), global);
    }

    #[test]
    fn waits_on_a_read_only_shared_mapping_and_wakes_across_mappings() {
        use crate::{memfd, Linux};
        use memtube_posix::region::Mapping;
        use rustix::fd::AsFd;
        let fd = memfd::create(c"futex", 4096, false).unwrap();
        let rw = Mapping::new::<Linux>(fd.as_fd(), 4096, true, false).unwrap();
        let ro = Mapping::new::<Linux>(fd.as_fd(), 4096, false, false).unwrap();
        // SAFETY: both mappings are live for the whole test, page-aligned,
        // 4096 bytes; the word is only accessed atomically.
        let (w_rw, w_ro) = unsafe {
            (
                &*(rw.as_ptr() as *const AtomicU32),
                &*(ro.as_ptr() as *const AtomicU32),
            )
        };
        // A futex wait on the read-only mapping sleeps (times out) rather
        // than failing with EFAULT.
        let r = futex::wait(
            std_word(w_ro),
            futex::Flags::empty(),
            0,
            Some(&timespec(Duration::from_millis(10))),
        );
        assert_eq!(r, Err(Errno::TIMEDOUT));
        // A wake through the writable mapping (another address of the same
        // page) reaches a waiter on the read-only one: shared futexes are
        // keyed by file page, not by address.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                futex::wait(
                    std_word(w_ro),
                    futex::Flags::empty(),
                    0,
                    Some(&timespec(Duration::from_secs(30))),
                )
            });
            loop {
                w_rw.store(0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
                // Wake until the waiter has been woken (it may not sleep yet).
                if futex::wake(std_word(w_rw), futex::Flags::empty(), 1) == Ok(1) {
                    break;
                }
                if waiter.is_finished() {
                    break;
                }
            }
            assert_eq!(waiter.join().unwrap(), Ok(()));
        });
    }

    #[test]
    fn wake_releases_a_waiter_in_another_thread() {
        let word = Arc::new(AtomicU32::new(0));
        let w2 = word.clone();
        let t = std::thread::spawn(move || {
            let t0 = FutexWait.now();
            while w2.load(Ordering::Acquire) == 0 {
                FutexWait.wait(&w2, 0, Some(Duration::from_secs(20)));
            }
            FutexWait.now() - t0
        });
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, Ordering::Release);
        FutexWait.wake(&word);
        assert!(t.join().unwrap() < Duration::from_secs(20));
    }
}
