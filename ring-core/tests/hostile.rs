//! Hostile regions: the peer may write anything into the shared region at any
//! time. Rings are laid over raw memory with `init` and attached through
//! `RawRegion`, so that the test keeps a raw pointer and can scribble into the
//! control block, the consumer block and the data area while both handles
//! exist (single-threaded: the writes happen between calls, never during one).
//!
//! Properties checked after every call, whatever was written:
//! - nothing panics;
//! - a grant or a received payload lies inside the data area, 8-byte aligned,
//!   and a payload is at most `max_payload` long;
//! - every error is one the call may return (the producer only ever reports
//!   `Corrupt(BadReleasedPosition)`, the consumer only the other kinds);
//! - `TooLarge` exactly when `len > max_payload` (until the handle is poisoned);
//! - once a handle returns `Corrupt(c)`, every later fallible call on it
//!   returns exactly `Corrupt(c)`;
//! - blocking calls with a short timeout return.
//!
//! Also: attach validation, each refusal with its own error.

use memtube_ring::raw::{COMMITTED, FLAG_PURE_SPIN, FLAG_SPLIT, LEN_SHIFT, PADDING, STATE_CLOSED};
use memtube_ring::{
    attach_consumer, attach_producer, init, max_payload, region_size, take_over_consumer,
    take_over_producer, Config, Corruption, Error, Holder, RawRegion, RegionBuf, SpinWait,
    CONSUMER_BLOCK_OFFSET, CONSUMER_BLOCK_SIZE, CONTROL_SIZE, DATA_OFFSET, MAGIC, VERSION,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The largest capacity used here; every region is this big.
const BIG: usize = match region_size(1024) {
    Some(n) => n,
    None => panic!("invalid capacity"),
};
/// A short timeout for blocking calls.
const SHORT: Duration = Duration::from_millis(1);
/// A blocking call with a short timeout that takes longer than this hangs.
const HANG: Duration = Duration::from_secs(20);

mod common;
use common::{Rng, Rx, Tx};

/// Heap memory for a ring that the test reaches only through raw pointers,
/// so it may write into it while handles borrow it.
struct Mem {
    main: *mut RegionBuf<BIG>,
    cons: *mut RegionBuf<CONSUMER_BLOCK_SIZE>,
}

impl Mem {
    fn new() -> Self {
        Mem {
            main: Box::into_raw(Box::default()),
            cons: Box::into_raw(Box::default()),
        }
    }

    fn main_ptr(&self) -> *mut u8 {
        self.main.cast()
    }

    fn cons_ptr(&self) -> *mut u8 {
        self.cons.cast()
    }

    fn raw(&self, split: bool) -> RawRegion {
        let r = RawRegion::new(self.main_ptr(), BIG);
        if split {
            r.with_consumer_block(self.cons_ptr(), CONSUMER_BLOCK_SIZE)
        } else {
            r
        }
    }

    /// Write a `u32` at byte `off` (4-aligned) of the main region.
    fn poke(&self, off: usize, v: u32) {
        assert!(off % 4 == 0 && off + 4 <= BIG);
        // SAFETY: in bounds and 4-aligned (asserted; the region is 128-aligned);
        // the memory is live until `Drop`; single-threaded, so no access of a
        // handle runs concurrently.
        unsafe { self.main_ptr().add(off).cast::<u32>().write_volatile(v) }
    }

    /// Write a byte at `off` of the main region.
    fn poke_u8(&self, off: usize, v: u8) {
        assert!(off < BIG);
        // SAFETY: as in `poke`.
        unsafe { self.main_ptr().add(off).write_volatile(v) }
    }

    /// Read a `u32` at `off` (4-aligned) of the main region.
    fn peek(&self, off: usize) -> u32 {
        assert!(off % 4 == 0 && off + 4 <= BIG);
        // SAFETY: as in `poke`.
        unsafe { self.main_ptr().add(off).cast::<u32>().read_volatile() }
    }

    /// Write a `u32` at `off` of the consumer block (wherever the layout puts it).
    fn poke_cons(&self, split: bool, off: usize, v: u32) {
        if split {
            assert!(off % 4 == 0 && off + 4 <= CONSUMER_BLOCK_SIZE);
            // SAFETY: as in `poke`, for the separate consumer block.
            unsafe { self.cons_ptr().add(off).cast::<u32>().write_volatile(v) }
        } else {
            self.poke(CONSUMER_BLOCK_OFFSET + off, v)
        }
    }

    fn peek_cons(&self, split: bool, off: usize) -> u32 {
        if split {
            assert!(off % 4 == 0 && off + 4 <= CONSUMER_BLOCK_SIZE);
            // SAFETY: as in `poke`, for the separate consumer block.
            unsafe { self.cons_ptr().add(off).cast::<u32>().read_volatile() }
        } else {
            self.peek(CONSUMER_BLOCK_OFFSET + off)
        }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: both came from `Box::into_raw` in `new`; every handle
        // borrowing them was dropped before (they live in inner scopes).
        unsafe {
            drop(Box::from_raw(self.main));
            drop(Box::from_raw(self.cons));
        }
    }
}

/// Lay a ring over `mem` and attach both handles.
///
/// The handles' lifetime is unbounded: callers drop them before `mem`.
fn ring<'a>(mem: &Mem, cap: u32, split: bool, pure_spin: bool) -> (Tx<'a>, Rx<'a>) {
    let raw = mem.raw(split);
    // SAFETY: `mem` is valid, aligned memory of the right sizes, reached only
    // through raw pointers; no handle is attached to it yet.
    unsafe { init(raw, Config::new(cap).pure_spin(pure_spin)).unwrap() };
    // SAFETY: initialized just above; the caller drops the handles before
    // `mem`; the test's own writes into the region happen between calls.
    let tx = unsafe { attach_producer(raw, SpinWait::std()).unwrap() };
    // SAFETY: as above.
    let rx = unsafe { attach_consumer(raw, SpinWait::std()).unwrap() };
    (tx, rx)
}

/// The checker for one ring: what each handle may return.
struct Check {
    cap: u32,
    max: usize,
    data_lo: usize,
    tx_poison: Option<Corruption>,
    rx_poison: Option<Corruption>,
    /// Counts, to make sure the runs reach the interesting states.
    delivered: u64,
    corrupt: u64,
    kinds: HashMap<Corruption, u64>,
}

