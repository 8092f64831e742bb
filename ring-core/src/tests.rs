//! Unit tests of the ring's edges. Integration tests (model, stress,
//! hostile) live in `tests/`; loom models in `loom_tests.rs`.

use crate::*;
use std::boxed::Box;
use std::time::Duration;
use std::vec;
use std::vec::Vec;

type Buf = RegionBuf<{ region_size(64).unwrap() }>;

fn with_ring<const N: usize>(
    cap: u32,
    f: impl FnOnce(Producer<'_, SpinWait>, Consumer<'_, SpinWait>),
) {
    let mut buf: Box<RegionBuf<N>> = Box::default();
    let (p, c) = split(buf.as_mut_slice(), Config::new(cap), SpinWait::std()).unwrap();
    f(p, c)
}

/// Writes into a ring's region behind the handles' backs, as a hostile peer would.
struct Poke(*mut u8);

impl Poke {
    /// Store `v` at byte `off` of the region.
    fn u32(&self, off: usize, v: u32) {
        assert!(off % 4 == 0 && off + 4 <= region_size(256).unwrap());
        // SAFETY: in bounds and aligned (asserted; the region is 128-aligned);
        // the region outlives every use (see `with_raw_ring`), and tests poke
        // only between calls, from the thread that holds both handles.
        unsafe { self.0.add(off).cast::<u32>().write(v) }
    }
}

/// A 256-byte ring laid with `init` / `attach_*` over a raw region, with a
/// [`Poke`] into that region.
fn with_raw_ring(f: impl for<'a> FnOnce(Poke, Producer<'a, SpinWait>, Consumer<'a, SpinWait>)) {
    let mut buf: Box<RegionBuf<{ region_size(256).unwrap() }>> = Box::default();
    let ptr = buf.0.as_mut_ptr();
    let raw = RawRegion::new(ptr, buf.0.len());
    // SAFETY: `buf` is valid, aligned and long enough, and outlives the
    // handles, which `f` consumes before it returns; nothing else touches it.
    let (p, c) = unsafe {
        init(raw, Config::new(256)).unwrap();
        (
            attach_producer(raw, SpinWait::std()).unwrap(),
            attach_consumer(raw, SpinWait::std()).unwrap(),
        )
    };
    f(Poke(ptr), p, c);
}

#[test]
fn handles_are_send_not_sync() {
    fn is_send<T: Send>() {}
    is_send::<Producer<'static, SpinWait>>();
    is_send::<Consumer<'static, SpinWait>>();
    // Not `Sync`: `*mut u8` inside; checked by the compile_fail doctest on `split`'s docs
    // would be nicer, here a negative impl check via auto-trait inference:
    trait NotSync {
        const OK: bool = true;
    }
    impl<T> NotSync for T {}
    struct Check<T>(T);
    #[allow(dead_code)]
    impl<T: Sync> Check<T> {
        const OK: bool = false;
    }
    const P: bool = <Check<Producer<'static, SpinWait>>>::OK;
    const C: bool = <Check<Consumer<'static, SpinWait>>>::OK;
    const _: () = assert!(P && C);
}

#[test]
fn smallest_ring_one_max_message_at_a_time() {
    let mut buf: Box<Buf> = Box::default();
    let (mut p, mut c) = split(buf.as_mut_slice(), Config::new(64), SpinWait::std()).unwrap();
    assert_eq!(p.max_payload(), 24);
    let max = [0xAB; 24];
    for round in 0..50u32 {
        p.try_send(&max, round).unwrap();
        // 64-byte ring: one 32-byte record + next header leaves 24 bytes: a second max record cannot fit.
        assert_eq!(p.try_send(&max, 0), Err(Error::Full));
        let m = c.try_recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), (round, &max[..]));
        drop(m);
        assert_eq!(c.try_recv().err(), Some(Error::Empty)); // publishes the release
    }
    assert_eq!(
        p.try_send(&[0; 25], 0),
        Err(Error::TooLarge { len: 25, max: 24 })
    );
}

