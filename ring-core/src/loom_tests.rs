//! Loom models of the ring protocol and of the sleep/wake protocol.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ring-core --lib --release`
//!
//! Loom cannot see atomics in raw memory, so under `--cfg loom` the control
//! block is a heap struct of loom atomics and the data area's commit words are
//! shadow loom atomics, one per 8-byte slot, with loom cells recording every
//! payload access (see `data.rs`): loom explores the orderings of every
//! commit word, released position and sleep flag, and fails on a payload read
//! not ordered after its write or a payload overwrite not ordered after the
//! read of the previous lap.

use crate::ring::loom_shared;
use crate::wait::Wait;
use crate::{sleep_many, Consumer, Error, Producer};
use core::time::Duration;
use loom::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::vec::Vec;

/// A futex modelled with a mutex and a condition variable: the check of the
/// word and going to sleep are atomic with respect to `wake`, as in the kernel.
/// It ignores timeouts, so a lost wake-up is a deadlock, which loom reports
/// (a wait with a timeout is a sleep in slices: it returns after a yield).
///
/// It also models the barrier that light wakes rely on (Linux
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: an interrupt that makes
/// every running thread of the target process execute a full barrier, the
/// caller returning once they have). Each handle gets its own `LoomFutex`
/// (`me`: 0 the producer's thread, 1 the consumer's). A barrier request
/// for the other side is served, with a SeqCst fence, wherever that side
/// next reaches a point where it may be interrupted: just before or just
/// after a light waker's load of the sleep flag (`light_wake_point`),
/// inside its own barrier request, or not at all if it is asleep in
/// `wait` or its handle is gone (`parked`), since a thread that is not
/// running passes through the scheduler's barrier (modelled by a fence)
/// before it runs again.
struct LoomFutex {
    shared: Arc<Shared>,
    me: usize,
    /// `light_wake()`: this side wakes without its fence.
    light: bool,
    /// `barrier_light_wakers()`: this side can make the barrier.
    barrier: bool,
}

struct Shared {
    futex: (Mutex<()>, Condvar),
    /// Per thread: barriers requested of it, barriers it served, asleep.
    /// Thread 0 is the producer's, 1 the consumer's; 2 a second producer's
    /// (the models of a wait over two rings), parked when there is none.
    requested: [AtomicU32; PARTIES],
    served: [AtomicU32; PARTIES],
    parked: [AtomicBool; PARTIES],
    /// Per thread: bytes waiting in its wake channel (docs/PROTOCOL.md 3.7:
    /// every wake of a peer also sends one), read under the futex mutex.
    channel: [AtomicU32; PARTIES],
}

const PARTIES: usize = 3;

/// How the handles of a model wake each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waking {
    /// Both fence (no light wakes).
    Fenced,
    /// Both wake lightly; the sleeper makes the barrier.
    Light,
    /// Both wake lightly; no side can make the barrier (sleeps in slices).
    LightNoBarrier,
    /// The producer wakes lightly, the consumer fences; both can make the
    /// barrier.
    ProducerLight,
}

impl LoomFutex {
    /// The two sides' futexes.
    fn pair(waking: Waking) -> (Self, Self) {
        let (p, c, _) = Self::parties(waking, false);
        (p, c)
    }

    /// A consumer's futex (thread 1) and two producers' (threads 0 and 2),
    /// one futex table: the consumer waits on both rings at once.
    fn trio(waking: Waking) -> (Self, Self, Self) {
        Self::parties(waking, true)
    }

    fn parties(waking: Waking, third: bool) -> (Self, Self, Self) {
        let shared = Arc::new(Shared {
            futex: (Mutex::new(()), Condvar::new()),
            requested: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
            served: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
            parked: [
                AtomicBool::new(false),
                AtomicBool::new(false),
                AtomicBool::new(!third),
            ],
            channel: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
        });
        let side = |me| LoomFutex {
            shared: Arc::clone(&shared),
            me,
            light: match waking {
                Waking::Fenced => false,
                Waking::Light | Waking::LightNoBarrier => true,
                Waking::ProducerLight => me != 1,
            },
            barrier: waking != Waking::LightNoBarrier,
        };
        (side(0), side(1), side(2))
    }