impl Check {
    fn new(mem: &Mem, cap: u32) -> Self {
        Check {
            cap,
            max: max_payload(cap) as usize,
            data_lo: mem.main_ptr() as usize + DATA_OFFSET,
            tx_poison: None,
            rx_poison: None,
            delivered: 0,
            corrupt: 0,
            kinds: HashMap::new(),
        }
    }

    fn in_data(&self, addr: usize, len: usize, what: &str) {
        let p = addr;
        assert_eq!(p % 8, 0, "{what}: not 8-byte aligned");
        assert!(
            p >= self.data_lo && p.checked_add(len).unwrap() <= self.data_lo + self.cap as usize,
            "{what}: {len} bytes at data offset {} lie outside the data area of {} bytes",
            p as isize - self.data_lo as isize,
            self.cap
        );
    }

    fn payload(&mut self, addr: usize, len: usize) {
        assert!(
            len <= self.max,
            "payload of {len} bytes exceeds max_payload {}",
            self.max
        );
        self.in_data(addr, len, "payload");
        self.delivered += 1;
    }

    /// Check a producer call's error (`len`: the requested length).
    fn tx_err(&mut self, e: Error, len: usize, blocking: bool) {
        if let Some(c) = self.tx_poison {
            assert_eq!(e, Error::Corrupt(c), "producer poisoned by {c:?}");
            return;
        }
        if len > self.max {
            assert_eq!(
                e,
                Error::TooLarge {
                    len,
                    max: self.max as u32
                }
            );
            return;
        }
        match e {
            Error::Full if !blocking => {}
            Error::Timeout if blocking => {}
            Error::Closed => {}
            Error::Corrupt(c @ Corruption::BadReleasedPosition) => {
                self.tx_poison = Some(c);
                self.corrupt += 1;
                *self.kinds.entry(c).or_default() += 1;
            }
            e => panic!("producer call (len {len}, blocking {blocking}) returned {e:?}"),
        }
    }

    /// Check that a producer call that succeeded was allowed to.
    fn tx_ok(&self, len: usize) {
        assert!(self.tx_poison.is_none(), "poisoned producer succeeded");
        assert!(
            len <= self.max,
            "reservation of {len} > max_payload succeeded"
        );
    }

    fn rx_err(&mut self, e: Error, blocking: bool) {
        if let Some(c) = self.rx_poison {
            assert_eq!(e, Error::Corrupt(c), "consumer poisoned by {c:?}");
            return;
        }
        match e {
            Error::Empty if !blocking => {}
            Error::Timeout if blocking => {}
            Error::Closed => {}
            Error::Corrupt(Corruption::BadReleasedPosition) => {
                panic!("the consumer reported a producer-side corruption")
            }
            Error::Corrupt(c) => {
                self.rx_poison = Some(c);
                self.corrupt += 1;
                *self.kinds.entry(c).or_default() += 1;
            }
            e => panic!("consumer call (blocking {blocking}) returned {e:?}"),
        }
    }

    fn rx_ok(&self) {
        assert!(
            self.rx_poison.is_none(),
            "poisoned consumer delivered a message"
        );
    }
}

/// Time a blocking call and fail if it does not return.
fn bounded<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    assert!(
        start.elapsed() < HANG,
        "a blocking call with a 1 ms timeout took {:?}",
        start.elapsed()
    );
    r
}

fn pick_len(rng: &mut Rng, max: usize) -> usize {
    match rng.below(10) {
        0 => 0,
        1 => max,
        2 => max + 1 + rng.below(4) as usize,
        3 => usize::MAX,
        4..=6 => rng.below(17) as usize,
        _ => rng.below(max as u64 + 1) as usize,
    }
}

/// One producer operation.
fn producer_op(rng: &mut Rng, ck: &mut Check, tx: &mut Tx<'_>) {
    let len = pick_len(rng, ck.max);
    let ty = rng.next() as u32;
    match rng.below(7) {
        0 | 1 => {
            let blocking = rng.chance(20);
            let r = if blocking {
                bounded(|| tx.reserve_timeout(len, SHORT))
            } else {
                tx.try_reserve(len)
            };
            match r {
                Ok(mut g) => {
                    ck.tx_ok(len);
                    assert_eq!(g.len(), len);
                    ck.in_data(g.as_ptr() as usize, len, "grant");
                    g.fill(rng.next() as u8);
                    let used = rng.below(len as u64 + 1) as usize;
                    match rng.below(3) {
                        0 => g.commit(used, ty),
                        1 => g.commit_staged(used, ty),
                        _ => drop(g),
                    }
                }
                Err(e) => ck.tx_err(e, len, blocking),
            }
        }
        2..=4 => {
            let len = len.min(ck.max + 8);
            let data = vec![rng.next() as u8; len];
            let (r, blocking) = match rng.below(3) {
                0 => (tx.try_send(&data, ty), false),
                1 => (tx.send_staged(&data, ty), false),
                _ => (bounded(|| tx.send_timeout(&data, ty, SHORT)), true),
            };
            match r {
                Ok(()) => ck.tx_ok(len),
                Err(e) => ck.tx_err(e, len, blocking),
            }
        }
        5 => tx.publish(),
        _ => {
            // Read-only queries must not panic either.
            let _ = (
                tx.stats(),
                tx.is_consumer_closed(),
                tx.capacity(),
                tx.max_payload(),
            );
            tx.set_spin_budget(rng.below(64) as u32);
        }
    }
}

