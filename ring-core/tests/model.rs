//! Model-based tests: random single-threaded sequences of producer and
//! consumer operations, checked against a `VecDeque` of the messages in
//! flight.
//!
//! The model knows every message's type id and bytes and whether it is
//! published or still staged, so it checks exactly: each `recv`, `peek` and
//! `recv_batch` returns the model's front message(s); `Empty` comes only when
//! nothing is published; `TooLarge` exactly when `len > max_payload`.
//!
//! Fullness cannot be predicted exactly (the consumer publishes its released
//! position lazily), but it can be bounded from the documented placement rule
//! `(head - released) + padding + record + line padding + 8 <= capacity`
//! (line padding: to the end of its cache line, after a record smaller
//! than a line when the rest of the line is shorter than the record, in
//! rings of two lines or more; publishing commits write it): the model tracks
//! the producer's head position, the consumer's position, and a lower bound of
//! the released position the consumer has certainly published (when it found
//! the ring empty, at the end of a `recv_batch`, or after each message with a
//! release threshold of one byte). A reservation that fits under that bound
//! must succeed; one that does not fit even if everything consumed were
//! released must be refused.
//!
//! Early wrap (`set_early_wrap`) places a record at offset 0 when the
//! producer's copy of the released position allows it, which the model only
//! bounds. So where the model's bounds allow both placements, it learns which
//! one the producer took from the grant's address (a send whose placement
//! is ambiguous is made through `reserve` and `commit` or `commit_staged`
//! instead, which place it by the same rule),
//! and checks that an early placement was allowed: the record would start at
//! or past the wrap point, at most half of the bytes before it can be
//! unreleased, and the record with the end pad fits.
//!
//! Either side may "die" (its handle is forgotten, as when its process is
//! killed: no drop, nothing published or released on the way out) and a
//! successor take its role over. A producer's successor goes on after the
//! last published message (staged ones are lost, nothing else); a
//! consumer's successor receives again exactly the messages the dead one
//! consumed but had not released (as many as the released-message counter
//! says), then the rest.

use memtube_ring::{
    attach_consumer_as, attach_producer_as, init, max_payload, region_size, split,
    take_over_consumer, take_over_producer, Config, Error, Grant, Holder, RawRegion, RegionBuf,
    SpinWait, CONSUMER_BLOCK_SIZE, DATA_OFFSET,
};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::time::Duration;

/// The largest capacity exercised; every ring is laid over a buffer this big.
const BIG_CAP: u32 = 4096;
const BIG: usize = match region_size(BIG_CAP) {
    Some(n) => n,
    None => panic!("invalid capacity"),
};

mod common;
use common::{Rx, Tx};

/// Bytes a record with `len` payload bytes occupies (documented layout).
fn record_size(len: usize) -> u32 {
    8 + ((len as u32 + 7) & !7)
}

/// Deterministic payload bytes.
fn payload(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)) ^ (i >> 8) as u8)
        .collect()
}

/// A payload length, resolved against the ring's maximum payload at run time.
#[derive(Clone, Copy, Debug)]
enum Len {
    Zero,
    Max,
    /// `max + 1 + k`; `Over(255)` is `usize::MAX` where no slice is needed.
    Over(u8),
    /// `n % (max + 1)`.
    Small(u8),
    /// `f / 65536` of the way from 0 to `max`.
    Any(u16),
}