    /// An event loop's wait for this side's wake channel to become
    /// readable (no timeout: a lost signal deadlocks the model).
    fn wait_channel(&self) {
        let s = &self.shared;
        s.parked[self.me].store(true, SeqCst);
        {
            // Readable, or sleep until a wake (the caller looks again
            // either way, as after any readiness event).
            let g = s.futex.0.lock().unwrap();
            if s.channel[self.me].load(SeqCst) == 0 {
                drop(s.futex.1.wait(g).unwrap());
            }
        }
        s.parked[self.me].store(false, SeqCst);
        fence(SeqCst);
    }

    /// Read every byte waiting in this side's wake channel.
    fn drain_channel(&self) {
        let _g = self.shared.futex.0.lock().unwrap();
        self.shared.channel[self.me].store(0, SeqCst);
    }

    /// Another handle of the same thread (and process).
    fn clone_side(&self) -> Self {
        LoomFutex {
            shared: Arc::clone(&self.shared),
            me: self.me,
            light: self.light,
            barrier: self.barrier,
        }
    }

    /// Serve a barrier requested of this side: the interrupt lands here.
    fn serve(&self) {
        let s = &self.shared;
        let r = s.requested[self.me].load(SeqCst);
        if r > s.served[self.me].load(SeqCst) {
            fence(SeqCst);
            s.served[self.me].store(r, SeqCst);
        }
    }
}

/// A handle's end: its side never wakes anyone again, and a barrier
/// request no longer waits for it (as for a thread that is not running).
impl Drop for LoomFutex {
    fn drop(&mut self) {
        // Unwinding from a failed model (loom's deadlock panic): the model
        // is over, and a loom operation now would abort the test.
        if std::thread::panicking() {
            return;
        }
        self.shared.parked[self.me].store(true, SeqCst);
    }
}

impl Wait for LoomFutex {
    fn wait(&self, word: &crate::atomic::AtomicU32, expected: u32, timeout: Option<Duration>) {
        let s = &self.shared;
        if timeout.is_some() {
            // A sleep in slices: wake up again after a while.
            self.serve();
            thread::yield_now();
            return;
        }
        s.parked[self.me].store(true, SeqCst);
        {
            let g = s.futex.0.lock().unwrap();
            if word.load(crate::sync::Ordering::Acquire) == expected {
                drop(s.futex.1.wait(g).unwrap());
            }
        }
        s.parked[self.me].store(false, SeqCst);
        // The scheduler's barrier as the thread runs again.
        fence(SeqCst);
    }
    fn wake(&self, _word: &crate::atomic::AtomicU32) {
        let _g = self.shared.futex.0.lock().unwrap();
        // The wake channel's byte, to the consumer (1) from a producer, or
        // to the producer (0) from the consumer.
        let peer = if self.me == 1 { 0 } else { 1 };
        self.shared.channel[peer].fetch_add(1, SeqCst);
        self.shared.futex.1.notify_all();
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn light_wake(&self) -> bool {
        self.light
    }
    fn barrier_light_wakers(&self) -> bool {
        if !self.barrier {
            return false;
        }
        let s = &self.shared;
        // Every other thread of the model (a process each).
        let mut want = [0; PARTIES];
        for (o, w) in want.iter_mut().enumerate() {
            if o != self.me {
                *w = s.requested[o].fetch_add(1, SeqCst) + 1;
            }
        }
        for o in (0..PARTIES).filter(|&o| o != self.me) {
            loop {
                // Both sides may ask at once: each serves the other while it waits.
                self.serve();
                if s.served[o].load(SeqCst) >= want[o] || s.parked[o].load(SeqCst) {
                    break;
                }
                thread::yield_now();
            }
        }
        true
    }
    fn wait_any(&self, words: &[crate::SleepWord<'_>], timeout: Option<Duration>) {
        let s = &self.shared;
        if timeout.is_some() {
            self.serve();
            thread::yield_now();
            return;
        }
        s.parked[self.me].store(true, SeqCst);
        {
            // `futex_waitv`: the checks of every word and going to sleep are
            // atomic with respect to a wake of any of them.
            let g = s.futex.0.lock().unwrap();
            if words
                .iter()
                .all(|w| w.word().load(crate::sync::Ordering::Acquire) == w.expected())
            {
                drop(s.futex.1.wait(g).unwrap());
            }
        }
        s.parked[self.me].store(false, SeqCst);
        fence(SeqCst);
    }
    fn light_wake_point(&self) {
        self.serve();
    }
}

fn pair(
    capacity: u32,
    pure_spin: bool,
) -> (Producer<'static, LoomFutex>, Consumer<'static, LoomFutex>) {
    pair_waking(capacity, pure_spin, Waking::Fenced)
}

fn pair_waking(
    capacity: u32,
    pure_spin: bool,
    waking: Waking,
) -> (Producer<'static, LoomFutex>, Consumer<'static, LoomFutex>) {
    let (ps, cs) = loom_shared(capacity, pure_spin);
    let (wp, wc) = LoomFutex::pair(waking);
    let mut p = Producer::new(ps, wp);
    let mut c = Consumer::new(cs, wc);
    p.set_spin_budget(0);
    c.set_spin_budget(0);
    p.set_line_padding(true);
    (p, c)
}

fn payload(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i as usize * 31 + k) as u8).collect()
}