#[test]
fn exactly_full_and_wrap_with_padding() {
    with_ring::<{ region_size(128).unwrap() }>(128, |mut p, mut c| {
        // 8-byte payloads: 16-byte records. 128 bytes hold 7 records + the next header.
        let mut sent = 0u32;
        while p.try_send(&sent.to_le_bytes(), sent).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, 7);
        for i in 0..sent {
            assert_eq!(c.try_recv().unwrap().payload(), &i.to_le_bytes());
        }
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        // Now at offset 112: a 24-byte record (16-byte payload) does not fit the
        // 16-byte tail, so a padding record fills it and the record goes to 0.
        p.try_send(&[7; 16], 99).unwrap();
        let m = c.try_recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), (99, &[7u8; 16][..]));
        drop(m);
        // Many laps with sizes that force padding at varying offsets (under
        // Miri, slow here, a fifth of them: every length and many offsets).
        let laps = if cfg!(miri) { 200 } else { 1000u32 };
        for i in 0..laps {
            let len = (i as usize * 7) % 41;
            let payload: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
            p.try_send(&payload, i).unwrap();
            let m = c.try_recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &payload[..]));
        }
    });
}

/// With line padding on, a small message is followed by padding to its
/// line's end when the rest of the line is shorter than it: the next one
/// starts a line. Larger records and staged ones are packed; a line pad
/// may be followed by an end pad.
#[test]
fn line_padding_places_small_messages_at_line_starts() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        p.set_line_padding(true);
        let base = {
            p.try_send(&[], 0).unwrap();
            let m = c.try_recv().unwrap();
            m.as_ptr() as usize - 8
        };
        // Offset 8: a 40-byte record to 48, then padding to 64.
        let at = |c: &mut Consumer<'_, _>, len: usize| {
            let m = c.try_recv().unwrap();
            assert_eq!(m.len(), len);
            m.as_ptr() as usize - 8 - base
        };
        p.try_send(&[1; 32], 1).unwrap();
        p.try_send(&[2; 64], 2).unwrap(); // 72 bytes at 64: to 136, no padding
        p.try_send(&[3; 32], 3).unwrap(); // 40 bytes at 136: to 176, padding to 192
        assert_eq!(at(&mut c, 32), 8);
        assert_eq!(at(&mut c, 64), 64);
        assert_eq!(at(&mut c, 32), 136);
        // 72 bytes do not fit at 192: an end pad follows the line pad.
        p.try_send(&[4; 64], 4).unwrap();
        assert_eq!(at(&mut c, 64), 0);
        // Offset 72: 16-byte records fit the rest of the line: no padding.
        p.try_send(&[5; 8], 5).unwrap();
        p.try_send(&[6; 8], 6).unwrap();
        assert_eq!(at(&mut c, 8), 72);
        assert_eq!(at(&mut c, 8), 88);
        // Staged 40-byte records are packed: 104, 144.
        p.send_staged(&[7; 32], 7).unwrap();
        p.send_staged(&[8; 32], 8).unwrap();
        p.publish();
        assert_eq!(at(&mut c, 32), 104);
        assert_eq!(at(&mut c, 32), 144);
        // Off: packed (184 to 224), then wrapped.
        p.set_line_padding(false);
        p.try_send(&[9; 32], 9).unwrap();
        p.try_send(&[9; 32], 9).unwrap();
        assert_eq!(at(&mut c, 32), 184);
        assert_eq!(at(&mut c, 32), 0); // 32 bytes left at 224: an end pad
    });
}

/// Offsets of the messages of a ring exchanged one at a time, relative to
/// the data area (the first message of the lap is at 0).
fn offsets_one_at_a_time(
    p: &mut Producer<'_, SpinWait>,
    c: &mut Consumer<'_, SpinWait>,
    len: usize,
    n: usize,
) -> Vec<usize> {
    let mut base = None;
    (0..n)
        .map(|i| {
            p.try_send(&vec![i as u8; len], i as u32).unwrap();
            let m = c.try_recv().unwrap();
            assert_eq!(
                (m.type_id(), m.payload()),
                (i as u32, &vec![i as u8; len][..])
            );
            let at = m.as_ptr() as usize - 8;
            at - *base.get_or_insert(at)
        })
        .collect()
}

#[test]
fn early_wrap_reuses_the_start_of_a_nearly_empty_ring() {
    with_ring::<{ region_size(1 << 14).unwrap() }>(1 << 14, |mut p, mut c| {
        // Off: 1000-byte payloads (1008-byte records) move through the ring.
        c.set_release_threshold(1);
        let off = offsets_one_at_a_time(&mut p, &mut c, 1000, 20);
        assert_eq!(off[15], 15 * 1008);
        assert_eq!(off[16], 0); // 16 * 1008 + 1008 > 16384: the usual wrap
    });
    with_ring::<{ region_size(1 << 14).unwrap() }>(1 << 14, |mut p, mut c| {
        p.set_early_wrap(3000);
        c.set_release_threshold(1); // as a consumer that finds the ring empty
        let off = offsets_one_at_a_time(&mut p, &mut c, 1000, 40);
        // After the publication that ends at 3024 the producer reads the
        // released position: 2016 (the record at 2016 is not read yet).
        // One record unreleased is within half of 3024, and the next one
        // fits at 0 after an end pad from 3024, so it goes there.
        for lap in off.chunks(3) {
            assert_eq!(lap, &[0, 1008, 2016][..lap.len()], "{off:?}");
        }
    });
}