impl Len {
    fn resolve(self, max: usize, slice_needed: bool) -> usize {
        match self {
            Len::Zero => 0,
            Len::Max => max,
            Len::Over(255) if !slice_needed => usize::MAX,
            Len::Over(k) => max + 1 + k as usize,
            Len::Small(n) => n as usize % (max + 1),
            Len::Any(f) => f as usize * (max + 1) / 65536,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Threshold {
    One,
    Quarter,
    Capacity,
    Raw(u32),
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        len: Len,
        ty: u32,
        seed: u8,
    },
    SendStaged {
        len: Len,
        ty: u32,
        seed: u8,
    },
    /// `send_timeout` with a zero timeout.
    SendBlocking {
        len: Len,
        ty: u32,
        seed: u8,
    },
    Publish,
    /// Reserve `len`, commit the first `used / 65536` of it.
    ReserveCommit {
        len: Len,
        used: u16,
        ty: u32,
        seed: u8,
        staged: bool,
        blocking: bool,
    },
    /// Reserve, optionally fill with bytes that look like committed headers, drop.
    ReserveDrop {
        len: Len,
        scribble: bool,
        blocking: bool,
    },
    Recv {
        explicit_release: bool,
    },
    /// `recv_timeout` with a zero timeout.
    RecvBlocking,
    Peek,
    RecvBatch(u8),
    SetThreshold(Threshold),
    SetLinePadding(bool),
    /// `set_early_wrap`: `None` off, else the wrap point (any value; the
    /// producer takes at least 64).
    SetEarlyWrap(Option<u32>),
    /// Publish, drain, then check that a `max_payload` message fits.
    DrainThenMax {
        commit: bool,
        ty: u32,
        seed: u8,
    },
    /// The producer dies (its handle is forgotten) and a successor takes over.
    CrashProducer,
    /// The consumer dies and a successor takes over.
    CrashConsumer,
}

fn len_strategy() -> impl Strategy<Value = Len> {
    prop_oneof![
        2 => Just(Len::Zero),
        3 => Just(Len::Max),
        1 => any::<u8>().prop_map(Len::Over),
        6 => any::<u8>().prop_map(Len::Small),
        4 => any::<u16>().prop_map(Len::Any),
    ]
}

fn threshold_strategy() -> impl Strategy<Value = Threshold> {
    prop_oneof![
        Just(Threshold::One),
        Just(Threshold::Quarter),
        Just(Threshold::Capacity),
        any::<u32>().prop_map(Threshold::Raw),
        (0u32..300).prop_map(Threshold::Raw),
    ]
}

/// Early wrap off, or from a point below `max` (64 or more takes effect).
fn early_wrap_strategy(max: u32) -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), Just(Some(64)), (0..max).prop_map(Some)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (len_strategy(), any::<u32>(), any::<u8>()).prop_map(|(len, ty, seed)| Op::Send { len, ty, seed }),
        5 => (len_strategy(), any::<u32>(), any::<u8>()).prop_map(|(len, ty, seed)| Op::SendStaged { len, ty, seed }),
        2 => (len_strategy(), any::<u32>(), any::<u8>()).prop_map(|(len, ty, seed)| Op::SendBlocking { len, ty, seed }),
        3 => Just(Op::Publish),
        5 => (len_strategy(), any::<u16>(), any::<u32>(), any::<u8>(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(len, used, ty, seed, staged, blocking)| Op::ReserveCommit { len, used, ty, seed, staged, blocking }),
        2 => (len_strategy(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(len, scribble, blocking)| Op::ReserveDrop { len, scribble, blocking }),
        8 => any::<bool>().prop_map(|explicit_release| Op::Recv { explicit_release }),
        2 => Just(Op::RecvBlocking),
        3 => Just(Op::Peek),
        4 => (0u8..10).prop_map(Op::RecvBatch),
        1 => threshold_strategy().prop_map(Op::SetThreshold),
        1 => any::<bool>().prop_map(Op::SetLinePadding),
        1 => early_wrap_strategy(2048).prop_map(Op::SetEarlyWrap),
        1 => (any::<bool>(), any::<u32>(), any::<u8>()).prop_map(|(commit, ty, seed)| Op::DrainThenMax { commit, ty, seed }),
        1 => Just(Op::CrashProducer),
        1 => Just(Op::CrashConsumer),
    ]
}

#[derive(Debug)]
struct Msg {
    ty: u32,
    data: Vec<u8>,
    /// Ring bytes the message occupies, padding before it included.
    span: u32,
    /// Line padding after it (which the consumer skips at its next look).
    line_pad: u32,
    /// Offset of its record in the data area.
    off: u32,
}

/// The model: the messages in flight and the positions that bound fullness.
struct Model {
    cap: u32,
    max: usize,
    /// Data area bounds, to check that payloads lie inside the region.
    data_lo: usize,
    q: VecDeque<Msg>,
    /// The last `staged` messages of `q` are committed but not published.
    staged: usize,
    /// Producer position (bytes since the start, never wrapped here: the
    /// tests stay far below 2^32 bytes), staged records included.
    head: u64,
    /// Consumer position after the last consumed message (its line
    /// padding excluded).
    tail: u64,
    /// The line padding after the last consumed message: the consumer's
    /// position is `tail` or, once it looked further, `tail + pending_pad`.
    pending_pad: u64,
    /// A released position the consumer has certainly published
    /// (`released_lb <= released <= tail + pending_pad`).
    released_lb: u64,
    threshold: u32,
    /// Line padding is on (`run_case` turns it on in the split layout).
    padding: bool,
    /// Early wrap point (`u32::MAX`: off).
    wrap_from: u32,
    committed: u64,
    committed_bytes: u64,
    received: u64,
    received_bytes: u64,
    /// The last messages consumed, each with the consumer's `(tail,
    /// pending_pad)` before it: what a consumer's successor may receive
    /// again. At most a lap of them (each record is 8 bytes or more).
    consumed: VecDeque<(Msg, u64, u64)>,
}

impl Model {
    fn new(cap: u32, data_lo: usize, padding: bool) -> Self {
        Model {
            cap,
            max: max_payload(cap) as usize,
            data_lo,
            q: VecDeque::new(),
            staged: 0,
            head: 0,
            tail: 0,
            pending_pad: 0,
            released_lb: 0,
            threshold: cap / 4,
            padding,
            wrap_from: u32::MAX,
            committed: 0,
            committed_bytes: 0,
            received: 0,
            received_bytes: 0,
            consumed: VecDeque::new(),
        }
    }

    fn published(&self) -> usize {
        self.q.len() - self.staged
    }

    /// Records smaller than this get line padding after a publishing
    /// commit (documented: a cache line when it is on).
    fn pad_below(&self) -> u32 {
        if self.padding {
            64
        } else {
            0
        }
    }