/// One consumer operation.
fn consumer_op(rng: &mut Rng, ck: &mut Check, rx: &mut Rx<'_>) {
    match rng.below(8) {
        0..=2 => match rx.try_recv() {
            Ok(m) => {
                ck.rx_ok();
                ck.payload(m.as_ptr() as usize, m.len());
                let _ = (m.type_id(), m.iter().fold(0u8, |a, &b| a ^ b));
                if rng.chance(50) {
                    m.release();
                }
            }
            Err(e) => ck.rx_err(e, false),
        },
        3 => match rx.peek() {
            Ok(p) => {
                ck.rx_ok();
                ck.payload(p.payload().as_ptr() as usize, p.payload().len());
            }
            Err(e) => ck.rx_err(e, false),
        },
        4 | 5 => {
            // Not 0: `recv_batch(0, ..)` returns `Empty` even on a poisoned
            // handle (a known ring-core issue, see the test report).
            let k = 1 + rng.below(40) as usize;
            let mut seen = Vec::new();
            let r = rx.recv_batch(k, |_, p| seen.push((p.as_ptr() as usize, p.len())));
            match r {
                Ok(n) => {
                    ck.rx_ok();
                    assert!(
                        (1..=k).contains(&n) && n == seen.len(),
                        "recv_batch({k}) = Ok({n}), {} calls",
                        seen.len()
                    );
                    for (p, l) in seen {
                        ck.payload(p, l);
                    }
                }
                Err(e) => {
                    assert!(
                        seen.is_empty(),
                        "recv_batch returned {e:?} after delivering"
                    );
                    ck.rx_err(e, false)
                }
            }
        }
        6 => match bounded(|| rx.recv_timeout(SHORT)) {
            Ok(m) => {
                ck.rx_ok();
                ck.payload(m.as_ptr() as usize, m.len());
            }
            Err(e) => ck.rx_err(e, true),
        },
        _ => {
            let _ = (
                rx.stats(),
                rx.is_producer_closed(),
                rx.capacity(),
                rx.max_payload(),
            );
            rx.set_release_threshold(rng.next() as u32 % (2 * ck.cap));
            rx.set_spin_budget(rng.below(64) as u32);
        }
    }
}

/// A commit word chosen to break some check (or, sometimes, to pass them).
fn hostile_word(rng: &mut Rng, cap: u32, max: u32, off: u32) -> u32 {
    let len = |l: u32| COMMITTED | (l << LEN_SHIFT);
    let line_pad = |k: u32| COMMITTED | PADDING | ((56u32.wrapping_sub(off % 64) + k) << LEN_SHIFT);
    match rng.below(16) {
        0 => 0,
        1 => rng.next() as u32,
        2 => u32::MAX,
        // Huge lengths.
        3 => len(rng.below(1 << 30) as u32),
        4 => len(max + 1 + rng.below(64) as u32),
        // A length that runs past the end of the data area from here.
        5 => len((cap - off).min(max)),
        // Well-formed garbage.
        6 => len(rng.below(max as u64 + 1) as u32),
        7 => len(rng.below(9) as u32),
        // Committed bit missing.
        8 => (rng.below(max as u64 + 1) as u32) << LEN_SHIFT | PADDING,
        9 => ((rng.below(max as u64) as u32 + 1) << LEN_SHIFT) & !COMMITTED,
        // Padding: exact for this offset, wrong, or at offset 0.
        10 => COMMITTED | PADDING | ((cap - off - 8) << LEN_SHIFT),
        11 => {
            COMMITTED
                | PADDING
                | ((cap - off - 8)
                    .wrapping_add(8 * rng.below(3) as u32)
                    .wrapping_sub(8)
                    << LEN_SHIFT)
        }
        12 => COMMITTED | PADDING | (rng.below(cap as u64) as u32) << LEN_SHIFT,
        // Line padding: exact for this offset (valid unless it is a line
        // start), or 8 bytes off.
        13 => line_pad(0),
        14 => line_pad(8 * rng.below(3) as u32).wrapping_sub(8 << LEN_SHIFT),
        _ => COMMITTED | PADDING,
    }
}

/// Scribble into the region.
fn scribble(rng: &mut Rng, mem: &Mem, cap: u32, split: bool) {
    let max = max_payload(cap);
    let slot = |rng: &mut Rng| rng.below(cap as u64 / 8) as u32 * 8;
    match rng.below(12) {
        // Commit words at a few slots.
        0..=3 => {
            for _ in 0..1 + rng.below(4) {
                let off = slot(rng);
                mem.poke(DATA_OFFSET + off as usize, hostile_word(rng, cap, max, off));
            }
        }
        // The same kind of word in every slot: the consumer reads one next.
        4 => {
            let kind = rng.next();
            for off in (0..cap).step_by(8) {
                let mut r = Rng::new(kind);
                mem.poke(
                    DATA_OFFSET + off as usize,
                    hostile_word(&mut r, cap, max, off),
                );
            }
        }
        // Type ids and payload bytes: harmless, must stay harmless.
        5 => {
            for _ in 0..1 + rng.below(16) {
                let off = DATA_OFFSET + rng.below(cap as u64) as usize;
                mem.poke_u8(off, rng.next() as u8);
            }
        }
        // The consumer's released position: forward, backward, far away.
        6 | 7 => {
            let cur = mem.peek_cons(split, 0);
            let v = match rng.below(6) {
                0 => rng.next() as u32,
                1 => cur.wrapping_add(8 * rng.below(cap as u64 / 4) as u32),
                2 => cur.wrapping_sub(8 * (1 + rng.below(8) as u32)),
                3 => cur.wrapping_add(cap),
                4 => cur.wrapping_add(8 * rng.below(2 * cap as u64 / 8) as u32),
                _ => 0,
            };
            mem.poke_cons(split, 0, v);
        }
        // Role states, sleep flags and wait words of either side.
        8 | 9 => {
            let v = match rng.below(5) {
                0 => 0,
                1 => 1,
                2 => STATE_CLOSED,
                3 => 3,
                _ => rng.next() as u32,
            };
            match rng.below(6) {
                0 => mem.poke(256, v),
                1 => mem.poke(260, v),
                2 => mem.poke(264, v),
                3 => mem.poke_cons(split, 128, v),
                4 => mem.poke_cons(split, 132, v),
                _ => mem.poke_cons(split, 136, v),
            }
        }
        // Counters and the header (copied out at attach: no effect).
        10 => {
            let off = [0, 8, 12, 16, 20, 24, 28, 128, 136, 144, 152][rng.below(11) as usize];
            mem.poke(off, rng.next() as u32);
        }
        _ => {
            let off = 8 + 4 * rng.below(6) as usize;
            mem.poke_cons(split, off, rng.next() as u32);
        }
    }
}