#[test]
fn early_wrap_waits_while_the_consumer_holds_messages() {
    with_ring::<{ region_size(1 << 14).unwrap() }>(1 << 14, |mut p, mut c| {
        p.set_early_wrap(1024);
        c.set_release_threshold(1);
        // Eight 1008-byte records queued: the producer's reads of the
        // released position (after the publications ending at 2016, 4032,
        // 6048 and 8064) find nothing released, so none goes back to 0.
        for i in 0..8u32 {
            p.try_send(&[i as u8; 1000], i).unwrap();
        }
        let first = c.try_recv().unwrap().as_ptr() as usize;
        let at = |c: &mut Consumer<'_, SpinWait>, i: u32| {
            let m = c.try_recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &[i as u8; 1000][..]));
            m.as_ptr() as usize - first
        };
        for i in 1..8u32 {
            assert_eq!(at(&mut c, i), i as usize * 1008);
        }
        // All released now, but the producer reads that only 1024 bytes
        // after its last read (at 8064): after the record ending at 10080.
        p.try_send(&[8; 1000], 8).unwrap();
        assert_eq!(at(&mut c, 8), 8 * 1008);
        p.try_send(&[9; 1000], 9).unwrap();
        assert_eq!(at(&mut c, 9), 9 * 1008);
        p.try_send(&[10; 1000], 10).unwrap();
        assert_eq!(at(&mut c, 10), 0);
        // Once the consumer passed the end pad, the whole ring is usable
        // again: fifteen more records fit (the producer's read after the
        // publication ending at 2016 finds everything before it released).
        for i in 11..26u32 {
            p.try_send(&[i as u8; 1000], i).unwrap();
        }
        for i in 11..26u32 {
            at(&mut c, i);
        }
    });
}

#[test]
fn early_wrap_needs_a_nearly_empty_ring() {
    with_ring::<{ region_size(1 << 14).unwrap() }>(1 << 14, |mut p, mut c| {
        p.set_early_wrap(3000);
        c.set_release_threshold(1);
        let first = {
            p.try_send(&[0; 1000], 0).unwrap();
            c.try_recv().unwrap().as_ptr() as usize
        };
        let at = |c: &mut Consumer<'_, SpinWait>, i: u32| {
            let m = c.try_recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &[i as u8; 1000][..]));
            (m.as_ptr() as usize - first) / 1008
        };
        for i in 1..5u32 {
            p.try_send(&[i as u8; 1000], i).unwrap();
        }
        assert_eq!(at(&mut c, 1), 1);
        // The read after the publication ending at 6048 finds 2016
        // released: 4032 bytes unreleased, more than half of 6048, so the
        // next record goes on (it would fit at 0).
        p.try_send(&[5; 1000], 5).unwrap();
        p.try_send(&[6; 1000], 6).unwrap();
        for i in 2..7u32 {
            assert_eq!(at(&mut c, i), i as usize);
        }
        // Caught up: after the next read (past 9048) the ring starts over.
        let mut slots = vec![];
        for i in 7..10u32 {
            p.try_send(&[i as u8; 1000], i).unwrap();
            slots.push(at(&mut c, i));
        }
        assert_eq!(slots, [7, 8, 0]);
    });
}

#[test]
fn early_wrap_after_a_lap_that_ends_exactly_at_the_end() {
    with_ring::<{ region_size(1 << 14).unwrap() }>(1 << 14, |mut p, mut c| {
        p.set_early_wrap(4096);
        c.set_release_threshold(1);
        // 1024-byte records, sixteen per lap. A burst of thirteen: the
        // producer's reads find nothing released, and its last one (after
        // 12288) leaves no further read in this lap.
        let mut first = None;
        for i in 0..13u32 {
            p.try_send(&[i as u8; 1016], i).unwrap();
        }
        let mut at = |c: &mut Consumer<'_, SpinWait>, i: u32| {
            let m = c.try_recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &[i as u8; 1016][..]));
            let a = m.as_ptr() as usize;
            (a - *first.get_or_insert(a)) / 1024
        };
        for i in 0..13u32 {
            assert_eq!(at(&mut c, i), i as usize);
        }
        // One at a time now. The lap ends exactly at the end of the data
        // area (no end pad); the next lap reads the released position
        // again after 4096 and starts over after four records.
        let mut slots = vec![];
        for i in 13..24u32 {
            p.try_send(&[i as u8; 1016], i).unwrap();
            slots.push(at(&mut c, i));
        }
        assert_eq!(slots, [13, 14, 15, 0, 1, 2, 3, 0, 1, 2, 3]);
    });
}