    /// Padding and free bytes needed to place a `len`-byte reservation at
    /// `head`, line padding after it included.
    /// `padded`: the call may publish (all but `send_staged`), so the plan
    /// counts line padding.
    fn plan(&self, len: usize, padded: bool) -> (u32, u32) {
        self.plan_at(len, padded, false)
    }

    /// As `plan`, or (`early`) the early-wrap placement: an end pad from
    /// the head to the end of the data area, the record at 0.
    fn plan_at(&self, len: usize, padded: bool, early: bool) -> (u32, u32) {
        let rec = record_size(len);
        let off = (self.head % self.cap as u64) as u32;
        let room = self.cap - off;
        let (off, pad) = if rec <= room && !early {
            (off, 0)
        } else {
            (0, room)
        };
        let slack = if padded {
            self.line_pad((off + rec) as u64, rec)
        } else {
            0
        };
        (pad, pad + rec + slack + 8)
    }

    /// Whether the producer may place a `len`-byte reservation at offset 0
    /// early (documented rule), as far as the model knows: the record fits
    /// at the head (else it wraps anyway), the head's offset is at least
    /// the wrap point, and with the released position at its highest
    /// possible value at most half of the bytes before the head are
    /// unreleased and the early plan fits.
    fn may_wrap_early(&self, len: usize, padded: bool) -> bool {
        let rec = record_size(len);
        let off = (self.head % self.cap as u64) as u32;
        if off < self.wrap_from.max(64) || rec > self.cap - off {
            return false;
        }
        let (_, need) = self.plan_at(len, padded, true);
        let used_min = self.head - self.tail - self.pending_pad;
        used_min <= (off / 2) as u64 && used_min + need as u64 <= self.cap as u64
    }

    /// The line padding a publishing commit puts after a `rec`-byte record
    /// that ends at `after`: to the end of the line when the rest of it is
    /// shorter than the record (and the record is small).
    fn line_pad(&self, after: u64, rec: u32) -> u32 {
        let room = 64 - (after % 64) as u32;
        if rec < self.pad_below() && room < rec {
            room
        } else {
            0
        }
    }

    /// Check a reservation's outcome (`ok`: granted; otherwise Full or
    /// Timeout) against the placement rule, before the model changes.
    fn check_room(&mut self, len: usize, ok: bool, padded: bool) {
        self.check_room_at(len, ok, padded, false)
    }

    /// As `check_room`, for the placement taken (`early`: at offset 0 by
    /// early wrap, which only a granted reservation takes).
    fn check_room_at(&mut self, len: usize, ok: bool, padded: bool, early: bool) {
        assert!(ok || !early);
        let (_, need) = self.plan_at(len, padded, early);
        let need = need as u64;
        let cap = self.cap as u64;
        assert!(self.released_lb <= self.tail + self.pending_pad);
        assert!(self.tail + self.pending_pad <= self.head);
        let used_max = self.head - self.released_lb;
        let used_min = self.head - self.tail - self.pending_pad;
        if used_max + need <= cap {
            assert!(
                ok,
                "refused a {len}-byte reservation that fits: in flight at most {used_max} of {cap} bytes, need {need}"
            );
        }
        if used_min + need > cap {
            assert!(
                !ok,
                "granted a {len}-byte reservation that cannot fit: in flight at least {used_min} of {cap} bytes, need {need}"
            );
        }
        if ok {
            // The producer saw a released position that made room.
            self.released_lb = self.released_lb.max((self.head + need).saturating_sub(cap));
        } else {
            // A reservation that finds the ring full publishes staged messages.
            self.staged = 0;
        }
    }

    /// Record a commit of `data` into a reservation of `reserved` bytes.
    fn commit(&mut self, reserved: usize, data: Vec<u8>, ty: u32, staged: bool, padded: bool) {
        self.commit_at(reserved, data, ty, staged, padded, false)
    }

    fn commit_at(
        &mut self,
        reserved: usize,
        data: Vec<u8>,
        ty: u32,
        staged: bool,
        padded: bool,
        early: bool,
    ) {
        let (pad, need) = self.plan_at(reserved, padded, early);
        let rec = record_size(data.len());
        let span = pad + rec;
        // Line padding follows publishing commits of the whole reservation
        // (the same record size), as planned.
        let whole = rec == record_size(reserved);
        let line_pad = if !staged && whole { need - span - 8 } else { 0 };
        let off = ((self.head + pad as u64) % self.cap as u64) as u32;
        self.head += (span + line_pad) as u64;
        self.committed += 1;
        self.committed_bytes += data.len() as u64;
        self.q.push_back(Msg {
            ty,
            data,
            span,
            line_pad,
            off,
        });
        if staged {
            self.staged += 1;
        } else {
            self.staged = 0;
        }
    }

    fn publish(&mut self) {
        self.staged = 0;
    }

    fn front(&self) -> &Msg {
        assert!(self.published() > 0);
        &self.q[0]
    }