/// One ring: honest traffic with hostile writes in between.
fn hostile_run(
    seed: u64,
    cap: u32,
    split: bool,
    pure_spin: bool,
    steps: u32,
    scribble_percent: u64,
) -> Check {
    let mem = Mem::new();
    let mut rng = Rng::new(seed);
    let mut ck = Check::new(&mem, cap);
    {
        let (mut tx, mut rx) = ring(&mem, cap, split, pure_spin);
        tx.set_spin_budget(8);
        rx.set_spin_budget(8);
        for _ in 0..steps {
            if rng.chance(scribble_percent) {
                scribble(&mut rng, &mem, cap, split);
            }
            if rng.chance(50) {
                producer_op(&mut rng, &mut ck, &mut tx);
            } else {
                consumer_op(&mut rng, &mut ck, &mut rx);
            }
        }
        // Dropping a handle, poisoned or not, must not panic, in either order.
        if rng.chance(50) {
            drop(tx);
            for _ in 0..4 {
                consumer_op(&mut rng, &mut ck, &mut rx);
            }
        } else {
            drop(rx);
            for _ in 0..4 {
                producer_op(&mut rng, &mut ck, &mut tx);
            }
        }
    }
    ck
}

/// What attaching to a scribbled region may say: the role is held or
/// closed, or the header (scribbled too) is refused.
fn role_or_attach_error(e: Error) -> bool {
    matches!(
        e,
        Error::RoleTaken
            | Error::Closed
            | Error::BadMagic
            | Error::VersionMismatch { .. }
            | Error::LayoutMismatch
            | Error::BadCapacity(_)
            | Error::RegionTooSmall { .. }
    )
}