/// Non-blocking sends with a yield on `Full`.
fn send_spinning(p: &mut Producer<'static, LoomFutex>, i: u32, len: usize) {
    loop {
        match p.try_send(&payload(i, len), i) {
            Ok(()) => return,
            Err(Error::Full) => thread::yield_now(),
            Err(e) => panic!("send {i}: {e}"),
        }
    }
}

/// Non-blocking receives with a yield on `Empty`; checks contents.
fn recv_spinning(c: &mut Consumer<'static, LoomFutex>, i: u32, len: usize) {
    loop {
        match c.try_recv() {
            Ok(m) => {
                assert_eq!(m.type_id(), i);
                assert_eq!(m.payload(), &payload(i, len)[..]);
                return;
            }
            Err(Error::Empty) => thread::yield_now(),
            Err(e) => panic!("recv {i}: {e}"),
        }
    }
}

/// In a pure-spin `capacity`-byte ring, a producer thread sends one message
/// of each payload length in `lens` (type id = index, non-blocking sends)
/// and drops its handle; the consumer receives and checks them in order.
/// Returns the consumer after the producer thread ended.
fn exchange(capacity: u32, lens: &'static [usize]) -> Consumer<'static, LoomFutex> {
    let (mut p, mut c) = pair(capacity, true);
    let t = thread::spawn(move || {
        for (i, &len) in lens.iter().enumerate() {
            send_spinning(&mut p, i as u32, len);
        }
    });
    for (i, &len) in lens.iter().enumerate() {
        recv_spinning(&mut c, i as u32, len);
    }
    t.join().unwrap();
    c
}

/// Three 16-byte messages (24-byte records) in a 64-byte ring: the third one
/// does not fit the 16-byte tail, so a padding record precedes it at offset 0,
/// and each needs the consumer's release of the earlier ones.
#[test]
fn wrap_around_with_padding() {
    loom::model(|| {
        exchange(64, &[16; 3]);
    });
}

/// Line padding in a 256-byte ring (four cache lines), over slots whose
/// bytes look committed: a 120-byte payload fills offsets 8..128 with what
/// the loom data area models as committed headers. Then 32-byte payloads
/// (40-byte records), each padded to its line's end: at 128 (padding at 168),
/// at 192 (padding at 232 to the end of the data area), at 0 (padding at 40,
/// inside the first message's bytes; the next header at 64 must be cleared)
/// and at 64 (padding at 104). A line pad stored after its record's
/// publication, or a next header left stale, would deliver those bytes.
#[test]
fn line_padding_over_stale_bytes() {
    loom::model(|| {
        let mut c = exchange(256, &[120, 32, 32, 32, 32]);
        assert_eq!(c.try_recv().err(), Some(Error::Closed));
    });
}

/// A line pad followed by an end pad: a 32-byte payload (padded from 40 to
/// 64), a 64-byte one (72 bytes, too big to pad, to 136), a 32-byte one
/// (padded from 176 to 192) and a 64-byte one that does not fit the last
/// line, so an end pad follows the line pad and the record wraps to 0.
#[test]
fn line_padding_then_end_padding() {
    loom::model(|| {
        exchange(256, &[32, 64, 32, 64]);
    });
}

/// Early wrap in a 256-byte ring from offset 64: 40-byte payloads (48-byte
/// records, each line-padded to 64). After each publication past offset 64
/// the producer reads the released position; depending on the interleaving
/// it finds the consumer caught up (the next record goes to offset 0 after
/// an end pad, over lines the consumer has just read) or behind (the record
/// goes on, and the ring wraps where it must). Every message arrives intact
/// and in order either way, and nothing is overwritten before it is read.
///
/// Four records fill exactly one lap, so a message after the first at the
/// first's offset was wrapped early; some explored execution must do that.
#[test]
fn early_wrap() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    static WRAPPED_EARLY: AtomicBool = AtomicBool::new(false);
    loom::model(|| {
        let (mut p, mut c) = pair(256, true);
        p.set_early_wrap(64);
        let t = thread::spawn(move || {
            for i in 0..4 {
                send_spinning(&mut p, i, 40);
            }
        });
        let mut first = None;
        for i in 0..4 {
            let at = loop {
                match c.try_recv() {
                    Ok(m) => {
                        assert_eq!((m.type_id(), m.payload()), (i, &payload(i, 40)[..]));
                        break m.as_ptr() as usize;
                    }
                    Err(Error::Empty) => thread::yield_now(),
                    Err(e) => panic!("recv {i}: {e}"),
                }
            };
            if *first.get_or_insert(at) == at && i > 0 {
                WRAPPED_EARLY.store(true, Relaxed);
            }
        }
        t.join().unwrap();
        assert_eq!(c.try_recv().err(), Some(Error::Closed));
    });
    assert!(WRAPPED_EARLY.load(Relaxed), "no execution wrapped early");
}