    /// The front message was consumed (and its space released).
    fn pop(&mut self) {
        assert!(self.published() > 0);
        let m = self.q.pop_front().unwrap();
        let before = (self.tail, self.pending_pad);
        // Reaching this message, the consumer skipped the padding before it.
        self.tail += self.pending_pad + m.span as u64;
        self.pending_pad = m.line_pad as u64;
        self.received += 1;
        self.received_bytes += m.data.len() as u64;
        if self.threshold == 1 {
            // Any consumed record is at least one byte of ring space.
            self.released_lb = self.released_lb.max(self.tail);
        }
        if self.consumed.len() > (self.cap / 8) as usize {
            self.consumed.pop_front();
        }
        self.consumed.push_back((m, before.0, before.1));
    }

    /// The producer died: what it had staged is lost.
    fn producer_died(&mut self) {
        for _ in 0..self.staged {
            let m = self.q.pop_back().unwrap();
            assert_eq!(m.line_pad, 0, "staged commits never pad");
            self.head -= m.span as u64;
            self.committed -= 1;
            self.committed_bytes -= m.data.len() as u64;
        }
        self.staged = 0;
    }

    /// The consumer died having released `released` messages: the ones it
    /// consumed after those come back, in order, to be received again.
    fn consumer_died(&mut self, released: u64) {
        let n = self
            .received
            .checked_sub(released)
            .expect("released more than received");
        assert!(
            n as usize <= self.consumed.len(),
            "{n} unreleased messages, more than a lap"
        );
        for _ in 0..n {
            let (m, tail, pad) = self.consumed.pop_back().unwrap();
            self.received -= 1;
            self.received_bytes -= m.data.len() as u64;
            (self.tail, self.pending_pad) = (tail, pad);
            self.q.push_front(m);
        }
        assert!(self.released_lb <= self.tail + self.pending_pad);
    }

    /// The consumer found nothing published: it publishes its release.
    fn found_empty(&mut self) {
        assert_eq!(self.published(), 0);
        // Its look skipped the published line padding.
        self.tail += self.pending_pad;
        self.pending_pad = 0;
        self.released_lb = self.tail;
    }

    fn check_ptr(&self, addr: usize, len: usize) {
        let p = addr;
        assert_eq!(p % 8, 0, "payload not 8-byte aligned");
        assert!(
            p >= self.data_lo && p + len <= self.data_lo + self.cap as usize,
            "payload outside the data area"
        );
    }

    /// A grant of `len` bytes: where the placement rule puts it. Returns
    /// whether it was placed early (at offset 0 by early wrap, which the
    /// rule allowed).
    fn check_grant(&self, g: &Grant<'_, '_, SpinWait>, len: usize) -> bool {
        assert_eq!(g.len(), len);
        self.check_ptr(g.as_ptr() as usize, len);
        let (pad, _) = self.plan(len, true);
        let off = (self.head + pad as u64) % self.cap as u64;
        let at = g.as_ptr() as usize;
        if at == self.data_lo + off as usize + 8 {
            return false;
        }
        assert!(
            at == self.data_lo + 8 && self.may_wrap_early(len, true),
            "grant not where the placement rule puts it (head {}, wrap point {})",
            self.head,
            self.wrap_from
        );
        true
    }

    /// The front message's payload at `addr`: where it was committed.
    fn check_at(&self, addr: usize, len: usize) {
        self.check_ptr(addr, len);
        assert_eq!(
            addr,
            self.data_lo + self.front().off as usize + 8,
            "message not where its record was placed"
        );
    }

