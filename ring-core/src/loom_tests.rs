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
use crate::{Consumer, Error, Producer};
use core::time::Duration;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::vec::Vec;

/// A futex modelled with a mutex and a condition variable: the check of the
/// word and going to sleep are atomic with respect to `wake`, as in the kernel.
/// It ignores timeouts, so a lost wake-up is a deadlock, which loom reports.
#[derive(Clone)]
struct LoomFutex(Arc<(Mutex<()>, Condvar)>);

impl LoomFutex {
    fn new() -> Self {
        LoomFutex(Arc::new((Mutex::new(()), Condvar::new())))
    }
}

impl Wait for LoomFutex {
    fn wait(&self, word: &crate::atomic::AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let g = self.0 .0.lock().unwrap();
        if word.load(crate::sync::Ordering::Acquire) == expected {
            drop(self.0 .1.wait(g).unwrap());
        }
    }
    fn wake(&self, _word: &crate::atomic::AtomicU32) {
        let _g = self.0 .0.lock().unwrap();
        self.0 .1.notify_all();
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

fn pair(
    capacity: u32,
    pure_spin: bool,
) -> (Producer<'static, LoomFutex>, Consumer<'static, LoomFutex>) {
    let (ps, cs) = loom_shared(capacity, pure_spin);
    let w = LoomFutex::new();
    let mut p = Producer::new(ps, w.clone());
    let mut c = Consumer::new(cs, w);
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
    loom::model(|| {
        let (mut p, mut c) = pair(128, false);
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
fn both_sides_sleep(threshold: u32) {
    loom::model(move || {
        let (mut p, mut c) = pair(64, false);
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
    both_sides_sleep(16);
}

/// With the release threshold out of reach, the consumer releases only
/// when it finds the ring empty: first with a plain store as its blocking
/// receive starts to wait (no wake-up check there; with a spin budget of 0
/// it then goes straight to its slow path), then in its slow path, which
/// owes the check even though nothing new is released: the producer asleep
/// for room is woken.
#[test]
fn release_on_empty_still_wakes_sleeping_producer() {
    both_sides_sleep(u32::MAX);
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
    loom::model(|| {
        let (mut p, mut c) = pair(64, false);
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
    loom::model(|| {
        let (mut p, c) = pair(64, false);
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
