//! Fuzz target: a ring whose region a hostile peer writes into.
//!
//! The input is a configuration byte (capacity, layout, mode), then a
//! sequence of operations: writes of words or bytes anywhere in the region
//! (control block, consumer block, data area; forged commit words at record
//! slots), producer calls, consumer calls, and the drop of either handle.
//! Everything runs on one thread, so the writes happen between calls.
//!
//! The properties are those of `ring-core/tests/hostile.rs`: no panic; a
//! grant or payload lies inside the data area, 8-byte aligned, a payload at
//! most `max_payload` long; each error is one the call may return;
//! `TooLarge` exactly when `len > max_payload`; once a handle returns
//! `Corrupt(c)` every later fallible call on it returns `Corrupt(c)`;
//! blocking calls (zero timeout here) return.

#![no_main]

use libfuzzer_sys::fuzz_target;
use memtube_ring::raw::{COMMITTED, LEN_SHIFT, PADDING};
use memtube_ring::{
    attach_consumer, attach_producer, init, max_payload, Config, Consumer, Corruption, Error,
    Producer, RawRegion, RegionBuf, SpinWait, CONSUMER_BLOCK_OFFSET, CONSUMER_BLOCK_SIZE,
    DATA_OFFSET,
};
use std::time::Duration;

const CAPS: [u32; 4] = [64, 128, 256, 1024];
const BIG: usize = DATA_OFFSET + 1024;
const ZERO: Duration = Duration::ZERO;

type Tx<'a> = Producer<'a, SpinWait>;
type Rx<'a> = Consumer<'a, SpinWait>;

/// The fuzz input, read front to back; zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn op(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u8(&mut self) -> u8 {
        self.op().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// Heap memory reached only through raw pointers, so that the target can
/// write into it while handles borrow it.
struct Mem {
    main: *mut RegionBuf<BIG>,
    cons: *mut RegionBuf<CONSUMER_BLOCK_SIZE>,
    split: bool,
}

impl Mem {
    fn new(split: bool) -> Self {
        Mem {
            main: Box::into_raw(Box::default()),
            cons: Box::into_raw(Box::default()),
            split,
        }
    }

    fn raw(&self) -> RawRegion {
        let r = RawRegion::new(self.main.cast(), BIG);
        if self.split {
            r.with_consumer_block(self.cons.cast(), CONSUMER_BLOCK_SIZE)
        } else {
            r
        }
    }

    fn poke(&self, off: usize, v: u32) {
        assert!(off % 4 == 0 && off + 4 <= BIG);
        // SAFETY: in bounds and 4-aligned (the region is 128-aligned); live
        // until `Drop`; single-threaded, so no handle call runs meanwhile.
        unsafe {
            self.main
                .cast::<u8>()
                .add(off)
                .cast::<u32>()
                .write_volatile(v)
        }
    }

    fn poke_u8(&self, off: usize, v: u8) {
        assert!(off < BIG);
        // SAFETY: as in `poke`.
        unsafe { self.main.cast::<u8>().add(off).write_volatile(v) }
    }

    fn poke_cons(&self, off: usize, v: u32) {
        if self.split {
            assert!(off % 4 == 0 && off + 4 <= CONSUMER_BLOCK_SIZE);
            // SAFETY: as in `poke`, for the separate consumer block.
            unsafe {
                self.cons
                    .cast::<u8>()
                    .add(off)
                    .cast::<u32>()
                    .write_volatile(v)
            }
        } else {
            self.poke(CONSUMER_BLOCK_OFFSET + off, v)
        }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: from `Box::into_raw` in `new`; the handles were dropped first.
        unsafe {
            drop(Box::from_raw(self.main));
            drop(Box::from_raw(self.cons));
        }
    }
}

struct Check {
    cap: u32,
    max: usize,
    data_lo: usize,
    tx_poison: Option<Corruption>,
    rx_poison: Option<Corruption>,
}

impl Check {
    fn in_data(&self, addr: usize, len: usize) {
        let p = addr;
        assert_eq!(p % 8, 0, "not 8-byte aligned");
        assert!(p >= self.data_lo, "before the data area");
        assert!(
            p + len <= self.data_lo + self.cap as usize,
            "past the data area"
        );
    }

    fn payload(&self, addr: usize, len: usize) {
        assert!(self.rx_poison.is_none(), "poisoned consumer delivered");
        assert!(len <= self.max, "payload longer than max_payload");
        self.in_data(addr, len);
    }

    fn tx_ok(&self, len: usize) {
        assert!(self.tx_poison.is_none(), "poisoned producer succeeded");
        assert!(len <= self.max, "reservation over max_payload succeeded");
    }