    fn check_front(&self, ty: u32, data: &[u8]) {
        let want = self.front();
        assert_eq!(ty, want.ty, "type id of the front message");
        assert_eq!(data, &want.data[..], "payload of the front message");
    }
}

fn too_large(n: usize, max: usize) -> Result<(), Error> {
    Err(Error::TooLarge {
        len: n,
        max: max as u32,
    })
}

/// Receive one message with `recv` and check it against the model.
fn recv_one(m: &mut Model, rx: &mut Rx<'_>, explicit_release: bool) {
    let r = rx.try_recv();
    if m.published() == 0 {
        assert_eq!(r.err(), Some(Error::Empty), "recv with nothing published");
        m.found_empty();
        return;
    }
    let msg = r.expect("recv with a published message");
    m.check_front(msg.type_id(), msg.payload());
    m.check_at(msg.as_ptr() as usize, msg.len());
    assert_eq!(&msg[..], msg.payload());
    if explicit_release && msg.type_id() % 2 == 1 {
        // The bindings' path: keep it, receive it again (the same bytes in
        // place), then release.
        let at = msg.as_ptr() as usize;
        msg.keep();
        let again = rx.try_recv().expect("a kept message is received again");
        assert_eq!(again.as_ptr() as usize, at);
        m.check_front(again.type_id(), again.payload());
        again.release();
    } else if explicit_release {
        msg.release();
    } else {
        drop(msg);
    }
    m.pop();
}

/// `reserve`, or `reserve_timeout` with a zero timeout.
fn reserve<'t, 'a>(
    tx: &'t mut Tx<'a>,
    n: usize,
    blocking: bool,
) -> Result<Grant<'t, 'a, SpinWait>, Error> {
    if blocking {
        tx.reserve_timeout(n, Duration::ZERO)
    } else {
        tx.try_reserve(n)
    }
}

/// Reserve `n` bytes, fill the first `used` with `data`, commit (or
/// stage); check the grant's placement and the outcome against the model.
fn reserve_commit(
    m: &mut Model,
    tx: &mut Tx<'_>,
    n: usize,
    data: Vec<u8>,
    ty: u32,
    staged: bool,
    blocking: bool,
) {
    let max = m.max;
    match reserve(tx, n, blocking) {
        Err(e) if n > max => assert_eq!(Err(e), too_large(n, max)),
        Ok(mut g) => {
            let early = m.check_grant(&g, n);
            let used = data.len();
            // Bytes past `used` must never be delivered: fill them too.
            g.fill(0xA5);
            g[..used].copy_from_slice(&data);
            if staged {
                g.commit_staged(used, ty);
            } else if ty % 2 == 1 {
                // The bindings' path: the same commit through a detached grant.
                let d = g.detach();
                assert_eq!(d.len(), n);
                // SAFETY: `d` comes from `tx`, which did nothing else since.
                unsafe { tx.commit_detached(d, used, ty) };
            } else {
                g.commit(used, ty);
            }
            m.check_room_at(n, true, true, early);
            m.commit_at(n, data, ty, staged, true, early);
        }
        Err(Error::Full) if !blocking => m.check_room(n, false, true),
        Err(Error::Timeout) if blocking => m.check_room(n, false, true),
        Err(e) => panic!("reserve of {n} bytes: unexpected {e:?}"),
    }
}

fn apply(m: &mut Model, tx: &mut Tx<'_>, rx: &mut Rx<'_>, op: &Op) {
    let max = m.max;
    match *op {
        Op::Send { len, ty, seed }
        | Op::SendStaged { len, ty, seed }
        | Op::SendBlocking { len, ty, seed } => {
            let n = len.resolve(max, true);
            let data = payload(seed, n);
            let staged = matches!(op, Op::SendStaged { .. });
            let blocking = matches!(op, Op::SendBlocking { .. });
            if n <= max && m.may_wrap_early(n, true) {
                // Either placement may be taken: the same placement through
                // a grant, whose address tells which.
                reserve_commit(m, tx, n, data, ty, staged, blocking);
                return;
            }
            let r = match op {
                Op::Send { .. } => tx.try_send(&data, ty),
                Op::SendStaged { .. } => tx.send_staged(&data, ty),
                _ => tx.send_timeout(&data, ty, Duration::ZERO),
            };
            if n > max {
                assert_eq!(r, too_large(n, max));
                return;
            }
            match r {
                Ok(()) => {
                    m.check_room(n, true, !staged);
                    m.commit(n, data, ty, staged, !staged);
                }
                Err(Error::Full) if !blocking => m.check_room(n, false, !staged),
                Err(Error::Timeout) if blocking => m.check_room(n, false, !staged),
                Err(e) => panic!("send of {n} bytes: unexpected {e:?}"),
            }
        }
        Op::Publish => {
            tx.publish();
            m.publish();
        }
        Op::ReserveCommit {
            len,
            used,
            ty,
            seed,
            staged,
            blocking,
        } => {
            let n = len.resolve(max, false);
            let used = if n > max {
                0
            } else {
                used as usize * (n + 1) / 65536
            };
            reserve_commit(m, tx, n, payload(seed, used), ty, staged, blocking);
        }
        Op::ReserveDrop {
            len,
            scribble,
            blocking,
        } => {
            let n = len.resolve(max, false);
            match reserve(tx, n, blocking) {
                Err(e) if n > max => assert_eq!(Err(e), too_large(n, max)),
                Ok(mut g) => {
                    let early = m.check_grant(&g, n);
                    if scribble {
                        // 0x05050505: committed, not padding, a huge length.
                        g.fill(0x05);
                        for w in g.chunks_exact_mut(8) {
                            // A plausible committed header: 8-byte payload.
                            w[..4].copy_from_slice(&(1u32 | (8 << 2)).to_ne_bytes());
                        }
                    }
                    drop(g);
                    m.check_room_at(n, true, true, early);
                }
                Err(Error::Full) if !blocking => m.check_room(n, false, true),
                Err(Error::Timeout) if blocking => m.check_room(n, false, true),
                Err(e) => panic!("reserve of {n} bytes: unexpected {e:?}"),
            }
        }
        Op::Recv { explicit_release } => recv_one(m, rx, explicit_release),
        Op::RecvBlocking => {
            let r = rx.recv_timeout(Duration::ZERO);
            if m.published() == 0 {
                assert_eq!(
                    r.err(),
                    Some(Error::Timeout),
                    "recv_timeout with nothing published"
                );
                m.found_empty();
            } else {
                let msg = r.expect("recv_timeout with a published message");
                m.check_front(msg.type_id(), msg.payload());
                m.check_at(msg.as_ptr() as usize, msg.len());
                drop(msg);
                m.pop();
            }
        }
        Op::Peek => {
            let r = rx.peek();
            if m.published() == 0 {
                assert_eq!(r.err(), Some(Error::Empty), "peek with nothing published");
                m.found_empty();
            } else {
                let p = r.expect("peek with a published message");
                m.check_front(p.type_id(), p.payload());
                m.check_at(p.payload().as_ptr() as usize, p.payload().len());
            }
        }
        Op::RecvBatch(k) => {
            let k = k as usize;
            let mut got: Vec<(u32, Vec<u8>, usize)> = Vec::new();
            let r = rx.recv_batch(k, |ty, p| got.push((ty, p.to_vec(), p.as_ptr() as usize)));
            let expect = k.min(m.published());
            if k == 0 {
                // Delivers nothing and changes nothing. (It returns `Empty`
                // even when messages are waiting.)
                assert!(
                    matches!(r, Ok(0) | Err(Error::Empty)),
                    "recv_batch(0) = {r:?}"
                );
                assert!(got.is_empty());
            } else if expect == 0 {
                assert_eq!(r, Err(Error::Empty), "recv_batch with nothing published");
                assert!(got.is_empty());
                m.found_empty();
            } else {
                assert_eq!(r, Ok(expect));
                assert_eq!(got.len(), expect);
                for (ty, data, ptr) in got {
                    m.check_front(ty, &data);
                    m.check_at(ptr, data.len());
                    m.pop();
                }
                // One publication of the release at the end of the batch.
                m.released_lb = m.released_lb.max(m.tail);
            }
        }
        Op::SetThreshold(t) => {
            let v = match t {
                Threshold::One => 1,
                Threshold::Quarter => m.cap / 4,
                Threshold::Capacity => m.cap,
                Threshold::Raw(v) => v,
            };
            rx.set_release_threshold(v);
            m.threshold = v.clamp(1, m.cap);
        }
        Op::SetLinePadding(on) => {
            tx.set_line_padding(on);
            m.padding = on;
        }
        Op::SetEarlyWrap(v) => {
            tx.set_early_wrap(v.unwrap_or(u32::MAX));
            m.wrap_from = v.map_or(u32::MAX, |b| b.max(64));
        }
        Op::CrashProducer | Op::CrashConsumer => unreachable!("run_case handles deaths"),
        Op::DrainThenMax { commit, ty, seed } => {
            tx.publish();
            m.publish();
            while m.published() > 0 {
                recv_one(m, rx, false);
            }
            // Finding the ring empty publishes the release...
            recv_one(m, rx, false);
            // ... and then an empty ring takes a largest message, wherever the head is.
            let mut g = tx.try_reserve(max).unwrap_or_else(|e| {
                panic!(
                    "empty drained ring (cap {}, head {}) refused max_payload: {e:?}",
                    m.cap, m.head
                )
            });
            let early = m.check_grant(&g, max);
            m.check_room_at(max, true, true, early);
            if commit {
                let data = payload(seed, max);
                g.copy_from_slice(&data);
                g.commit(max, ty);
                m.commit_at(max, data, ty, false, true, early);
            }
        }
    }
}

/// Publish, drain everything, and compare the counters.
fn finish(m: &mut Model, tx: &mut Tx<'_>, rx: &mut Rx<'_>) {
    tx.publish();
    m.publish();
    while m.published() > 0 {
        recv_one(m, rx, false);
    }
    recv_one(m, rx, false);
    assert_eq!(
        rx.recv_batch(5, |_, _| panic!("message after drain")),
        Err(Error::Empty)
    );
    let s = tx.stats();
    assert_eq!(
        (s.messages_committed, s.bytes_committed),
        (m.committed, m.committed_bytes)
    );
    assert_eq!(
        (s.messages_released, s.bytes_released),
        (m.received, m.received_bytes)
    );
    assert_eq!(m.head, m.tail + m.pending_pad);
}

fn run_case(cap: u32, split_layout: bool, pure_spin: bool, ops: &[Op]) {
    let mut buf: Box<RegionBuf<BIG>> = Box::default();
    let mut cons_block: Box<RegionBuf<CONSUMER_BLOCK_SIZE>> = Box::default();
    let data_lo = buf.0.as_ptr() as usize + DATA_OFFSET;
    let config = Config::new(cap).pure_spin(pure_spin);
    let mut raw = RawRegion::new(buf.as_mut_slice().as_mut_ptr(), BIG);
    if split_layout {
        raw = raw.with_consumer_block(cons_block.as_mut_slice().as_mut_ptr(), CONSUMER_BLOCK_SIZE);
    }
    // Holders 1, 2, ... in the order the handles attach.
    let mut holders = 0u64;
    let mut next_holder = || {
        holders += 1;
        Holder::new(holders).unwrap()
    };
    let (mut tx_holder, mut rx_holder) = (next_holder(), next_holder());
    // SAFETY: `buf` and `cons_block` outlive every handle (declared after
    // them, forgotten ones never touch them again) and are used only
    // through the handles.
    let (mut tx, mut rx): (Tx<'_>, Rx<'_>) = unsafe {
        init(raw, config).unwrap();
        (
            attach_producer_as(raw, SpinWait::std(), tx_holder).unwrap(),
            attach_consumer_as(raw, SpinWait::std(), rx_holder).unwrap(),
        )
    };
    tx.set_spin_budget(4);
    rx.set_spin_budget(4);
    // Line padding (off unless set) is modelled in the split layout, where
    // memtube turns it on; `Op`s may switch it later either way.
    if split_layout {
        tx.set_line_padding(true);
    }
    assert_eq!(tx.max_payload(), max_payload(cap));
    assert_eq!(rx.max_payload(), max_payload(cap));
    assert_eq!((tx.capacity(), rx.capacity()), (cap, cap));
    let mut m = Model::new(cap, data_lo, split_layout);
    for op in ops {
        match op {
            Op::CrashProducer => {
                let holder = next_holder();
                let old = tx_holder;
                // SAFETY: as above; the old handle is forgotten before the new
                // one is used, and only `old` is called gone.
                let new = unsafe {
                    assert_eq!(
                        take_over_producer::<SpinWait>(raw, SpinWait::std(), holder, |_| false)
                            .err(),
                        Some(Error::RoleTaken),
                        "a live producer keeps its role"
                    );
                    take_over_producer(raw, SpinWait::std(), holder, |h| h == old)
                        .expect("take over from a dead producer")
                };
                std::mem::forget(std::mem::replace(&mut tx, new));
                tx_holder = holder;
                assert_eq!(rx.producer_holder(), Some(holder));
                m.producer_died();
                // The successor has the defaults; give it the model's settings.
                tx.set_spin_budget(4);
                tx.set_line_padding(m.padding);
                tx.set_early_wrap(m.wrap_from);
            }
            Op::CrashConsumer => {
                let holder = next_holder();
                let old = rx_holder;
                // SAFETY: as for the producer.
                let new = unsafe {
                    take_over_consumer(raw, SpinWait::std(), holder, |h| h == old)
                        .expect("take over from a dead consumer")
                };
                std::mem::forget(std::mem::replace(&mut rx, new));
                rx_holder = holder;
                assert_eq!(tx.consumer_holder(), Some(holder));
                m.consumer_died(rx.stats().messages_released);
                rx.set_spin_budget(4);
                rx.set_release_threshold(m.threshold);
            }
            _ => apply(&mut m, &mut tx, &mut rx, op),
        }
    }
    finish(&mut m, &mut tx, &mut rx);
}

fn cap_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![Just(64u32), Just(128), Just(256), Just(1024), Just(BIG_CAP)]
}