/// 24-byte payloads (32-byte records) in a 64-byte ring: exactly one fits;
/// exercises the full and empty edges on every message.
#[test]
fn exactly_full_and_empty_edges() {
    loom::model(|| {
        exchange(64, &[24; 3]);
    });
}

/// A staged batch becomes visible with one publication, in order.
#[test]
fn staged_batch() {
    loom::model(|| {
        let (mut p, mut c) = pair(128, true);
        let t = thread::spawn(move || {
            p.send_staged(&payload(0, 8), 0).unwrap();
            p.send_staged(&payload(1, 0), 1).unwrap();
            p.publish();
            p.try_send(&payload(2, 4), 2).unwrap();
        });
        recv_spinning(&mut c, 0, 8);
        recv_spinning(&mut c, 1, 0);
        recv_spinning(&mut c, 2, 4);
        t.join().unwrap();
    });
}

/// The consumer sleeps (no spinning) waiting for data; no wake-up is lost.
#[test]
fn consumer_sleep_no_lost_wakeup() {
    consumer_sleep(Waking::Fenced);
}

/// The same with light wakes (no fence in the producer's publication; the
/// sleeping consumer makes the barrier).
#[test]
fn consumer_sleep_no_lost_wakeup_light() {
    consumer_sleep(Waking::Light);
}

/// The same with light wakes when the consumer cannot make the barrier: it
/// sleeps in slices, and still gets every message.
#[test]
fn consumer_sleep_no_lost_wakeup_light_without_barrier() {
    consumer_sleep(Waking::LightNoBarrier);
}

/// A light producer that takes its role while the consumer may already be
/// asleep (it announces `wflags` inside its thread, as a process attaching
/// late does): the consumer either read the flag and made the barrier, or
/// read it clear before the producer's fence, so the producer's light loads
/// see its announcement.
#[test]
fn light_producer_attaching_while_the_consumer_sleeps() {
    loom::model(|| {
        let (ps, cs) = loom_shared(128, false);
        let (wp, wc) = LoomFutex::pair(Waking::Light);
        let mut c = Consumer::new(cs, wc);
        c.set_spin_budget(0);
        let t = thread::spawn(move || {
            let mut p = Producer::new(ps, wp);
            p.set_spin_budget(0);
            p.try_send(&payload(0, 8), 0).unwrap();
            // Its end (and close) as the thread's last act: no barrier waits
            // for a thread that no longer runs.
            drop(p);
        });
        let m = c.recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), (0, &payload(0, 8)[..]));
        drop(m);
        t.join().unwrap();
    });
}

/// Both sides asleep in turn with a light producer and a fencing consumer.
#[test]
fn both_sides_sleep_no_lost_wakeup_producer_light() {
    both_sides_sleep(16, Waking::ProducerLight);
}

/// The model can fail: a light producer whose sleeping consumer skips the
/// barrier (and sleeps without slices) loses a wake-up, which loom finds.
#[test]
#[should_panic(expected = "deadlock")]
fn light_wake_without_the_barrier_loses_a_wakeup() {
    loom::model(|| {
        let (ps, cs) = loom_shared(128, false);
        let (wp, mut wc) = LoomFutex::pair(Waking::Light);
        // The consumer claims it made the barrier but does not.
        wc.barrier = false;
        let mut p = Producer::new(ps, wp);
        let mut c = Consumer::new(cs, NoSlices(wc));
        p.set_spin_budget(0);
        c.set_spin_budget(0);
        let t = thread::spawn(move || {
            for i in 0..2 {
                p.try_send(&payload(i, 8), i).unwrap();
            }
        });
        for _ in 0..2 {
            c.recv().unwrap();
        }
        t.join().unwrap();
    });
}