    fn tx_err(&mut self, e: Error, len: usize, blocking: bool) {
        if let Some(c) = self.tx_poison {
            assert_eq!(e, Error::Corrupt(c), "producer: poison must stick");
        } else if len > self.max {
            assert_eq!(
                e,
                Error::TooLarge {
                    len,
                    max: self.max as u32
                }
            );
        } else {
            match e {
                Error::Full if !blocking => {}
                Error::Timeout if blocking => {}
                Error::Closed => {}
                Error::Corrupt(c @ Corruption::BadReleasedPosition) => self.tx_poison = Some(c),
                e => panic!("producer returned {e:?}"),
            }
        }
    }

    fn rx_err(&mut self, e: Error, blocking: bool) {
        if let Some(c) = self.rx_poison {
            assert_eq!(e, Error::Corrupt(c), "consumer: poison must stick");
            return;
        }
        match e {
            Error::Empty if !blocking => {}
            Error::Timeout if blocking => {}
            Error::Closed => {}
            Error::Corrupt(Corruption::BadReleasedPosition) => {
                panic!("consumer reported a producer-side corruption")
            }
            Error::Corrupt(c) => self.rx_poison = Some(c),
            e => panic!("consumer returned {e:?}"),
        }
    }
}

fn pick_len(inp: &mut Input<'_>, max: usize) -> usize {
    let v = inp.u16() as usize;
    match v % 8 {
        0 => 0,
        1 => max,
        2 => max + 1 + (v >> 3) % 8,
        3 => usize::MAX,
        _ => (v >> 3) % (max + 1),
    }
}

/// A commit word for the record slot at `off`, steered by the input.
fn forged_word(inp: &mut Input<'_>, cap: u32, max: u32, off: u32) -> u32 {
    let kind = inp.u8();
    let arg = inp.u32();
    let len = |l: u32| COMMITTED | (l << LEN_SHIFT);
    match kind % 11 {
        0 => arg,
        1 => len(arg % (max + 1)),
        2 => len(max + 1 + arg % 64),
        3 => len((cap - off).min(max)),
        4 => (arg % (max + 1)) << LEN_SHIFT,
        5 => COMMITTED | PADDING | ((cap - off - 8) << LEN_SHIFT),
        6 => COMMITTED | PADDING | (arg << LEN_SHIFT),
        7 => 0,
        8 => len(arg >> LEN_SHIFT),
        // Line padding to the end of this slot's cache line (invalid at a
        // line start), or a few slots off.
        9 => {
            COMMITTED
                | PADDING
                | ((56u32.wrapping_sub(off % 64))
                    .wrapping_add(8 * (arg % 3))
                    .wrapping_sub(8)
                    << LEN_SHIFT)
        }
        _ => u32::MAX,
    }
}