#[test]
fn zero_length_messages() {
    with_ring::<{ region_size(64).unwrap() }>(64, |mut p, mut c| {
        for i in 0..100 {
            p.try_send(&[], i).unwrap();
            let m = c.try_recv().unwrap();
            assert!(m.payload().is_empty());
            assert_eq!(m.type_id(), i);
        }
    });
}

#[test]
fn dropped_grant_commits_nothing() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        let mut g = p.try_reserve(40).unwrap();
        g.fill(0xEE);
        drop(g);
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        p.try_send(b"x", 1).unwrap();
        assert_eq!(c.try_recv().unwrap().payload(), b"x");
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
    });
}

#[test]
fn partial_commit() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        let mut g = p.try_reserve(100).unwrap();
        assert_eq!(g.len(), 100);
        assert_eq!(g.as_ptr() as usize % 8, 0);
        g[..3].copy_from_slice(b"abc");
        g.commit(3, 5);
        p.try_send(b"next", 6).unwrap();
        assert_eq!(c.try_recv().unwrap().payload(), b"abc");
        assert_eq!(c.try_recv().unwrap().payload(), b"next");
    });
}

#[test]
#[should_panic(expected = "commit of more bytes than reserved")]
fn commit_more_than_reserved_panics() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, _c| {
        p.try_reserve(4).unwrap().commit(5, 0);
    });
}

#[test]
fn staged_messages_are_invisible_until_published() {
    with_ring::<{ region_size(1024).unwrap() }>(1024, |mut p, mut c| {
        for i in 0..10u8 {
            p.send_staged(&[i; 3], i as u32).unwrap();
        }
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        assert_eq!(c.peek().err(), Some(Error::Empty));
        p.publish();
        let mut got = Vec::new();
        assert_eq!(c.recv_batch(4, |t, b| got.push((t, b.to_vec()))), Ok(4));
        assert_eq!(c.recv_batch(100, |t, b| got.push((t, b.to_vec()))), Ok(6));
        let want: Vec<_> = (0..10u8).map(|i| (i as u32, std::vec![i; 3])).collect();
        assert_eq!(got, want);
        // A publishing commit publishes staged messages before it.
        p.send_staged(b"a", 1).unwrap();
        p.try_send(b"b", 2).unwrap();
        assert_eq!(c.try_recv().unwrap().payload(), b"a");
        assert_eq!(c.try_recv().unwrap().payload(), b"b");
    });
}

#[test]
fn staged_batch_is_published_when_ring_fills() {
    with_ring::<{ region_size(128).unwrap() }>(128, |mut p, mut c| {
        let mut n = 0;
        while p.send_staged(&[1; 8], 0).is_ok() {
            n += 1;
        }
        assert_eq!(n, 7);
        // The Full return published them, so the consumer can make room.
        assert_eq!(c.recv_batch(100, |_, _| {}), Ok(7));
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        p.try_send(&[2; 8], 0).unwrap();
    });
}

#[test]
fn peek_does_not_consume() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        p.try_send(b"one", 1).unwrap();
        p.try_send(b"two", 2).unwrap();
        assert_eq!(c.peek().unwrap().payload(), b"one");
        assert_eq!(c.peek().unwrap().type_id(), 1);
        assert_eq!(c.try_recv().unwrap().payload(), b"one");
        assert_eq!(c.peek().unwrap().payload(), b"two");
        c.try_recv().unwrap().release();
        assert_eq!(c.peek().err(), Some(Error::Empty));
    });
}

