//! Pieces shared by ring-core's integration tests.
#![allow(dead_code)] // each test crate uses part of it

use memtube_ring::{Consumer, Producer, SpinWait};

pub type Tx<'a> = Producer<'a, SpinWait>;
pub type Rx<'a> = Consumer<'a, SpinWait>;

/// xorshift64: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