/// A futex that pretends to have made the barrier without making it, and
/// sleeps without slices: the broken sleeper of the test above.
struct NoSlices(LoomFutex);

impl Wait for NoSlices {
    fn wait(&self, word: &crate::atomic::AtomicU32, expected: u32, _: Option<Duration>) {
        self.0.wait(word, expected, None)
    }
    fn wake(&self, word: &crate::atomic::AtomicU32) {
        self.0.wake(word)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn light_wake(&self) -> bool {
        true
    }
    fn barrier_light_wakers(&self) -> bool {
        true
    }
}

fn consumer_sleep(waking: Waking) {
    loom::model(move || {
        let (mut p, mut c) = pair_waking(128, false, waking);
        let t = thread::spawn(move || {
            for i in 0..2 {
                p.try_send(&payload(i, 8), i).unwrap();
            }
        });
        for i in 0..2 {
            let m = c.recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &payload(i, 8)[..]));
        }
        t.join().unwrap();
    });
}

/// Two 24-byte messages, each filling the 64-byte ring, sent and received
/// with blocking calls, the consumer releasing at `threshold` bytes: the
/// producer sleeps waiting for space while the consumer sleeps waiting for
/// data, and no wake-up may be lost in either direction.
fn both_sides_sleep(threshold: u32, waking: Waking) {
    loom::model(move || {
        let (mut p, mut c) = pair_waking(64, false, waking);
        c.set_release_threshold(threshold);
        let t = thread::spawn(move || {
            for i in 0..2 {
                p.send(&payload(i, 24), i).unwrap();
            }
        });
        for i in 0..2 {
            let m = c.recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &payload(i, 24)[..]));
        }
        t.join().unwrap();
    });
}

/// With the default threshold (a quarter of the capacity, 16 bytes), each
/// consumed message is released with the wake-up check.
#[test]
fn both_sides_sleep_no_lost_wakeup() {
    both_sides_sleep(16, Waking::Fenced);
}

/// The same with light wakes both ways (each sleeper makes the barrier).
#[test]
fn both_sides_sleep_no_lost_wakeup_light() {
    both_sides_sleep(16, Waking::Light);
}

/// The same with light wakes and no barrier anywhere (sleeps in slices).
#[test]
fn both_sides_sleep_no_lost_wakeup_light_without_barrier() {
    both_sides_sleep(16, Waking::LightNoBarrier);
}

/// With the release threshold out of reach, the consumer releases only
/// when it finds the ring empty: first with a plain store as its blocking
/// receive starts to wait (no wake-up check there; with a spin budget of 0
/// it then goes straight to its slow path), then in its slow path, which
/// owes the check even though nothing new is released: the producer asleep
/// for room is woken.
#[test]
fn release_on_empty_still_wakes_sleeping_producer() {
    both_sides_sleep(u32::MAX, Waking::Fenced);
}

/// The same with light wakes.
#[test]
fn release_on_empty_still_wakes_sleeping_producer_light() {
    both_sides_sleep(u32::MAX, Waking::Light);
}

/// The release threshold counts from the last release that checked for a
/// sleeping producer, not from a plain store made when a blocking receive
/// found the ring empty: the consumer takes two 24-byte messages (32-byte
/// records; the 128-byte ring holds three, as each send also needs the
/// next header's slot) with a threshold of 64 bytes and then only waits
/// for the producer, whose fourth message needs the space of both. If the
/// plain store at 32 restarted the count, the release at 64 would not be
/// published with a check, and the producer, asleep for room, would never
/// be woken (a deadlock, which loom reports).
#[test]
fn release_threshold_counts_from_the_last_checked_release() {
    loom::model(|| {
        let (mut p, mut c) = pair(128, false);
        c.set_release_threshold(64);
        let t = thread::spawn(move || {
            for i in 0..4 {
                p.send(&payload(i, 24), i).unwrap();
            }
            p
        });
        for i in 0..2 {
            let m = c.recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &payload(i, 24)[..]));
        }
        let p = t.join().unwrap();
        for i in 2..4 {
            let m = c.recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &payload(i, 24)[..]));
        }
        drop(p);
    });
}