fn run(data: &[u8]) {
    let mut inp = Input(data);
    let conf = inp.u8();
    let cap = CAPS[(conf & 3) as usize];
    let split = conf & 4 != 0;
    let pure_spin = conf & 8 != 0;
    let max = max_payload(cap) as usize;
    let mem = Mem::new(split);
    let raw = mem.raw();
    let mut ck = Check {
        cap,
        max,
        data_lo: mem.main as usize + DATA_OFFSET,
        tx_poison: None,
        rx_poison: None,
    };
    // SAFETY: valid, aligned memory of the right sizes, nothing attached.
    unsafe { init(raw, Config::new(cap).pure_spin(pure_spin)).unwrap() };
    {
        // SAFETY: initialized above; the handles are dropped before `mem`
        // (this block); the target's own writes happen between calls.
        let mut tx: Option<Tx<'_>> =
            Some(unsafe { attach_producer(raw, SpinWait::std()).unwrap() });
        // SAFETY: as above.
        let mut rx: Option<Rx<'_>> =
            Some(unsafe { attach_consumer(raw, SpinWait::std()).unwrap() });
        for h in tx.iter_mut() {
            h.set_spin_budget(2);
        }
        for h in rx.iter_mut() {
            h.set_spin_budget(2);
        }
        while let Some(op) = inp.op() {
            match op % 16 {
                // Writes anywhere in the region.
                0 => {
                    let off = inp.u16() as usize % (BIG / 4) * 4;
                    mem.poke(off, inp.u32());
                }
                1 => {
                    let off = inp.u16() as usize % BIG;
                    mem.poke_u8(off, inp.u8());
                }
                2 => {
                    let off = inp.u8() as usize % (CONSUMER_BLOCK_SIZE / 4) * 4;
                    mem.poke_cons(off, inp.u32());
                }
                3 => {
                    let off = inp.u8() as u32 % (cap / 8) * 8;
                    let w = forged_word(&mut inp, cap, max as u32, off);
                    mem.poke(DATA_OFFSET + off as usize, w);
                }
                // Producer calls.
                4 => {
                    let Some(tx) = tx.as_mut() else { continue };
                    let len = pick_len(&mut inp, max);
                    let mode = inp.u8();
                    let blocking = mode & 1 != 0;
                    let r = if blocking {
                        tx.reserve_timeout(len, ZERO)
                    } else {
                        tx.try_reserve(len)
                    };
                    match r {
                        Ok(mut g) => {
                            ck.tx_ok(len);
                            assert_eq!(g.len(), len);
                            ck.in_data(g.as_ptr() as usize, len);
                            g.fill(mode);
                            let used = inp.u16() as usize % (len + 1);
                            match (mode >> 1) % 3 {
                                0 => g.commit(used, mode as u32),
                                1 => g.commit_staged(used, mode as u32),
                                _ => drop(g),
                            }
                        }
                        Err(e) => ck.tx_err(e, len, blocking),
                    }
                }
                5 => {
                    let Some(tx) = tx.as_mut() else { continue };
                    let len = pick_len(&mut inp, max).min(max + 8);
                    let mode = inp.u8();
                    let payload = vec![mode; len];
                    let (r, blocking) = match mode % 3 {
                        0 => (tx.try_send(&payload, 1), false),
                        1 => (tx.send_staged(&payload, 2), false),
                        _ => (tx.send_timeout(&payload, 3, ZERO), true),
                    };
                    match r {
                        Ok(()) => ck.tx_ok(len),
                        Err(e) => ck.tx_err(e, len, blocking),
                    }
                }
                6 => {
                    if let Some(tx) = tx.as_mut() {
                        tx.publish();
                    }
                }
                // Consumer calls.
                7 => {
                    let Some(rx) = rx.as_mut() else { continue };
                    let release = inp.u8() & 1 != 0;
                    match rx.try_recv() {
                        Ok(m) => {
                            ck.payload(m.as_ptr() as usize, m.len());
                            if release {
                                m.release();
                            }
                        }
                        Err(e) => ck.rx_err(e, false),
                    }
                }
                8 => {
                    let Some(rx) = rx.as_mut() else { continue };
                    match rx.peek() {
                        Ok(p) => ck.payload(p.payload().as_ptr() as usize, p.payload().len()),
                        Err(e) => ck.rx_err(e, false),
                    }
                }
                9 => {
                    let Some(rx) = rx.as_mut() else { continue };
                    // Not 0: `recv_batch(0, ..)` returns `Empty` without
                    // checking the poison (a known ring-core issue).
                    let k = 1 + inp.u8() as usize % 40;
                    let mut seen = Vec::new();
                    match rx.recv_batch(k, |_, p| seen.push((p.as_ptr() as usize, p.len()))) {
                        Ok(n) => {
                            assert!(n >= 1 && n <= k && n == seen.len(), "recv_batch count");
                            for (p, l) in seen {
                                ck.payload(p, l);
                            }
                        }
                        Err(e) => {
                            assert!(seen.is_empty(), "recv_batch failed after delivering");
                            ck.rx_err(e, false);
                        }
                    }
                }
                10 => {
                    let Some(rx) = rx.as_mut() else { continue };
                    match rx.recv_timeout(ZERO) {
                        Ok(m) => ck.payload(m.as_ptr() as usize, m.len()),
                        Err(e) => ck.rx_err(e, true),
                    }
                }
                11 => {
                    let v = inp.u32();
                    if let Some(rx) = rx.as_mut() {
                        rx.set_release_threshold(v);
                    }
                }
                // Handle drops, in either order.
                12 => tx = None,
                13 => rx = None,
                // Honest bursts, to get around the ring quickly.
                14 => {
                    let n = inp.u8() % 32;
                    let len = inp.u8() as usize % (max + 1);
                    for _ in 0..n {
                        if let Some(tx) = tx.as_mut() {
                            match tx.try_send(&vec![7; len], 4) {
                                Ok(()) => ck.tx_ok(len),
                                Err(e) => ck.tx_err(e, len, false),
                            }
                        }
                        if let Some(rx) = rx.as_mut() {
                            match rx.try_recv() {
                                Ok(m) => ck.payload(m.as_ptr() as usize, m.len()),
                                Err(e) => ck.rx_err(e, false),
                            }
                        }
                    }
                }
                _ => {
                    if let Some(tx) = tx.as_ref() {
                        let _ = (tx.stats(), tx.is_consumer_closed());
                    }
                    if let Some(rx) = rx.as_ref() {
                        let _ = (rx.stats(), rx.is_producer_closed());
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