/// A successor takes over a role in a region a hostile peer scribbled on:
/// the take-over returns (an error the docs name, or a handle), and the
/// handle it gives keeps every guarantee above.
#[test]
fn take_over_of_a_scribbled_region_is_checked() {
    let (mut taken, mut refused) = (0, 0);
    for seed in 0..400u64 {
        let mut rng = Rng::new(seed ^ 0x7a6b);
        let cap = [64u32, 128, 256, 1024][rng.below(4) as usize];
        let split = rng.chance(50);
        let mem = Mem::new();
        let mut ck = Check::new(&mem, cap);
        let producer = rng.chance(50);
        {
            let (mut tx, mut rx) = ring(&mem, cap, split, rng.chance(20));
            tx.set_spin_budget(8);
            rx.set_spin_budget(8);
            for _ in 0..rng.below(200) {
                if rng.chance(50) {
                    producer_op(&mut rng, &mut ck, &mut tx);
                } else {
                    consumer_op(&mut rng, &mut ck, &mut rx);
                }
            }
            for _ in 0..rng.below(4) {
                scribble(&mut rng, &mem, cap, split);
            }
            // The dying side's holder word, as `attach_*_as` records it
            // (a u64 at 16 bytes into the side's wait line).
            let dead = Holder::new(1 + rng.below(1000)).unwrap();
            let heir = Holder::new(5000).unwrap();
            let gone = |h: Holder| h == dead;
            let raw = mem.raw(split);
            if producer {
                mem.poke(256 + 16, dead.get() as u32);
                mem.poke(256 + 20, (dead.get() >> 32) as u32);
                std::mem::forget(tx);
                // SAFETY: as in `ring`; the forgotten handle is never used again.
                let r = bounded(|| unsafe { take_over_producer(raw, SpinWait::std(), heir, gone) });
                match r {
                    Ok(mut tx) => {
                        taken += 1;
                        ck.tx_poison = None;
                        for _ in 0..50 {
                            producer_op(&mut rng, &mut ck, &mut tx);
                            consumer_op(&mut rng, &mut ck, &mut rx);
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        assert!(
                            matches!(e, Error::Corrupt(_)) || role_or_attach_error(e),
                            "take-over of the producer refused with {e:?}"
                        );
                        if matches!(e, Error::Corrupt(_)) {
                            // The role is left to the dead holder, not to a
                            // live process without a handle.
                            let h = u64::from(mem.peek(272)) | u64::from(mem.peek(276)) << 32;
                            assert_eq!(h, dead.get(), "holder after a refused take-over");
                        }
                    }
                }
            } else {
                mem.poke_cons(split, 128 + 16, dead.get() as u32);
                mem.poke_cons(split, 128 + 20, (dead.get() >> 32) as u32);
                std::mem::forget(rx);
                // SAFETY: as above.
                let r = bounded(|| unsafe { take_over_consumer(raw, SpinWait::std(), heir, gone) });
                match r {
                    Ok(mut rx) => {
                        taken += 1;
                        ck.rx_poison = None;
                        for _ in 0..50 {
                            producer_op(&mut rng, &mut ck, &mut tx);
                            consumer_op(&mut rng, &mut ck, &mut rx);
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        assert!(
                            e == Error::Corrupt(Corruption::BadReleasedPosition)
                                || role_or_attach_error(e),
                            "take-over of the consumer refused with {e:?}"
                        );
                    }
                }
            }
        }
    }
    eprintln!("take-overs: {taken} taken, {refused} refused");
    assert!(
        taken > 100 && refused > 10,
        "{taken} taken, {refused} refused"
    );
}

#[test]
fn hostile_writes_never_break_the_handles() {
    // `HOSTILE_ROUNDS=n` runs a longer soak (each round: three rings).
    let rounds = match std::env::var("HOSTILE_ROUNDS") {
        Ok(n) => n.parse().expect("HOSTILE_ROUNDS: a number"),
        Err(_) if cfg!(miri) => 2,
        Err(_) => 150,
    };
    let steps = if cfg!(miri) { 60 } else { 400 };
    let mut delivered = 0;
    let mut corrupt = 0;
    let mut kinds: HashMap<Corruption, u64> = HashMap::new();
    for round in 0..rounds {
        for (i, cap) in [64u32, 256, 1024].into_iter().enumerate() {
            let seed = round * 16 + i as u64;
            let split = round % 2 == 1;
            let pure_spin = round % 4 >= 2;
            // Mostly light scribbling (deep states between corruptions),
            // sometimes heavy.
            let percent = [2, 5, 15, 40][(round / 4 % 4) as usize];
            let t = hostile_run(seed, cap, split, pure_spin, steps, percent);
            delivered += t.delivered;
            corrupt += t.corrupt;
            for (k, n) in t.kinds {
                *kinds.entry(k).or_default() += n;
            }
        }
    }
    let mut kinds: Vec<_> = kinds
        .into_iter()
        .map(|(k, n)| format!("{k:?}: {n}"))
        .collect();
    kinds.sort();
    println!(
        "{delivered} messages delivered, {corrupt} corruptions reported ({})",
        kinds.join(", ")
    );
    assert!(
        delivered > 0 && corrupt > 0,
        "the runs must reach both states"
    );
}

/// Each kind of corruption, forged on purpose, is reported with its own
/// variant, and then sticks: every later call returns the same error, even
/// when honest messages are waiting or the length is too large.
#[test]
fn each_corruption_is_reported_and_sticks() {
    let cap = 256u32;
    let max = max_payload(cap);
    type Forge = fn(&Mem, &mut Tx<'_>, &mut Rx<'_>);
    let cases: [(&str, Corruption, Forge); 12] = [
        (
            "committed bit missing",
            Corruption::BadCommitWord,
            |m, _, _| m.poke(DATA_OFFSET, 1 << LEN_SHIFT),
        ),
        (
            "length over max_payload",
            Corruption::BadLength,
            |m, _, _| {
                m.poke(
                    DATA_OFFSET,
                    COMMITTED | ((max_payload(256) + 1) << LEN_SHIFT),
                )
            },
        ),
        (
            "length past the end of the data area",
            Corruption::BadLength,
            |m, tx, rx| {
                // Move both sides to offset 248, then forge a 16-byte record there.
                for _ in 0..31 {
                    tx.try_send(&[], 0).unwrap();
                    rx.try_recv().unwrap();
                }
                m.poke(DATA_OFFSET + 248, COMMITTED | (16 << LEN_SHIFT));
            },
        ),
        ("padding at offset 0", Corruption::BadPadding, |m, _, _| {
            m.poke(DATA_OFFSET, COMMITTED | PADDING | ((256 - 8) << LEN_SHIFT))
        }),
        (
            "padding not ending at the end",
            Corruption::BadPadding,
            |m, tx, rx| {
                tx.try_send(&[1; 8], 0).unwrap();
                rx.try_recv().unwrap();
                m.poke(
                    DATA_OFFSET + 16,
                    COMMITTED | PADDING | ((256 - 16 - 16) << LEN_SHIFT),
                );
            },
        ),
        (
            "padding followed by padding",
            Corruption::BadPadding,
            |m, tx, rx| {
                tx.try_send(&[1; 8], 0).unwrap();
                rx.try_recv().unwrap();
                // Publish the release, so the padding is within the producer's space.
                assert_eq!(rx.try_recv().err(), Some(Error::Empty));
                m.poke(
                    DATA_OFFSET + 16,
                    COMMITTED | PADDING | ((256 - 16 - 8) << LEN_SHIFT),
                );
                m.poke(DATA_OFFSET, COMMITTED | PADDING | ((256 - 8) << LEN_SHIFT));
            },
        ),
        (
            "line padding short of the line's end",
            Corruption::BadPadding,
            |m, tx, rx| {
                tx.try_send(&[1; 8], 0).unwrap();
                rx.try_recv().unwrap();
                m.poke(DATA_OFFSET + 16, COMMITTED | PADDING | (8 << LEN_SHIFT));
            },
        ),
        (
            "line padding of a whole line",
            Corruption::BadPadding,
            |m, tx, rx| {
                for _ in 0..8 {
                    tx.try_send(&[], 0).unwrap();
                    rx.try_recv().unwrap();
                }
                m.poke(DATA_OFFSET + 64, COMMITTED | PADDING | (56 << LEN_SHIFT));
            },
        ),
        (
            "line padding followed by line padding",
            Corruption::BadPadding,
            |m, tx, rx| {
                tx.try_send(&[1; 8], 0).unwrap();
                rx.try_recv().unwrap();
                assert_eq!(rx.try_recv().err(), Some(Error::Empty));
                m.poke(DATA_OFFSET + 64, COMMITTED | PADDING | (56 << LEN_SHIFT));
                m.poke(DATA_OFFSET + 16, COMMITTED | PADDING | (40 << LEN_SHIFT));
            },
        ),
        (
            "record beyond the producer's space",
            Corruption::RecordOverrun,
            |m, tx, rx| {
                // Consume half the ring without publishing the release, then
                // forge a largest record: it would overlap unreleased space.
                rx.set_release_threshold(256);
                for _ in 0..16 {
                    tx.try_send(&[], 0).unwrap();
                    rx.try_recv().unwrap();
                }
                m.poke(
                    DATA_OFFSET + 128,
                    COMMITTED | ((max_payload(256)) << LEN_SHIFT),
                );
            },
        ),
        (
            "padding beyond the producer's space",
            Corruption::RecordOverrun,
            |m, tx, rx| {
                rx.set_release_threshold(256);
                for _ in 0..30 {
                    tx.try_send(&[], 0).unwrap();
                    rx.try_recv().unwrap();
                }
                // At offset 240 with 240 bytes unreleased: a 16-byte padding
                // record plus the next header exceeds the capacity.
                m.poke(DATA_OFFSET + 240, COMMITTED | PADDING | (8 << LEN_SHIFT));
            },
        ),
        (
            "line padding beyond the producer's space, nothing after it",
            Corruption::RecordOverrun,
            |m, tx, rx| {
                rx.set_release_threshold(256);
                for _ in 0..25 {
                    tx.try_send(&[], 0).unwrap();
                    rx.try_recv().unwrap();
                }
                // At offset 200 with 200 bytes unreleased: an exact line pad
                // (56 bytes) plus the next header exceeds the capacity. The
                // word after it (offset 0) reads empty, so only the check of
                // the padding itself can catch it.
                m.poke(DATA_OFFSET + 200, COMMITTED | PADDING | (48 << LEN_SHIFT));
                m.poke(DATA_OFFSET, 0);
            },
        ),
    ];
    for split in [false, true] {
        for (name, want, forge) in cases {
            let mem = Mem::new();
            {
                let (mut tx, mut rx) = ring(&mem, cap, split, false);
                forge(&mem, &mut tx, &mut rx);
                let c = Error::Corrupt(want);
                assert_eq!(rx.try_recv().err(), Some(c), "{name}");
                // Honest messages after the corruption change nothing.
                let _ = tx.try_send(b"honest", 1);
                assert_eq!(rx.try_recv().err(), Some(c), "{name}: sticky recv");
                assert_eq!(rx.peek().err(), Some(c), "{name}: sticky peek");
                assert_eq!(
                    rx.recv_batch(5, |_, _| panic!("delivered after corruption")),
                    Err(c),
                    "{name}"
                );
                assert_eq!(
                    bounded(|| rx.recv_timeout(SHORT)).err(),
                    Some(c),
                    "{name}: sticky recv_timeout"
                );
                // Repairing the region does not un-poison the handle.
                mem.poke(DATA_OFFSET, 0);
                assert_eq!(rx.try_recv().err(), Some(c), "{name}: sticky after repair");
                // The producer is not affected.
                let _ = tx.try_send(b"x", 2);
                assert!(
                    matches!(tx.try_send(&[0; 300], 0), Err(Error::TooLarge { len: 300, max: m }) if m == max)
                );
            }
        }
    }
}

/// The producer validates the consumer's released position when the ring
/// looks full: backward or past the producer's head is corruption, and sticks.
#[test]
fn bad_released_position_poisons_the_producer() {
    let cap = 256u32;
    for split in [false, true] {
        for (name, how) in [
            ("ahead of the head", 0u32),
            ("backward", 1),
            ("far away", 2),
            ("not 8-aligned (found by fuzzing)", 3),
        ] {
            let mem = Mem::new();
            {
                let (mut tx, mut rx) = ring(&mem, cap, split, false);
                // Consume and release some, so that "backward" exists.
                // 16-byte records: 256 is a multiple, so no padding.
                for _ in 0..4 {
                    tx.try_send(&[0; 8], 0).unwrap();
                }
                assert_eq!(rx.recv_batch(4, |_, _| {}), Ok(4));
                let released = mem.peek_cons(split, 0);
                assert_eq!(released, 4 * 16);
                // Fill the ring.
                let mut head = released;
                while tx.try_send(&[0; 8], 0).is_ok() {
                    head += 16;
                }
                let forged = match how {
                    0 => head + 8,
                    1 => released - 8,
                    2 => released.wrapping_add(1 << 31),
                    _ => released + 13,
                };
                mem.poke_cons(split, 0, forged);
                let c = Error::Corrupt(Corruption::BadReleasedPosition);
                assert_eq!(tx.try_send(&[0; 8], 0), Err(c), "{name}");
                assert_eq!(tx.try_send(&[], 0), Err(c), "{name}: sticky send");
                assert_eq!(tx.send_staged(&[], 0), Err(c), "{name}: sticky send_staged");
                assert_eq!(tx.try_reserve(0).err(), Some(c), "{name}: sticky reserve");
                assert_eq!(
                    tx.try_reserve(usize::MAX).err(),
                    Some(c),
                    "{name}: poison before TooLarge"
                );
                assert_eq!(
                    bounded(|| tx.reserve_timeout(8, SHORT)).err(),
                    Some(c),
                    "{name}"
                );
                assert_eq!(
                    bounded(|| tx.send_timeout(&[1], 0, SHORT)),
                    Err(c),
                    "{name}"
                );
                // Repairing the word does not un-poison the handle.
                mem.poke_cons(split, 0, head);
                assert_eq!(tx.try_send(&[], 0), Err(c), "{name}: sticky after repair");
                // The consumer still receives what was published.
                let mut n = 0;
                while rx.try_recv().is_ok() {
                    n += 1;
                }
                assert_eq!(n, (head - released) / 16);
            }
        }
    }
}

/// A released position that moves forward within what was published is
/// accepted (it is just a consumer that released): not corruption.
#[test]
fn forward_released_position_is_accepted() {
    let mem = Mem::new();
    {
        let (mut tx, _rx) = ring(&mem, 256, false, false);
        let mut head = 0;
        while tx.try_send(&[0; 16], 0).is_ok() {
            head += 24;
        }
        mem.poke_cons(false, 0, head);
        for _ in 0..100 {
            tx.try_send(&[0; 16], 0).unwrap();
            head += 24;
            mem.poke_cons(false, 0, head);
        }
    }
}

/// A forged but well-formed record is delivered (ring-core cannot tell), in bounds.
#[test]
fn well_formed_garbage_is_delivered_in_bounds() {
    let mem = Mem::new();
    {
        let (_tx, mut rx) = ring(&mem, 256, false, false);
        mem.poke(DATA_OFFSET, COMMITTED | (5 << LEN_SHIFT));
        mem.poke(DATA_OFFSET + 4, 77);
        let m = rx.try_recv().unwrap();
        assert_eq!((m.type_id(), m.len()), (77, 5));
        assert_eq!(
            m.as_ptr() as usize,
            mem.main_ptr() as usize + DATA_OFFSET + 8
        );
        drop(m);
        // The next header was never cleared by a producer: zero here.
        assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    }
}

/// Forged but well-formed padding is skipped: a line pad to the end of its
/// line, then an end pad, then a message at offset 0.
#[test]
fn line_padding_then_end_padding_is_skipped() {
    for split in [false, true] {
        let mem = Mem::new();
        {
            let (mut tx, mut rx) = ring(&mem, 256, split, false);
            tx.try_send(&[1; 8], 1).unwrap();
            assert_eq!(rx.try_recv().unwrap().payload(), &[1; 8]);
            // Finding the ring empty publishes the release (position 16).
            assert_eq!(rx.try_recv().err(), Some(Error::Empty));
            mem.poke(DATA_OFFSET + 16, COMMITTED | PADDING | (40 << LEN_SHIFT));
            mem.poke(
                DATA_OFFSET + 64,
                COMMITTED | PADDING | ((256 - 64 - 8) << LEN_SHIFT),
            );
            // A zero-length message at 0: with the next header it ends at
            // position 264, exactly a capacity past the release.
            mem.poke(DATA_OFFSET, COMMITTED);
            mem.poke(DATA_OFFSET + 4, 77);
            mem.poke(DATA_OFFSET + 8, 0);
            let m = rx.try_recv().unwrap();
            assert_eq!((m.type_id(), m.len()), (77, 0), "split {split}");
            assert_eq!(
                m.as_ptr() as usize,
                mem.main_ptr() as usize + DATA_OFFSET + 8
            );
        }
    }
}

/// Writes into the header after attach have no effect: it was copied out.
#[test]
fn header_is_copied_out_at_attach() {
    let mem = Mem::new();
    {
        let (mut tx, mut rx) = ring(&mem, 256, false, false);
        for off in (0..128).step_by(4) {
            mem.poke(off, 0xDEAD_BEEF);
        }
        for i in 0..if cfg!(miri) { 100 } else { 1000u32 } {
            tx.try_send(&i.to_le_bytes(), i).unwrap();
            let m = rx.try_recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &i.to_le_bytes()[..]));
        }
    }
}

