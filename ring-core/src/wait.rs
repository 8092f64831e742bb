//! Blocking: the [`Wait`] trait that platform crates implement, and
//! [`SpinWait`], the portable implementation shipped here.

use crate::sleep::SleepWord;
use crate::sync::AtomicU32;
use core::time::Duration;

/// The longest single wait of [`Wait::wait_any`]'s portable implementation
/// over several words: it sleeps on the first and looks at the others
/// between sleeps.
pub const WAIT_ANY_SLICE: Duration = Duration::from_millis(1);

/// How a handle blocks on, and wakes, a 32-bit word in the region.
///
/// This is the futex shape: [`wait`](Wait::wait) sleeps while `*word ==
/// expected` (checked atomically with going to sleep), [`wake`](Wait::wake)
/// wakes every thread or process sleeping on `word`. The word may live in
/// memory shared between processes and may be mapped read-only by the waiter,
/// so implementations must use process-shared primitives (Linux `futex`
/// without `FUTEX_PRIVATE_FLAG`, macOS `UL_COMPARE_AND_WAIT_SHARED`).
///
/// Spurious and early returns are allowed: ring-core re-checks its condition
/// and its deadline after every return. Implementations must not return
/// *later* than `timeout` by more than the platform's scheduling slack.
pub trait Wait {
    /// Block while `word` holds `expected`, for at most `timeout` (`None`: no limit).
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>);
    /// Wake all waiters on `word`.
    fn wake(&self, word: &AtomicU32);
    /// A monotonic clock, used to enforce deadlines across several waits.
    fn now(&self) -> Duration;

    /// Whether this process's handles may wake their peer *lightly*: after
    /// publishing (or releasing, or closing) they load the peer's sleep
    /// flag without a fence of their own. Return `true` only when a peer
    /// that calls [`barrier_light_wakers`](Wait::barrier_light_wakers)
    /// makes every thread of this process run a full memory barrier (Linux:
    /// this process registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`).
    /// Read once, when a handle is made. Default: `false` (the waker
    /// fences, as the sleep/wake protocol otherwise requires). A `true`
    /// that the barrier does not back loses wake-ups (a peer then sleeps
    /// until its timeout; memory safety is not affected).
    fn light_wake(&self) -> bool {
        false
    }

    /// Called by a handle about to sleep whose peer wakes lightly, between
    /// its sleep announcement and its re-check: make every thread of every
    /// process whose [`light_wake`](Wait::light_wake) returned `true` run
    /// a full memory barrier, and return once they have (Linux:
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`). Return `false` if it
    /// cannot: the handle then sleeps in slices of at most a millisecond,
    /// re-checking between them, so a wake-up can be late but never lost.
    /// Default: `false`.
    fn barrier_light_wakers(&self) -> bool {
        false
    }

    /// Block while every word of `words` holds its
    /// [`expected`](SleepWord::expected) value, for at most `timeout`
    /// (`None`: no limit): the wait of [`sleep_many`](crate::sleep_many),
    /// over several rings. With no words, sleep for `timeout`.
    ///
    /// Spurious and early returns are allowed, as for [`wait`](Wait::wait).
    /// The default waits on the first word in slices of at most
    /// [`WAIT_ANY_SLICE`], looking at the others between them (so a change
    /// of another word is seen within a slice); platforms that can block on
    /// several words at once override it (Linux: `futex_waitv`).
    fn wait_any(&self, words: &[SleepWord<'_>], timeout: Option<Duration>) {
        match words {
            [] => self.wait(&AtomicU32::new(0), 0, timeout),
            [w] => self.wait(w.word(), w.expected(), timeout),
            [first, rest @ ..] => {
                let changed = |w: &SleepWord<'_>| {
                    w.word().load(crate::sync::Ordering::Acquire) != w.expected()
                };
                if rest.iter().any(changed) {
                    return;
                }
                let slice = timeout.map_or(WAIT_ANY_SLICE, |t| t.min(WAIT_ANY_SLICE));
                self.wait(first.word(), first.expected(), Some(slice));
            }
        }
    }

    /// Model checking only (loom's model of the barrier's interrupt): called
    /// by a light waker just before and just after it loads its peer's sleep
    /// flag. Does nothing elsewhere.
    #[doc(hidden)]
    fn light_wake_point(&self) {}
}

impl<W: Wait + ?Sized> Wait for &W {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        (**self).wait(word, expected, timeout)
    }
    fn wake(&self, word: &AtomicU32) {
        (**self).wake(word)
    }
    fn now(&self) -> Duration {
        (**self).now()
    }
    fn wait_any(&self, words: &[SleepWord<'_>], timeout: Option<Duration>) {
        (**self).wait_any(words, timeout)
    }
    fn light_wake(&self) -> bool {
        (**self).light_wake()
    }
    fn barrier_light_wakers(&self) -> bool {
        (**self).barrier_light_wakers()
    }
    fn light_wake_point(&self) {
        (**self).light_wake_point()
    }
}

/// A [`Wait`] that never calls the kernel: it polls the word, with a CPU
/// pause between polls, and (with the `std` feature, when built with
/// [`SpinWait::std`]) yields to the OS scheduler between bursts of polls.
///
/// `wake` does nothing: the waiter sees the changed word by itself. Use it
/// between threads, in custom runtimes without a futex, or on bare metal with
/// the clock of your choice.
///
/// ```
/// use core::time::Duration;
/// // A no_std user supplies a monotonic clock (here a fake one).
/// fn clock() -> Duration { Duration::ZERO }
/// let w = memtube_ring::SpinWait::new(clock);
/// # let _ = w;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SpinWait {
    clock: fn() -> Duration,
    yield_now: Option<fn()>,
}

impl SpinWait {
    /// A spin waiter over the given monotonic clock; it never yields to an OS.
    pub const fn new(clock: fn() -> Duration) -> Self {
        SpinWait {
            clock,
            yield_now: None,
        }
    }

    /// A spin waiter that calls `yield_now` after every burst of 64 polls
    /// (for example an RTOS's task yield).
    pub const fn with_yield(clock: fn() -> Duration, yield_now: fn()) -> Self {
        SpinWait {
            clock,
            yield_now: Some(yield_now),
        }
    }

    /// A spin waiter over `std::time::Instant` that yields with
    /// `std::thread::yield_now`.
    #[cfg(feature = "std")]
    pub fn std() -> Self {
        SpinWait::with_yield(std_clock, std::thread::yield_now)
    }
}

#[cfg(feature = "std")]
impl Default for SpinWait {
    fn default() -> Self {
        SpinWait::std()
    }
}

#[cfg(feature = "std")]
fn std_clock() -> Duration {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

impl Wait for SpinWait {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let start = (self.clock)();
        loop {
            for _ in 0..64 {
                if word.load(crate::sync::Ordering::Acquire) != expected {
                    return;
                }
                crate::sync::spin_hint();
            }
            if let Some(t) = timeout {
                if (self.clock)().saturating_sub(start) >= t {
                    return;
                }
            }
            if let Some(y) = self.yield_now {
                y();
            }
        }
    }

    fn wake(&self, _word: &AtomicU32) {}

    fn now(&self) -> Duration {
        (self.clock)()
    }
}