/// 256 cases by default (`PROPTEST_CASES` overrides), a handful under Miri;
/// no regression files.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if cfg!(miri) {
        c.cases = 4;
    }
    c.failure_persistence = None;
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_operations_match_model(
        cap in cap_strategy(),
        split_layout in any::<bool>(),
        pure_spin in any::<bool>(),
        ops in prop::collection::vec(op_strategy(), 1..if cfg!(miri) { 24 } else { 160 }),
    ) {
        run_case(cap, split_layout, pure_spin, &ops);
    }

    /// Long runs of mostly small messages, so that the small rings wrap many
    /// times and padding lands at every offset.
    #[test]
    fn many_laps_match_model(
        cap in prop_oneof![Just(64u32), Just(128), Just(256)],
        ops in prop::collection::vec(
            prop_oneof![
                4 => (any::<u8>(), any::<u8>()).prop_map(|(n, seed)| Op::Send { len: Len::Small(n), ty: n as u32, seed }),
                2 => (any::<u8>(), any::<u8>()).prop_map(|(n, seed)| Op::SendStaged { len: Len::Small(n), ty: 7, seed }),
                1 => Just(Op::Send { len: Len::Max, ty: 1, seed: 3 }),
                1 => Just(Op::Publish),
                5 => any::<bool>().prop_map(|explicit_release| Op::Recv { explicit_release }),
                1 => (1u8..4).prop_map(Op::RecvBatch),
                1 => threshold_strategy().prop_map(Op::SetThreshold),
                1 => any::<bool>().prop_map(Op::SetLinePadding),
                1 => early_wrap_strategy(256).prop_map(Op::SetEarlyWrap),
                1 => Just(Op::CrashProducer),
                1 => Just(Op::CrashConsumer),
            ],
            1..if cfg!(miri) { 40 } else { 600 },
        ),
    ) {
        run_case(cap, false, false, &ops);
    }
}