#[test]
fn close_is_reported_after_delivery() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        p.try_send(b"last words", 3).unwrap();
        p.send_staged(b"staged", 4).unwrap();
        drop(p);
        assert!(c.is_producer_closed());
        assert_eq!(c.try_recv().unwrap().payload(), b"last words");
        assert_eq!(c.try_recv().unwrap().payload(), b"staged"); // drop publishes staged messages
        assert_eq!(c.try_recv().err(), Some(Error::Closed));
        assert_eq!(c.recv().err(), Some(Error::Closed));
        assert_eq!(c.recv_batch(3, |_, _| {}), Err(Error::Closed));
    });
    with_ring::<{ region_size(64).unwrap() }>(64, |mut p, c| {
        p.try_send(&[0; 24], 0).unwrap();
        drop(c);
        assert!(p.is_consumer_closed());
        assert_eq!(p.try_send(&[0; 24], 0), Err(Error::Closed));
        assert_eq!(p.send(&[0; 24], 0), Err(Error::Closed));
    });
}

#[test]
fn blocking_calls_time_out() {
    with_ring::<{ region_size(64).unwrap() }>(64, |mut p, mut c| {
        c.set_spin_budget(10);
        p.set_spin_budget(10);
        let t = Duration::from_millis(20);
        assert_eq!(c.recv_timeout(t).err(), Some(Error::Timeout));
        p.try_send(&[0; 24], 0).unwrap();
        assert_eq!(p.send_timeout(&[0; 24], 0, t), Err(Error::Timeout));
        assert_eq!(
            p.reserve_timeout(24, Duration::ZERO).err(),
            Some(Error::Timeout)
        );
        assert_eq!(
            p.reserve(25).err(),
            Some(Error::TooLarge { len: 25, max: 24 })
        );
        assert_eq!(p.stats().full_events, 2);
        assert_eq!(c.recv_timeout(t).unwrap().payload(), &[0; 24]);
    });
}

#[test]
fn blocking_both_directions_across_threads_with_sleep() {
    for pure_spin in [false, true] {
        let mut buf: Box<RegionBuf<{ region_size(128).unwrap() }>> = Box::default();
        let (mut p, mut c) = split(
            buf.as_mut_slice(),
            Config::new(128).pure_spin(pure_spin),
            SpinWait::std(),
        )
        .unwrap();
        // Tiny spin budgets force the sleep path on both sides.
        p.set_spin_budget(1);
        c.set_spin_budget(1);
        c.set_release_threshold(u32::MAX);
        let n = if cfg!(miri) { 50 } else { 20_000u32 };
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..n {
                    p.send_timeout(&i.to_le_bytes(), i, Duration::from_secs(60))
                        .unwrap();
                }
            });
            for i in 0..n {
                let m = c.recv_timeout(Duration::from_secs(60)).unwrap();
                assert_eq!((m.type_id(), m.payload()), (i, &i.to_le_bytes()[..]));
            }
            assert_eq!(
                c.recv_timeout(Duration::from_secs(60)).err(),
                Some(Error::Closed)
            );
        });
    }
}

/// A blocking receive that finds the ring empty publishes the released
/// position at once, while it spins, not only at the release threshold or
/// when its spin budget runs out: a producer that reads it (early wrap, a
/// full ring) sees every message the consumer is done with.
#[test]
fn blocking_receive_publishes_release_when_it_finds_the_ring_empty() {
    for pure_spin in [false, true] {
        let mut buf: Box<RegionBuf<{ region_size(1024).unwrap() }>> = Box::default();
        let (mut p, mut c) = split(
            buf.as_mut_slice(),
            Config::new(1024).pure_spin(pure_spin),
            SpinWait::std(),
        )
        .unwrap();
        // Neither the threshold nor the end of the spin budget publishes.
        c.set_spin_budget(u32::MAX);
        c.set_release_threshold(u32::MAX);
        let t = Duration::from_secs(60);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..2u32 {
                    let m = c.recv_timeout(t).unwrap();
                    assert_eq!(m.type_id(), i);
                }
            });
            p.try_send(&[1; 24], 0).unwrap();
            // The receiver takes message 0 and spins for message 1. The
            // counters are separate words read one by one (`Stats` may mix
            // two moments on a weakly ordered machine: each counter is
            // exact at some moment, see `Stats`), so wait for both.
            let start = std::time::Instant::now();
            let mut s = p.stats();
            while (s.messages_released, s.bytes_released) != (1, 24)
                && start.elapsed() < Duration::from_secs(20)
            {
                std::thread::yield_now();
                s = p.stats();
            }
            // Let the receiver finish before asserting (the scope joins it).
            p.try_send(&[2; 24], 1).unwrap();
            assert_eq!(
                (s.messages_released, s.bytes_released),
                (1, 24),
                "release not published while spinning (pure spin: {pure_spin})"
            );
        });
    }
}

