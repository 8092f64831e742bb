//! A fixed amount of ring traffic for instruction counts (`valgrind
//! --tool=callgrind`) and disassembly of the hot paths, not for timing.
//!
//! `hotloop [N]`: one thread drives the producer and the consumer in turn
//! (copying sends, grants, a staged batch, blocking calls that find room),
//! so the count does not depend on scheduling. `hotloop threads [N]`: two
//! threads over `split` (blocking send and receive; its count varies with
//! the scheduling).

use memtube_ring::{region_size, split, Config, Consumer, Producer, RegionBuf, SpinWait};
use std::hint::black_box;

const CAP: u32 = 1 << 16;

#[inline(never)]
fn send_one(tx: &mut Producer<'_, SpinWait>, payload: &[u8], type_id: u32) {
    tx.try_send(payload, type_id).expect("room");
}

#[inline(never)]
fn reserve_one(tx: &mut Producer<'_, SpinWait>, len: usize, type_id: u32) {
    let mut g = tx.try_reserve(len).expect("room");
    g[..8].copy_from_slice(&(type_id as u64).to_le_bytes());
    g.commit(len, type_id);
}

#[inline(never)]
fn send_blocking(tx: &mut Producer<'_, SpinWait>, payload: &[u8], type_id: u32) {
    tx.send(payload, type_id).expect("room");
}

#[inline(never)]
fn stage_batch(tx: &mut Producer<'_, SpinWait>, payload: &[u8], n: u32) {
    for i in 0..n {
        tx.send_staged(payload, i).expect("room");
    }
    tx.publish();
}

#[inline(never)]
fn recv_one(rx: &mut Consumer<'_, SpinWait>) -> u64 {
    let m = rx.try_recv().expect("a message");
    m.type_id() as u64 + m.payload().len() as u64
}

#[inline(never)]
fn recv_blocking(rx: &mut Consumer<'_, SpinWait>) -> u64 {
    let m = rx.recv().expect("a message");
    m.type_id() as u64 + m.payload().len() as u64
}

fn one_thread(n: u32) -> u64 {
    let mut buf: Box<RegionBuf<{ region_size(CAP).unwrap() }>> = Box::default();
    let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(CAP), SpinWait::std()).unwrap();
    let small = [7u8; 32];
    let mid = [9u8; 256];
    let mut sum = 0;
    for i in 0..n {
        let p: &[u8] = if i % 4 == 3 { &mid } else { &small };
        send_one(&mut tx, black_box(p), i);
        sum += recv_one(&mut rx);
        reserve_one(&mut tx, black_box(48), i);
        sum += recv_one(&mut rx);
        send_blocking(&mut tx, black_box(&small), i);
        sum += recv_blocking(&mut rx);
        if i % 16 == 0 {
            stage_batch(&mut tx, black_box(&small), 8);
            sum += rx
                .recv_batch(8, |t, p| {
                    black_box((t, p));
                })
                .unwrap() as u64;
        }
    }
    sum
}

fn two_threads(n: u32) -> u64 {
    let mut buf: Box<RegionBuf<{ region_size(CAP).unwrap() }>> = Box::default();
    let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(CAP), SpinWait::std()).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            let small = [7u8; 32];
            for i in 0..n {
                send_blocking(&mut tx, black_box(&small), i);
            }
        });
        let mut sum = 0;
        for _ in 0..n {
            sum += recv_blocking(&mut rx);
        }
        sum
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = args.first().is_some_and(|a| a == "threads");
    let n = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000u32);
    let sum = if threads {
        two_threads(n)
    } else {
        one_thread(n)
    };
    println!("{sum}");
}
