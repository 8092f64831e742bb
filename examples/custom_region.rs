//! A ring over memory you own: a static buffer here, but any 128-byte
//! aligned region works (an arena, a custom allocator's block, a mapping).
//!
//! ```text
//! cargo run --example custom_region
//! ```
//!
//! `split` lays the ring over the buffer and returns handles that borrow
//! it; scoped threads share the borrow. Writing in place (`try_reserve`,
//! fill, `commit`) is the zero-copy path; `SpinWait` polls and never calls
//! the kernel, so the same code runs without an OS.

use memtube::ring::{region_size, split, Config, Error, RegionBuf, SpinWait};
use std::time::Duration;

const CAP: u32 = 4096;
const SIZE: usize = match region_size(CAP) {
    Some(n) => n, // the control block plus the data area
    None => panic!("the capacity must be a power of two"),
};

fn main() -> Result<(), Error> {
    let mut region = RegionBuf::<SIZE>::new(); // 4.6 KiB on the stack; use `channel` for large rings
    let (mut tx, mut rx) = split(region.as_mut_slice(), Config::new(CAP), SpinWait::std())?;

    std::thread::scope(|s| -> Result<(), Error> {
        s.spawn(move || -> Result<(), Error> {
            for i in 0u64..100 {
                let mut grant = tx.reserve(16)?; // blocks while full
                grant[..8].copy_from_slice(&i.to_le_bytes());
                grant[8..].copy_from_slice(&(i * i).to_le_bytes());
                grant.commit(16, 1); // publish 16 bytes as type 1
            }
            Ok(())
        });
        let mut sum = 0;
        for _ in 0..100 {
            let msg = rx.recv_timeout(Duration::from_secs(5))?;
            sum += u64::from_le_bytes(msg[8..16].try_into().expect("16-byte message"));
        }
        println!("sum of squares: {sum}");
        assert_eq!(sum, (0..100u64).map(|i| i * i).sum());
        Ok(())
    })
}