#[test]
fn stats_count_messages_and_bytes() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        p.try_send(b"12345", 0).unwrap();
        p.try_send(b"678", 0).unwrap();
        drop(c.try_recv().unwrap());
        drop(c.try_recv().unwrap());
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        let s = p.stats();
        assert_eq!((s.messages_committed, s.bytes_committed), (2, 8));
        assert_eq!((s.messages_released, s.bytes_released), (2, 8));
        assert_eq!(
            (s.producer, s.consumer),
            (RoleState::Attached, RoleState::Attached)
        );
    });
}

/// Deaths and take-overs through wraps, line padding and staged batches:
/// the successor producer continues right after the last published
/// record, the successor consumer at the last release. (Run by Miri too.)
#[test]
fn successors_take_over_dead_holders() {
    let mut buf: Box<RegionBuf<{ region_size(256).unwrap() }>> = Box::default();
    let raw = RawRegion::new(buf.0.as_mut_ptr(), buf.0.len());
    let h = |n| Holder::new(n).unwrap();
    let gone_below = |n: u64| move |old: Holder| old.get() < n;
    // SAFETY: `buf` outlives every handle below (forgotten ones are never
    // used again) and is only used through them.
    unsafe {
        init(raw, Config::new(256)).unwrap();
        let mut p = attach_producer_as(raw, SpinWait::std(), h(1)).unwrap();
        let mut c = attach_consumer_as(raw, SpinWait::std(), h(2)).unwrap();
        assert_eq!(
            (c.producer_holder(), p.consumer_holder()),
            (Some(h(1)), Some(h(2)))
        );
        let s = p.stats();
        assert_eq!(
            (s.producer_holder, s.consumer_holder),
            (Some(h(1)), Some(h(2)))
        );
        c.set_release_threshold(1);
        let mut next_send = 0u32;
        let mut next_recv = 0u32;
        let mut holder = 3;
        for round in 0..60u32 {
            p.set_line_padding(round % 3 == 0);
            for _ in 0..(round % 5) {
                let len = (next_send * 7 % 90) as usize;
                match p.try_send(&vec![next_send as u8; len], next_send) {
                    Ok(()) => next_send += 1,
                    Err(e) => assert_eq!(e, Error::Full),
                }
            }
            // Staged, never published: lost with the producer.
            let _ = p.send_staged(&[0xEE; 16], 0xDEAD);
            core::mem::forget(p);
            assert_eq!(
                take_over_producer(raw, SpinWait::std(), h(holder), |_| false).err(),
                Some(Error::RoleTaken)
            );
            p = take_over_producer(raw, SpinWait::std(), h(holder), gone_below(holder)).unwrap();
            holder += 1;
            // Receive a few, and sometimes the consumer dies too: it released
            // each message (threshold 1), so nothing comes twice.
            for _ in 0..1 + round % 4 {
                match c.try_recv() {
                    Ok(m) => {
                        assert_eq!(m.type_id(), next_recv);
                        assert_eq!(
                            m.payload(),
                            &vec![next_recv as u8; (next_recv * 7 % 90) as usize][..]
                        );
                        next_recv += 1;
                    }
                    Err(e) => assert_eq!(e, Error::Empty),
                }
            }
            if round % 2 == 1 {
                core::mem::forget(c);
                c = take_over_consumer(raw, SpinWait::std(), h(holder), gone_below(holder))
                    .unwrap();
                c.set_release_threshold(1);
                holder += 1;
            }
        }
        while next_recv < next_send {
            let m = c.try_recv().unwrap();
            assert_eq!(m.type_id(), next_recv);
            next_recv += 1;
        }
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        assert!(next_send > 50);
        drop(p);
        assert_eq!(c.try_recv().err(), Some(Error::Closed));
        assert_eq!(
            take_over_producer(raw, SpinWait::std(), h(99), |_| true).err(),
            Some(Error::Closed)
        );
        drop(c);
        // A role attached without a holder cannot be taken over.
        init(raw, Config::new(256)).unwrap();
        let _p = attach_producer(raw, SpinWait::std()).unwrap();
        assert_eq!(
            take_over_producer(raw, SpinWait::std(), h(7), |_| true).err(),
            Some(Error::RoleTaken)
        );
    }
}