/// After draining, a `max_payload` message fits whatever the write position:
/// step the head through every 8-byte offset of the data area with
/// zero-length messages (8 bytes each).
#[test]
fn max_payload_fits_at_every_offset() {
    let caps: &[u32] = if cfg!(miri) {
        &[64, 128]
    } else {
        &[64, 128, 256, 1024]
    };
    for &cap in caps {
        let mut buf: Box<RegionBuf<BIG>> = Box::default();
        let (mut tx, mut rx) =
            split(buf.as_mut_slice(), Config::new(cap), SpinWait::std()).unwrap();
        let max = max_payload(cap) as usize;
        let big = payload(9, max);
        for step in 0..cap / 8 + 2 {
            for _ in 0..step % 3 {
                tx.try_send(&[], step).unwrap();
                assert_eq!(rx.try_recv().unwrap().type_id(), step);
            }
            assert_eq!(rx.try_recv().err(), Some(Error::Empty));
            tx.try_send(&big, step)
                .unwrap_or_else(|e| panic!("cap {cap}, step {step}: {e:?}"));
            let msg = rx.try_recv().unwrap();
            assert_eq!((msg.type_id(), msg.payload()), (step, &big[..]));
            drop(msg);
            tx.try_send(&[], 0).unwrap();
            assert!(rx.try_recv().unwrap().is_empty());
        }
    }
}

