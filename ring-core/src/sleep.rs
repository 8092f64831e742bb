//! The sleep/wake protocol, written once for both handles.
//!
//! A blocked side announces sleep by storing a nonzero episode number in
//! the `sleeping` word of its own wait line, issues a SeqCst fence,
//! re-checks what it waits for (and whether the peer closed), and waits
//! through [`Wait::wait`] on the peer's `seq` word, expecting the value it
//! read before announcing. After publishing, releasing or closing, a side
//! issues a SeqCst fence, loads the peer's `sleeping` word once and, if it
//! holds an episode not yet woken, stores that episode into its own `seq`
//! and calls [`Wait::wake`] on it. The two fences make a Dekker pair:
//! either the sleeper's re-check sees the publication or the publisher sees
//! the announcement, so no wake-up is lost.
//!
//! A *light* waker (its process can be reached by the peer's barrier:
//! [`Wait::light_wake`], announced in its wait line's `wflags` when it takes
//! the role) skips its fence, so that publishing costs a plain store and a
//! load. Its side of the pair is then made by the sleeper: after its
//! announcement and fence it reads the peer's `wflags` and, if the peer wakes
//! lightly, calls [`Wait::barrier_light_wakers`] (Linux
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`), which makes every thread
//! of the waker's process run a full barrier before it returns. Wherever
//! that barrier lands in the waker's program, the pair holds: after its
//! publication, the publication is visible to the re-check that follows;
//! before it, the waker's load that follows sees the announcement (made
//! visible before the barrier was sent); a waker not running passes
//! through the scheduler's barrier before it runs again. A sleeper whose
//! platform cannot make that barrier sleeps in slices of at most
//! [`LIGHT_FALLBACK_SLICE`] instead. The flag is stored, then a fence, when
//! a handle is made, before any light wake: a sleeper that read the flag as
//! clear after its own fence is ordered before that fence, so the waker's
//! later loads see its announcement.
//!
//! The producer waits for room ([`sleep_until`] from `Producer::wait_plan`)
//! and wakes the consumer after a publication or its close
//! ([`wake_peer`] from `Producer::publish` and its `Drop`); the consumer
//! waits for a record (from `Consumer::wait_record_slow`) and wakes the
//! producer after a checked release or its close (from
//! `Consumer::publish_release` and its `Drop`).

use crate::error::Error;
use crate::layout::{WaitLine, STATE_CLOSED, WAKE_LIGHT};
use crate::sync::{fence, spin_hint, AtomicU64, Ordering::*};
use crate::wait::Wait;
use core::sync::atomic::compiler_fence;
use core::time::Duration;

/// Polls of a blocking call before it announces sleep, unless set.
pub(crate) const DEFAULT_SPIN_BUDGET: u32 = 4096;

/// The longest single wait of a sleeper whose peer wakes lightly when its
/// platform cannot make the barrier that light waking needs.
pub(crate) const LIGHT_FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// One handle's part in the protocol: its sleep episodes, and the peer's
/// that it woke.
pub(crate) struct Sleep {
    /// Our own sleep-episode counter (announced on our wait line).
    episode: u32,
    /// The peer's sleep episode we last woke (also the value of our `seq`).
    woken_episode: u32,
    /// Wake calls made (mirrored into our block's `wakes` counter).
    wakes: u64,
    /// We wake the peer lightly (no fence: module docs).
    light: bool,
}

impl Sleep {
    pub(crate) const fn new() -> Self {
        Sleep {
            episode: 0,
            woken_episode: 0,
            wakes: 0,
            light: false,
        }
    }

    /// Announce in our wait line how we wake the peer, when a handle takes
    /// the role (before it can wake anyone): lightly if `light`.
    pub(crate) fn announce_waker(&mut self, own: &WaitLine, light: bool) {
        own.wflags
            .store(if light { WAKE_LIGHT } else { 0 }, Relaxed);
        // SYNC POINT: orders the flag before every later load of the peer's
        // sleep flag by a light wake; pairs with the fence in `sleep_until`
        // between the peer's announcement and its load of our flags.
        fence(SeqCst);
        self.light = light;
    }
}

impl Sleep {
    /// The state of a handle that takes over a role whose holder is gone.
    /// The dead holder's sleep announcement is withdrawn (nobody sleeps on
    /// it). It may have died owing the peer a wake (between a publication
    /// or release and its `wake_peer`, or between storing `seq` and the
    /// wake call), so the successor forgets which episode was woken and
    /// wakes the peer once (`wake_peer` right after resuming): at worst one
    /// spurious wake-up. Our own episodes start anew: `sleep_until` picks
    /// each one different from the peer's `seq`, which is the peer's last
    /// woken episode, so the peer wakes us whatever the old holder
    /// announced. (A wake of the old holder's episode still in flight in
    /// the peer changes the peer's `seq` and then calls `Wait::wake`: it
    /// either precedes our read of `seq`, and our episode avoids it, or it
    /// wakes our wait, and we announce again.)
    pub(crate) fn resume(&mut self, own: &WaitLine, wakes: u64) {
        own.sleeping.store(0, Relaxed);
        self.woken_episode = 0;
        self.wakes = wakes;
    }
}

/// A handle, as the protocol sees it.
pub(crate) trait Side<'a> {
    type W: Wait;
    /// Our wait line (the `sleeping` we announce on, the `seq` we wake the
    /// peer through), then the peer's.
    fn lines(&self) -> (&'a WaitLine, &'a WaitLine);
    /// The wake-call counter in our block's statistics.
    fn wakes_counter(&self) -> &'a AtomicU64;
    fn waiter(&self) -> &Self::W;
    fn sleep_state(&mut self) -> &mut Sleep;
    /// Pure-spin mode: never announce sleep, never wake.
    fn pure_spin(&self) -> bool;
    /// What the side waits for, as [`sleep_until`] is given it: the
    /// producer, the free bytes it needs; the consumer, nothing.
    type Goal: Copy;
    /// Whether what we wait for is there: room, or a record.
    fn ready(&mut self, goal: Self::Goal) -> Result<bool, Error>;
    /// Once per round, after `ready` said no: the consumer publishes its
    /// released space; either side reports [`Error::Closed`] when the peer
    /// closed with nothing left for it. `Ok(true)`: ready after all.
    fn idle(&mut self) -> Result<bool, Error>;
}

/// Whether the peer has closed its role. May be stale.
#[inline]
pub(crate) fn peer_closed(peer: &WaitLine) -> bool {
    peer.state.load(Acquire) == STATE_CLOSED
}

/// Block until `s.ready(goal)` says yes: the rounds after a handle's spin
/// phase.
///
/// Each round checks `ready`, then `idle`, then the deadline; then either
/// spins 64 polls (pure-spin mode) or runs the sleeper's half of the
/// protocol (module docs). Returns `Ok` only after `ready` (or `idle`)
/// returned `Ok(true)`.
#[inline(always)]
pub(crate) fn sleep_until<'a, S: Side<'a>>(
    s: &mut S,
    goal: S::Goal,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let (own, peer) = s.lines();
    let start = s.waiter().now();
    loop {
        if s.ready(goal)? {
            return Ok(());
        }
        if s.idle()? {
            return Ok(());
        }
        let remaining = remaining(s.waiter().now(), start, timeout)?;
        if s.pure_spin() {
            for _ in 0..64 {
                spin_hint();
                if s.ready(goal)? {
                    return Ok(());
                }
            }
            continue;
        }
        let seen = peer.seq.load(Acquire);
        let st = s.sleep_state();
        st.episode = next_episode(st.episode, seen);
        own.sleeping.store(st.episode, Relaxed);
        // SYNC POINT (Dekker): orders our sleep announcement before the
        // re-check (of the released position, or of the header at `tail`)
        // and of the peer's state; pairs with the fence in `wake_peer`,
        // which the peer runs between its publication, release or close and
        // its load of our flag (and with the one in `announce_waker`).
        fence(SeqCst);
        // A light waker has no fence of its own: the barrier we make it run
        // is the other half of the pair (module docs).
        let mut slice = remaining;
        if peer.wflags.load(Relaxed) & WAKE_LIGHT != 0 && !s.waiter().barrier_light_wakers() {
            slice = Some(remaining.map_or(LIGHT_FALLBACK_SLICE, |r| r.min(LIGHT_FALLBACK_SLICE)));
        }
        let now_ready = s.ready(goal);
        if !matches!(now_ready, Ok(false)) || peer_closed(peer) {
            own.sleeping.store(0, Relaxed);
            if now_ready? {
                return Ok(());
            }
            continue;
        }
        s.waiter().wait(&peer.seq, seen, slice);
        own.sleeping.store(0, Relaxed);
    }
}

/// The waker's half of the protocol, after a publication (producer), a
/// checked release (consumer) or either side's close: one fence and one
/// load of the peer's sleep flag; the wake itself is out of line.
#[inline]
pub(crate) fn wake_peer<'a, S: Side<'a>>(s: &mut S) {
    let ep = if s.sleep_state().light {
        // SYNC POINT (light wake): no fence; the peer, before it sleeps,
        // makes this thread run a full barrier (`Wait::barrier_light_wakers`
        // in its `sleep_until`; module docs), so only the compiler must keep
        // the load after the publication, release or close.
        compiler_fence(SeqCst);
        s.waiter().light_wake_point();
        let ep = s.lines().1.sleeping.load(Relaxed);
        s.waiter().light_wake_point();
        ep
    } else {
        // SYNC POINT (Dekker): orders the publication or release (or the
        // closed state) before the load of the peer's sleep flag; pairs with
        // the fence in `sleep_until` between the peer's announcement and its
        // re-check.
        fence(SeqCst);
        s.lines().1.sleeping.load(Relaxed)
    };
    if ep != 0 && ep != s.sleep_state().woken_episode {
        wake_slow(s, ep);
    }
}

#[cold]
fn wake_slow<'a, S: Side<'a>>(s: &mut S, ep: u32) {
    s.sleep_state().woken_episode = ep;
    // The peer waits for our `seq` to differ from the value it read before
    // announcing `ep`, and it never announces that value, so this changes it.
    // Release; pairs with the Acquire load of `seq` in the peer's
    // `sleep_until` (and in its `Wait::wait`).
    s.lines().0.seq.store(ep, Release);
    s.waiter().wake(&s.lines().0.seq);
    s.sleep_state().wakes += 1;
    let wakes = s.sleep_state().wakes;
    s.wakes_counter().store(wakes, Relaxed);
}

/// The next nonzero episode number after `cur` that differs from `avoid` (the
/// value of the wait word the sleeper will wait on).
#[inline]
pub(crate) fn next_episode(cur: u32, avoid: u32) -> u32 {
    let bump = |e: u32| if e == u32::MAX { 1 } else { e + 1 };
    let e = bump(cur);
    if e == avoid {
        bump(e)
    } else {
        e
    }
}

/// Time left before a deadline, or `Timeout`.
#[inline]
pub(crate) fn remaining(
    now: Duration,
    start: Duration,
    timeout: Option<Duration>,
) -> Result<Option<Duration>, Error> {
    match timeout {
        None => Ok(None),
        Some(t) => {
            let elapsed = now.saturating_sub(start);
            if elapsed >= t {
                Err(Error::Timeout)
            } else {
                Ok(Some(t - elapsed))
            }
        }
    }
}

/// One ring's part in a wait over several rings: the word its handle sleeps
/// on (the peer's `seq`) and the value that word held when the handle
/// announced sleep. Made by [`Consumer::announce_sleep`](crate::Consumer::announce_sleep)
/// or [`Producer::announce_sleep`](crate::Producer::announce_sleep), given
/// to [`sleep_many`].
#[derive(Clone, Copy)]
pub struct SleepWord<'a> {
    peer: &'a WaitLine,
    expected: u32,
}

impl<'a> SleepWord<'a> {
    /// The word to wait on (process-shared, in the region; possibly mapped
    /// read-only).
    pub fn word(&self) -> &'a crate::sync::AtomicU32 {
        &self.peer.seq
    }

    /// The value [`word`](Self::word) held at the announcement: the wait
    /// lasts while it still holds it.
    pub fn expected(&self) -> u32 {
        self.expected
    }
}

impl core::fmt::Debug for SleepWord<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SleepWord")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// The announcement of [`sleep_until`], alone: after it the peer wakes us
/// (through our [`SleepWord`]) when it publishes, releases or closes, until
/// [`withdraw`] or the next announcement.
pub(crate) fn announce<'a, S: Side<'a>>(s: &mut S) -> SleepWord<'a> {
    let (own, peer) = s.lines();
    let seen = peer.seq.load(Acquire);
    let st = s.sleep_state();
    st.episode = next_episode(st.episode, seen);
    own.sleeping.store(st.episode, Relaxed);
    SleepWord {
        peer,
        expected: seen,
    }
}

/// Take back an announcement: the peer stops waking us.
pub(crate) fn withdraw<'a, S: Side<'a>>(s: &mut S) {
    s.lines().0.sleeping.store(0, Relaxed);
}

/// The middle of a wait over several rings, each of whose handles has just
/// announced sleep (`announce_sleep`, one [`SleepWord`] each): the
/// sleeper's half of the sleep/wake protocol of a single blocking call,
/// once for all of them. It fences (ordering every announcement before
/// every re-check), makes the barrier if a peer wakes lightly, calls
/// `recheck` (which must look again at everything the caller waits for:
/// a message, room), and, if that finds nothing and no peer has closed,
/// waits through [`Wait::wait_any`] for at most `timeout`. Returns whether
/// the re-check (or a peer's close) found the caller ready, in which case
/// it did not wait.
///
/// The caller then withdraws every announcement (`withdraw_sleep` on each
/// handle) whatever this returned, and looks at its rings again: a return
/// without a ready ring may be spurious. Announcements left in place are
/// harmless for correctness; they only make peers wake the caller without
/// need.
///
/// ```
/// use memtube_ring::*;
/// let mut a = RegionBuf::<{ region_size(1024).unwrap() }>::new();
/// let mut b = RegionBuf::<{ region_size(1024).unwrap() }>::new();
/// let w = SpinWait::std();
/// let (mut ta, mut ra) = split(a.as_mut_slice(), Config::new(1024), w).unwrap();
/// let (_tb, mut rb) = split(b.as_mut_slice(), Config::new(1024), w).unwrap();
/// ta.try_send(b"x", 1).unwrap();
/// // Nothing ready yet would mean: announce on both, then sleep once.
/// let words = [ra.announce_sleep().unwrap(), rb.announce_sleep().unwrap()];
/// let ready = sleep_many(&w, &words, Some(core::time::Duration::from_millis(10)), || {
///     ra.has_message().unwrap_or(true) || rb.has_message().unwrap_or(true)
/// });
/// ra.withdraw_sleep();
/// rb.withdraw_sleep();
/// assert!(ready); // the re-check found ring a's message: no sleep
/// assert_eq!(ra.try_recv().unwrap().payload(), b"x");
/// ```
pub fn sleep_many<W: Wait>(
    waiter: &W,
    words: &[SleepWord<'_>],
    timeout: Option<Duration>,
    recheck: impl FnMut() -> bool,
) -> bool {
    match prepare_sleep(waiter, words, recheck) {
        SleepPlan::Ready => true,
        SleepPlan::Sleep(cap) => {
            let slice = match (timeout, cap) {
                (Some(t), Some(c)) => Some(t.min(c)),
                (t, c) => t.or(c),
            };
            waiter.wait_any(words, slice);
            false
        }
    }
}

/// What [`prepare_sleep`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepPlan {
    /// The re-check found the caller ready (or a peer closed): do not
    /// sleep; withdraw the announcements and look again.
    Ready,
    /// Sleep until a peer wakes the caller: through the words
    /// ([`Wait::wait_any`]) or any other signal its wakes send (a wake
    /// channel, docs/PROTOCOL.md 3.7). With `Some(d)`, a peer wakes lightly
    /// and this process could not make the barrier light wakes need, so a
    /// wake-up may never come: look again after at most `d`.
    Sleep(Option<Duration>),
}

/// [`sleep_many`] without the wait: after every handle announced sleep,
/// the fence (and barrier) and the re-check, for a caller that then waits
/// by other means than [`Wait::wait_any`] (an event loop polling a wake
/// channel's descriptor, for example). After the wait, or if this returned
/// [`SleepPlan::Ready`], the caller withdraws every announcement.
pub fn prepare_sleep<W: Wait>(
    waiter: &W,
    words: &[SleepWord<'_>],
    mut recheck: impl FnMut() -> bool,
) -> SleepPlan {
    // SYNC POINT (Dekker): orders every announcement before the re-check
    // and the loads of the peers' states and flags; pairs, for each ring,
    // with the fence in that peer's `wake_peer` (or its barrier), exactly as
    // the fence in `sleep_until` does for one ring.
    fence(SeqCst);
    let mut cap = None;
    if words
        .iter()
        .any(|w| w.peer.wflags.load(Relaxed) & WAKE_LIGHT != 0)
        && !waiter.barrier_light_wakers()
    {
        cap = Some(LIGHT_FALLBACK_SLICE);
    }
    if recheck() || words.iter().any(|w| peer_closed(w.peer)) {
        return SleepPlan::Ready;
    }
    SleepPlan::Sleep(cap)
}