#[test]
fn attach_validates_and_claims_once() {
    let mut buf: Box<RegionBuf<{ region_size(256).unwrap() }>> = Box::default();
    let len = buf.0.len();
    let ptr = buf.0.as_mut_ptr();
    let raw = RawRegion::new(ptr, len);
    // SAFETY: `buf` outlives every handle below and is only used through them.
    unsafe {
        assert_eq!(
            attach_producer(raw, SpinWait::std()).err(),
            Some(Error::BadMagic)
        );
        assert_eq!(init(raw, Config::new(100)), Err(Error::BadCapacity(100)));
        assert_eq!(
            init(RawRegion::new(ptr, len - 1), Config::new(256)),
            Err(Error::RegionTooSmall {
                needed: len,
                len: len - 1
            })
        );
        assert_eq!(
            init(RawRegion::new(ptr.add(8), len - 8), Config::new(64)),
            Err(Error::Misaligned)
        );
        init(raw, Config::new(256)).unwrap();
        let p = attach_producer(raw, SpinWait::std()).unwrap();
        assert_eq!(
            attach_producer(raw, SpinWait::std()).err(),
            Some(Error::RoleTaken)
        );
        let c = attach_consumer(raw, SpinWait::std()).unwrap();
        assert_eq!(
            attach_consumer(raw, SpinWait::std()).err(),
            Some(Error::RoleTaken)
        );
        let m = Monitor::attach(raw).unwrap();
        assert_eq!(m.capacity(), 256);
        drop(p);
        assert_eq!(m.stats().producer, RoleState::Closed);
        // A closed role cannot be claimed again.
        assert_eq!(
            attach_producer(raw, SpinWait::std()).err(),
            Some(Error::RoleTaken)
        );
        drop(c);
        // Split layout expected but not supplied, and the reverse.
        let mut cb: Box<RegionBuf<{ CONSUMER_BLOCK_SIZE }>> = Box::default();
        let cb_ptr = cb.0.as_mut_ptr();
        let split_raw = raw.with_consumer_block(cb_ptr, CONSUMER_BLOCK_SIZE);
        assert_eq!(
            attach_producer(split_raw, SpinWait::std()).err(),
            Some(Error::LayoutMismatch)
        );
        init(split_raw, Config::new(256)).unwrap();
        assert_eq!(
            attach_consumer(raw, SpinWait::std()).err(),
            Some(Error::LayoutMismatch)
        );
        assert_eq!(
            attach_consumer(raw.with_consumer_block(cb_ptr, 100), SpinWait::std()).err(),
            Some(Error::RegionTooSmall {
                needed: CONSUMER_BLOCK_SIZE,
                len: 100
            })
        );
        let mut p = attach_producer(split_raw, SpinWait::std()).unwrap();
        let mut c = attach_consumer(split_raw, SpinWait::std()).unwrap();
        p.try_send(b"split", 1).unwrap();
        assert_eq!(c.try_recv().unwrap().payload(), b"split");
        // Version mismatch.
        drop((p, c));
        init(raw, Config::new(256)).unwrap();
        ptr.add(8).cast::<u32>().write(VERSION + 1);
        assert_eq!(
            attach_consumer(raw, SpinWait::std()).err(),
            Some(Error::VersionMismatch {
                found: VERSION + 1,
                expected: VERSION
            })
        );
    }
}

#[test]
fn corruption_poisons_the_handle() {
    with_raw_ring(|poke, mut p, mut c| {
        p.try_send(b"ok", 1).unwrap();
        assert_eq!(c.try_recv().unwrap().payload(), b"ok");
        // A commit word with a length past the maximum at the consumer's position (offset 16).
        poke.u32(DATA_OFFSET + 16, raw::COMMITTED | (1000 << raw::LEN_SHIFT));
        let e = Error::Corrupt(Corruption::BadLength);
        assert_eq!(c.try_recv().err(), Some(e));
        poke.u32(DATA_OFFSET + 16, 0);
        assert_eq!(c.try_recv().err(), Some(e), "poisoned for good");
        assert_eq!(c.recv().err(), Some(e));
        // A released position ahead of the producer.
        poke.u32(CONSUMER_BLOCK_OFFSET, 5000);
        while p.try_send(&[0; 64], 0).is_ok() {}
        let e = Error::Corrupt(Corruption::BadReleasedPosition);
        assert_eq!(p.try_send(&[0; 64], 0), Err(e));
        assert_eq!(p.try_send(&[], 0), Err(e));
        assert_eq!(p.reserve(1).err(), Some(e));
    });
}

#[test]
fn episodes_skip_zero_and_the_wait_word() {
    use crate::sleep::next_episode;
    assert_eq!(next_episode(0, 0), 1);
    assert_eq!(next_episode(0, 1), 2);
    assert_eq!(next_episode(u32::MAX, 0), 1);
    assert_eq!(next_episode(u32::MAX, 1), 2);
    assert_eq!(next_episode(u32::MAX - 1, u32::MAX), 1);
}