/// The smallest ring holds one largest message at a time, and a second is
/// refused until the first is received.
#[test]
fn one_max_message_at_a_time_in_small_rings() {
    for cap in [64u32, 128] {
        let mut buf: Box<RegionBuf<BIG>> = Box::default();
        let (mut tx, mut rx) =
            split(buf.as_mut_slice(), Config::new(cap), SpinWait::std()).unwrap();
        let max = max_payload(cap) as usize;
        for i in 0..if cfg!(miri) { 24 } else { 3 * cap } {
            let data = payload(i as u8, max);
            tx.try_send(&data, i).unwrap();
            assert_eq!(tx.try_send(&data, i), Err(Error::Full));
            assert_eq!(tx.try_send(&data[..max - 7], i), Err(Error::Full));
            let m = rx.try_recv().unwrap();
            assert_eq!((m.type_id(), m.payload()), (i, &data[..]));
            drop(m);
            // Move the head by a varying amount so the next largest record
            // sometimes needs padding.
            for _ in 0..i % 4 {
                tx.try_send(&[], i).unwrap();
                assert!(rx.try_recv().unwrap().is_empty());
            }
            // Finding the ring empty publishes the release.
            assert_eq!(rx.try_recv().err(), Some(Error::Empty));
        }
    }
}

/// Bytes written into a reservation that is dropped without commit are never
/// read as a record header, even when they look like committed headers and
/// the next records land on top of them.
#[test]
fn dropped_grant_bytes_are_never_delivered() {
    for cap in [64u32, 256, 1024] {
        let mut buf: Box<RegionBuf<BIG>> = Box::default();
        let (mut tx, mut rx) =
            split(buf.as_mut_slice(), Config::new(cap), SpinWait::std()).unwrap();
        // Small enough to fit after "a" wherever the head is.
        let len = (cap as usize / 4).min(max_payload(cap) as usize);
        for round in 0..3 * cap {
            // A published message first, so that anything the producer does
            // after a publication has happened.
            tx.try_send(b"a", 1).unwrap();
            let mut g = tx.try_reserve(len).unwrap();
            for w in g.chunks_exact_mut(8) {
                // A committed 3-byte record of type 666.
                w[..4].copy_from_slice(&(1u32 | (3 << 2)).to_ne_bytes());
                w[4..].copy_from_slice(&666u32.to_ne_bytes());
            }
            drop(g);
            tx.try_send(b"b", 2).unwrap();
            let m = rx.try_recv().unwrap();
            assert_eq!(
                (m.type_id(), m.payload()),
                (1, &b"a"[..]),
                "cap {cap}, round {round}"
            );
            drop(m);
            let m = rx.try_recv().unwrap();
            assert_eq!(
                (m.type_id(), m.payload()),
                (2, &b"b"[..]),
                "cap {cap}, round {round}"
            );
            drop(m);
            assert_eq!(
                rx.try_recv().map(|m| (m.type_id(), m.to_vec())),
                Err(Error::Empty),
                "cap {cap}, round {round}: a message nobody committed"
            );
        }
    }
}

/// The reserved bytes past `used` are the writer's scratch space: committing
/// fewer bytes than were written never makes the rest read as a header.
#[test]
fn unused_tail_of_a_partial_commit_is_never_read() {
    for cap in [64u32, 256, 1024] {
        let mut buf: Box<RegionBuf<BIG>> = Box::default();
        let (mut tx, mut rx) =
            split(buf.as_mut_slice(), Config::new(cap), SpinWait::std()).unwrap();
        let len = (cap as usize / 4).min(max_payload(cap) as usize);
        for round in 0..3 * cap {
            tx.try_send(b"a", 1).unwrap();
            let mut g = tx.try_reserve(len).unwrap();
            // 0x05050505: committed bit set, an impossible length.
            g.fill(0x05);
            let used = round as usize % 9;
            g.commit(used, 2);
            assert_eq!(
                rx.try_recv().unwrap().payload(),
                b"a",
                "cap {cap}, round {round}"
            );
            let m = rx
                .try_recv()
                .unwrap_or_else(|e| panic!("cap {cap}, round {round}: {e:?}"));
            assert_eq!((m.type_id(), m.payload()), (2, &[5u8; 8][..used]));
            drop(m);
            assert_eq!(
                rx.try_recv().map(|m| (m.type_id(), m.to_vec())),
                Err(Error::Empty),
                "cap {cap}, round {round}: the unused tail read as a header"
            );
        }
    }
}