/// A sleeping consumer is woken by the producer's close, after delivery.
#[test]
fn close_wakes_sleeping_consumer() {
    close_wakes_consumer(Waking::Fenced);
}

/// The same with a light close.
#[test]
fn close_wakes_sleeping_consumer_light() {
    close_wakes_consumer(Waking::Light);
}

fn close_wakes_consumer(waking: Waking) {
    loom::model(move || {
        let (mut p, mut c) = pair_waking(64, false, waking);
        let t = thread::spawn(move || {
            p.try_send(&payload(0, 8), 0).unwrap();
            drop(p);
        });
        assert_eq!(c.recv().unwrap().payload(), &payload(0, 8)[..]);
        assert_eq!(c.recv().err(), Some(Error::Closed));
        t.join().unwrap();
    });
}

/// A producer sleeping on a full ring is woken by the consumer's close.
#[test]
fn close_wakes_sleeping_producer() {
    close_wakes_producer(Waking::Fenced);
}

/// The same with a light close.
#[test]
fn close_wakes_sleeping_producer_light() {
    close_wakes_producer(Waking::Light);
}

fn close_wakes_producer(waking: Waking) {
    loom::model(move || {
        let (mut p, c) = pair_waking(64, false, waking);
        p.try_send(&payload(0, 24), 0).unwrap();
        let t = thread::spawn(move || drop(c));
        assert_eq!(p.send(&payload(1, 24), 1), Err(Error::Closed));
        t.join().unwrap();
    });
}