#[test]
fn released_position_may_not_pass_what_was_published() {
    with_raw_ring(|poke, mut p, mut c| {
        p.try_send(&[1; 8], 0).unwrap(); // published up to 16
        p.send_staged(&[2; 8], 0).unwrap(); // staged up to 32
                                            // A consumer that claims to have released the staged record it never saw.
        poke.u32(CONSUMER_BLOCK_OFFSET, 32);
        while p.send_staged(&[0; 8], 0).is_ok() {}
        let e = p.send_staged(&[0; 8], 0);
        assert_eq!(e, Err(Error::Corrupt(Corruption::BadReleasedPosition)));
        drop(c.try_recv());
    });
}

#[test]
fn empty_batch_reports_poison() {
    with_raw_ring(|poke, mut p, mut c| {
        p.try_send(b"x", 0).unwrap();
        assert_eq!(c.recv_batch(0, |_, _| panic!("max is 0")), Ok(0));
        poke.u32(DATA_OFFSET, 1 << raw::LEN_SHIFT); // committed bit missing
        let e = Err(Error::Corrupt(Corruption::BadCommitWord));
        assert_eq!(c.try_recv().map(|m| m.to_vec()), e.map(|()| std::vec![]));
        assert_eq!(
            c.recv_batch(0, |_, _| {}),
            Err(Error::Corrupt(Corruption::BadCommitWord))
        );
    });
}

#[test]
fn wait_without_borrowing_then_take() {
    with_ring::<{ region_size(64).unwrap() }>(64, |mut p, mut c| {
        let t = Some(Duration::from_millis(5));
        c.set_spin_budget(1);
        p.set_spin_budget(1);
        assert_eq!(c.wait_message(t), Err(Error::Timeout));
        p.wait_for_room(24, t).unwrap();
        p.try_send(&[9; 24], 1).unwrap();
        assert_eq!(p.wait_for_room(24, t), Err(Error::Timeout));
        assert_eq!(
            p.wait_for_room(25, t),
            Err(Error::TooLarge { len: 25, max: 24 })
        );
        c.wait_message(t).unwrap();
        c.wait_message(t).unwrap(); // still there: waiting consumes nothing
        assert_eq!(c.try_recv().unwrap().payload(), &[9; 24]);
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
        p.wait_for_room(24, t).unwrap();
        drop(p);
        assert_eq!(c.wait_message(t), Err(Error::Closed));
    });
}

#[test]
fn has_room_agrees_with_reserve() {
    with_ring::<{ region_size(64).unwrap() }>(64, |mut p, mut c| {
        assert_eq!(p.has_room(8), Ok(true));
        assert_eq!(p.has_room(24), Ok(true));
        p.try_reserve(24).unwrap().commit(24, 1);
        assert_eq!(p.has_room(24), Ok(false));
        assert_eq!(p.try_reserve(24).err(), Some(Error::Full));
        assert!(c.has_message().unwrap());
        assert_eq!(c.try_recv().unwrap().type_id(), 1);
        assert_eq!(c.try_recv().err(), Some(Error::Empty)); // publishes the release
        assert_eq!(p.has_room(24), Ok(true));
        let mut g = p.try_reserve(24).unwrap();
        g.fill(7);
        g.commit(24, 2);
        let m = c.try_recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), (2, &[7u8; 24][..]));
    });
}

#[test]
fn copy_to_copies_every_length_exactly_once_and_refuses_short_buffers() {
    with_ring::<{ region_size(256).unwrap() }>(256, |mut p, mut c| {
        for len in 0..40usize {
            let data: [u8; 40] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ len as u8);
            p.try_send(&data[..len], len as u32).unwrap();
            let m = c.try_recv().unwrap();
            let mut out = [0xEEu8; 48];
            if len > 0 {
                assert_eq!(
                    m.copy_to(&mut out[..len - 1]),
                    Err(Error::TooLarge {
                        len,
                        max: len as u32 - 1
                    })
                );
            }
            assert_eq!(m.copy_to(&mut out), Ok(len));
            assert_eq!(&out[..len], &data[..len]);
            assert!(
                out[len..].iter().all(|&b| b == 0xEE),
                "wrote past the payload"
            );
            drop(m);
        }
        assert_eq!(c.try_recv().err(), Some(Error::Empty));
    });
}