/// A peer that marks its role closed (or writes any state) never makes a
/// handle misbehave: `Closed` comes only where documented.
#[test]
fn forged_role_states() {
    let mem = Mem::new();
    {
        let (mut tx, mut rx) = ring(&mem, 256, false, false);
        tx.try_send(b"a", 1).unwrap();
        // The producer "closed": published messages are still delivered first.
        mem.poke(256, STATE_CLOSED);
        assert_eq!(rx.try_recv().unwrap().payload(), b"a");
        assert_eq!(rx.try_recv().err(), Some(Error::Closed));
        mem.poke(256, 1);
        assert_eq!(rx.try_recv().err(), Some(Error::Empty));
        // The consumer "closed": a producer with room still sends; a full one reports Closed.
        mem.poke(CONSUMER_BLOCK_OFFSET + 128, STATE_CLOSED);
        assert!(tx.is_consumer_closed());
        let mut sent = 0;
        let err = loop {
            match tx.try_send(&[7; 40], 2) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        assert!(sent > 0);
        assert_eq!(err, Error::Closed);
        assert_eq!(
            bounded(|| tx.send_timeout(&[7; 40], 2, SHORT)),
            Err(Error::Closed)
        );
        mem.poke(CONSUMER_BLOCK_OFFSET + 128, 9);
        assert_eq!(tx.try_send(&[7; 40], 2), Err(Error::Full));
        assert_eq!(
            bounded(|| tx.send_timeout(&[7; 40], 2, SHORT)),
            Err(Error::Timeout)
        );
    }
}

// ---------------------------------------------------------------- attach

fn attach_p(raw: RawRegion) -> Result<(), Error> {
    // SAFETY: every region passed here is live, readable and writable memory
    // of at least the stated length, or is refused before any access beyond
    // what `check_region` validates; handles are dropped at once.
    unsafe { attach_producer(raw, SpinWait::std()).map(drop) }
}

fn attach_c(raw: RawRegion) -> Result<(), Error> {
    // SAFETY: as in `attach_p`.
    unsafe { attach_consumer(raw, SpinWait::std()).map(drop) }
}

/// Both roles refuse the region with `want` (so the first refusal claimed nothing).
fn refused(raw: RawRegion, want: Error, name: &str) {
    assert_eq!(attach_p(raw), Err(want), "producer: {name}");
    assert_eq!(attach_c(raw), Err(want), "consumer: {name}");
}

/// A fresh valid ring in `mem`, with `f` applied to the header.
fn forged(mem: &Mem, split: bool, f: impl FnOnce(&Mem)) -> RawRegion {
    let raw = mem.raw(split);
    // SAFETY: `mem` is valid memory of the right sizes; no handle is attached.
    unsafe { init(raw, Config::new(256)).unwrap() };
    f(mem);
    raw
}

#[test]
fn attach_validation() {
    let mem = Mem::new();
    let p = mem.main_ptr();

    // A valid ring attaches (and then the roles are taken).
    let raw = forged(&mem, false, |_| {});
    assert_eq!(attach_p(raw), Ok(()));

    // Never initialized (zeroed) memory.
    let zero = Mem::new();
    refused(zero.raw(false), Error::BadMagic, "zeroed region");

    let raw = forged(&mem, false, |m| m.poke(0, 0x1234));
    refused(raw, Error::BadMagic, "bad magic");
    let raw = forged(&mem, false, |m| m.poke_u8(7, b'2'));
    refused(raw, Error::BadMagic, "one byte of the magic");

    let raw = forged(&mem, false, |m| m.poke(8, VERSION + 1));
    refused(
        raw,
        Error::VersionMismatch {
            found: VERSION + 1,
            expected: VERSION,
        },
        "version",
    );
    let raw = forged(&mem, false, |m| m.poke(8, 0));
    refused(
        raw,
        Error::VersionMismatch {
            found: 0,
            expected: VERSION,
        },
        "version 0",
    );

    for bit in 2..32 {
        let raw = forged(&mem, false, |m| m.poke(12, 1 << bit));
        refused(raw, Error::LayoutMismatch, "unknown flag");
    }
    // Pure spin is a known flag.
    let raw = forged(&mem, false, |m| m.poke(12, FLAG_PURE_SPIN));
    assert_eq!(attach_p(raw), Ok(()));

    for bad in [
        0u32,
        1,
        32,
        100,
        96,
        255,
        257,
        3 << 20,
        u32::MAX,
        1 << 31 | 1,
    ] {
        let raw = forged(&mem, false, |m| m.poke(16, bad));
        refused(raw, Error::BadCapacity(bad), "capacity");
    }
    // A valid capacity, with max_payload updated, that the region cannot hold.
    let raw = forged(&mem, false, |m| {
        m.poke(16, 4096);
        m.poke(20, max_payload(4096));
    });
    refused(
        raw,
        Error::RegionTooSmall {
            needed: DATA_OFFSET + 4096,
            len: BIG,
        },
        "capacity beyond the region",
    );
    // A valid capacity whose derived max_payload was not updated.
    let raw = forged(&mem, false, |m| m.poke(16, 512));
    refused(
        raw,
        Error::LayoutMismatch,
        "max_payload of another capacity",
    );
    let raw = forged(&mem, false, |m| m.poke(20, max_payload(256) + 1));
    refused(raw, Error::LayoutMismatch, "max_payload");
    let raw = forged(&mem, false, |m| m.poke(24, DATA_OFFSET as u32 + 128));
    refused(raw, Error::LayoutMismatch, "data_offset");
    let raw = forged(&mem, false, |m| m.poke(28, 0));
    refused(
        raw,
        Error::LayoutMismatch,
        "consumer_offset 0 without the split flag",
    );
    let raw = forged(&mem, false, |m| m.poke(28, 512));
    refused(raw, Error::LayoutMismatch, "consumer_offset");

    // Region lengths.
    let raw = forged(&mem, false, |_| {});
    let short = RawRegion::new(p, DATA_OFFSET + 255);
    refused(
        short,
        Error::RegionTooSmall {
            needed: DATA_OFFSET + 256,
            len: DATA_OFFSET + 255,
        },
        "short",
    );
    let tiny = RawRegion::new(p, CONTROL_SIZE - 1);
    refused(
        tiny,
        Error::RegionTooSmall {
            needed: CONTROL_SIZE,
            len: CONTROL_SIZE - 1,
        },
        "tiny",
    );
    refused(
        RawRegion::new(p, 0),
        Error::RegionTooSmall {
            needed: CONTROL_SIZE,
            len: 0,
        },
        "empty",
    );

    // Alignment.
    // SAFETY: in bounds of the allocation (never dereferenced: refused first).
    let odd = unsafe { p.add(8) };
    refused(
        RawRegion::new(odd, BIG - 8),
        Error::Misaligned,
        "misaligned",
    );
    refused(
        RawRegion::new(core::ptr::null_mut(), BIG),
        Error::Misaligned,
        "null",
    );

    // Split layout mismatches.
    let c = mem.cons_ptr();
    let with_block = raw.with_consumer_block(c, CONSUMER_BLOCK_SIZE);
    refused(
        with_block,
        Error::LayoutMismatch,
        "consumer block for a single-region ring",
    );
    let split_raw = forged(&mem, true, |_| {});
    refused(
        RawRegion::new(p, BIG),
        Error::LayoutMismatch,
        "split ring without its consumer block",
    );
    let raw = forged(&mem, true, |m| m.poke(28, CONSUMER_BLOCK_OFFSET as u32));
    refused(
        raw,
        Error::LayoutMismatch,
        "split flag with a consumer_offset",
    );
    let raw = forged(&mem, false, |m| m.poke(12, FLAG_SPLIT));
    refused(
        raw.with_consumer_block(c, CONSUMER_BLOCK_SIZE),
        Error::LayoutMismatch,
        "split flag, offset 384",
    );
    let small_block = RawRegion::new(p, BIG).with_consumer_block(c, CONSUMER_BLOCK_SIZE - 1);
    refused(
        small_block,
        Error::RegionTooSmall {
            needed: CONSUMER_BLOCK_SIZE,
            len: CONSUMER_BLOCK_SIZE - 1,
        },
        "small consumer block",
    );
    // SAFETY: in bounds of the consumer block allocation (never dereferenced).
    let odd_block = unsafe { c.add(64) };
    let misaligned_block =
        RawRegion::new(p, BIG).with_consumer_block(odd_block, CONSUMER_BLOCK_SIZE);
    refused(
        misaligned_block,
        Error::Misaligned,
        "misaligned consumer block",
    );
    let null_block =
        RawRegion::new(p, BIG).with_consumer_block(core::ptr::null_mut(), CONSUMER_BLOCK_SIZE);
    refused(null_block, Error::Misaligned, "null consumer block");

    // The refusals claimed nothing: the valid split ring attaches once per role.
    let _ = forged(&mem, true, |_| {});
    assert_eq!(attach_p(split_raw), Ok(()));
    assert_eq!(attach_c(split_raw), Ok(()));
    // Second claims (the roles were closed by the drops): RoleTaken.
    assert_eq!(attach_p(split_raw), Err(Error::RoleTaken));
    assert_eq!(attach_c(split_raw), Err(Error::RoleTaken));
}

/// A role is claimed once while held, and cannot be claimed again after its
/// handle closes; the other role is independent.
#[test]
fn roles_are_claimed_once() {
    for split in [false, true] {
        let mem = Mem::new();
        let raw = mem.raw(split);
        // SAFETY: valid memory; nothing attached.
        unsafe { init(raw, Config::new(256)).unwrap() };
        {
            // SAFETY: initialized; dropped before `mem`.
            let tx = unsafe { attach_producer(raw, SpinWait::std()) }.unwrap();
            assert_eq!(attach_p(raw), Err(Error::RoleTaken));
            // SAFETY: as above.
            let rx = unsafe { attach_consumer(raw, SpinWait::std()) }.unwrap();
            assert_eq!(attach_c(raw), Err(Error::RoleTaken));
            assert_eq!(attach_p(raw), Err(Error::RoleTaken));
            drop(tx);
            drop(rx);
        }
        assert_eq!(attach_p(raw), Err(Error::RoleTaken));
        assert_eq!(attach_c(raw), Err(Error::RoleTaken));
    }
}

/// `init` refuses what it cannot lay out, with the same errors.
#[test]
fn init_validation() {
    let mem = Mem::new();
    let p = mem.main_ptr();
    let init_at = |raw: RawRegion, cap: u32| {
        // SAFETY: `raw` is inside `mem` or refused before any write (see the
        // cases below); nothing is attached.
        unsafe { init(raw, Config::new(cap)) }
    };
    assert_eq!(
        init_at(RawRegion::new(p, BIG), 100),
        Err(Error::BadCapacity(100))
    );
    assert_eq!(
        init_at(RawRegion::new(p, BIG), 32),
        Err(Error::BadCapacity(32))
    );
    assert_eq!(
        init_at(RawRegion::new(p, BIG), 0),
        Err(Error::BadCapacity(0))
    );
    assert_eq!(
        init_at(RawRegion::new(p, BIG), 2048),
        Err(Error::RegionTooSmall {
            needed: DATA_OFFSET + 2048,
            len: BIG
        })
    );
    // SAFETY: in bounds (never dereferenced: refused first).
    let odd = unsafe { p.add(64) };
    assert_eq!(
        init_at(RawRegion::new(odd, BIG - 64), 256),
        Err(Error::Misaligned)
    );
    let c = mem.cons_ptr();
    assert_eq!(
        init_at(RawRegion::new(p, BIG).with_consumer_block(c, 100), 256),
        Err(Error::RegionTooSmall {
            needed: CONSUMER_BLOCK_SIZE,
            len: 100
        })
    );
    // Nothing was written by the refusals: the region is still unattachable.
    assert_eq!(attach_p(RawRegion::new(p, BIG)), Err(Error::BadMagic));
    assert_eq!(init_at(RawRegion::new(p, BIG), 1024), Ok(()));
    if cfg!(target_endian = "little") {
        assert_eq!(mem.peek(0) as u64 | (mem.peek(4) as u64) << 32, MAGIC);
    }
}