/// Grants that are dropped, or committed with fewer bytes than reserved, hand
/// out payload bytes that may look like committed headers (the loom data area
/// models them so): none of them is ever delivered, whatever the interleaving
/// with the consumer's releases and the producer's clearing ahead.
#[test]
fn dropped_and_partial_grants_never_deliver_payload_bytes() {
    loom::model(|| {
        let (mut p, mut c) = pair(128, true);
        let t = thread::spawn(move || {
            send_spinning(&mut p, 0, 8);
            drop(p.try_reserve(40).unwrap());
            loop {
                match p.try_reserve(40) {
                    Ok(mut g) => {
                        g[..4].copy_from_slice(&payload(1, 4));
                        g.commit(4, 1);
                        break;
                    }
                    Err(Error::Full) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            send_spinning(&mut p, 2, 8);
        });
        recv_spinning(&mut c, 0, 8);
        recv_spinning(&mut c, 1, 4);
        recv_spinning(&mut c, 2, 8);
        t.join().unwrap();
        assert_eq!(c.try_recv().err(), Some(Error::Closed));
    });
}

/// A consumer waiting on two rings at once (announce on both, one fence,
/// re-check, one wait on both words: `sleep_many`), each fed by its own
/// producer thread with `n` messages: every message arrives, none is lost
/// to a missed wake-up (a lost one deadlocks the model).
fn two_rings(waking: Waking, n: u32) {
    loom::model(move || {
        let (wa, wc, wb) = LoomFutex::trio(waking);
        let (pa_sh, ca_sh) = loom_shared(128, false);
        let (pb_sh, cb_sh) = loom_shared(128, false);
        let mut ca = Consumer::new(ca_sh, wc.clone_side());
        let mut cb = Consumer::new(cb_sh, wc.clone_side());
        let sleeper = wc;
        let feed = |sh, w, base: u32| {
            thread::spawn(move || {
                let mut p = Producer::new(sh, w);
                p.set_spin_budget(0);
                for i in 0..n {
                    p.try_send(&payload(base + i, 8), base + i).unwrap();
                }
                drop(p);
            })
        };
        let ta = feed(pa_sh, wa, 0);
        let tb = feed(pb_sh, wb, 10);
        let (mut got_a, mut got_b) = (0, 0);
        while got_a < n || got_b < n {
            let mut progress = false;
            for (c, got, base) in [(&mut ca, &mut got_a, 0), (&mut cb, &mut got_b, 10)] {
                if *got < n && c.has_message().unwrap() {
                    let m = c.try_recv().unwrap();
                    let i = base + *got;
                    assert_eq!((m.type_id(), m.payload()), (i, &payload(i, 8)[..]));
                    *got += 1;
                    progress = true;
                }
            }
            if progress {
                continue;
            }
            // Sleep on the rings still awaited (a finished ring's producer
            // closes, which would end every sleep at once).
            let mut words = Vec::new();
            if got_a < n {
                words.push(ca.announce_sleep().unwrap());
            }
            if got_b < n {
                words.push(cb.announce_sleep().unwrap());
            }
            sleep_many(&sleeper, &words, None, || {
                (got_a < n && ca.has_message().unwrap()) || (got_b < n && cb.has_message().unwrap())
            });
            ca.withdraw_sleep();
            cb.withdraw_sleep();
        }
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

#[test]
fn two_rings_no_lost_wakeup() {
    two_rings(Waking::Fenced, 2);
}

#[test]
fn two_rings_no_lost_wakeup_light() {
    two_rings(Waking::Light, 1);
}

// No `two_rings` model without the barrier: `sleep_many` then waits with
// a time cap, which this futex turns into a yield, so the sleeper could not
// deadlock and the model would prove nothing. Every timed wait is in that
// case; the untimed models above are the ones that can fail.

/// The model can fail: a sleeper that waits on both words without
/// re-checking after its announcements (`sleep_many` with a re-check that
/// sees nothing) loses a wake-up whenever a producer published between the
/// first look and the announcement; loom finds it.
#[test]
#[should_panic(expected = "deadlock")]
fn two_rings_without_the_recheck_lose_a_wakeup() {
    loom::model(|| {
        let (wa, wc, wb) = LoomFutex::trio(Waking::Fenced);
        let (pa_sh, ca_sh) = loom_shared(128, false);
        let (_pb_sh, cb_sh) = loom_shared(128, false);
        let mut ca = Consumer::new(ca_sh, wc.clone_side());
        let mut cb = Consumer::new(cb_sh, wc.clone_side());
        drop(wb);
        let t = thread::spawn(move || {
            let mut p = Producer::new(pa_sh, wa);
            p.set_spin_budget(0);
            p.try_send(&payload(0, 8), 0).unwrap();
            // Then block for room until the consumer releases or closes: the
            // producer must not close early (its close would wake the sleeper).
            let big = payload(1, p.max_payload() as usize);
            let _ = p.send(&big, 1);
        });
        while !ca.has_message().unwrap() {
            let seen_b = cb.has_message().unwrap();
            assert!(!seen_b);
            // The broken sleeper: it announced too late to matter, as if
            // the first look were its re-check.
            let words = [ca.announce_sleep().unwrap(), cb.announce_sleep().unwrap()];
            wc.wait_any(&words, None);
            ca.withdraw_sleep();
            cb.withdraw_sleep();
        }
        drop(ca);
        t.join().unwrap();
    });
}

/// The readiness protocol (an event loop waiting on the wake channel, not
/// the futex): the consumer looks, announces, fences and re-checks
/// (`prepare_sleep`), waits for its channel, then drains it and withdraws;
/// the producer publishes `n` messages and closes. No signal is lost (a lost
/// one deadlocks the model), in fenced and light configurations.
fn readiness_channel(waking: Waking, n: u32) {
    loom::model(move || {
        let (ps, cs) = loom_shared(128, false);
        let (wp, wc) = LoomFutex::pair(waking);
        let sleeper = wc.clone_side();
        let mut c = Consumer::new(cs, wc);
        c.set_spin_budget(0);
        let t = thread::spawn(move || {
            let mut p = Producer::new(ps, wp);
            p.set_spin_budget(0);
            for i in 0..n {
                p.try_send(&payload(i, 8), i).unwrap();
            }
        });
        let mut got = 0;
        while got < n {
            if c.has_message().unwrap() {
                let m = c.try_recv().unwrap();
                assert_eq!((m.type_id(), m.payload()), (got, &payload(got, 8)[..]));
                got += 1;
                continue;
            }
            let word = c.announce_sleep().unwrap();
            if let crate::SleepPlan::Sleep(_) =
                crate::prepare_sleep(&sleeper, &[word], || c.has_message().unwrap())
            {
                sleeper.wait_channel();
                sleeper.drain_channel();
            }
            c.withdraw_sleep();
        }
        t.join().unwrap();
    });
}

#[test]
fn readiness_channel_no_lost_signal() {
    readiness_channel(Waking::Fenced, 2);
}

#[test]
fn readiness_channel_no_lost_signal_light() {
    readiness_channel(Waking::Light, 1);
}
