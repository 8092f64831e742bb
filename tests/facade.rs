//! The facade re-exports ring-core: split, send and receive across two
//! threads through `memtube::` paths only.

use memtube::{max_payload, region_size, split, Config, Error, Producer, RegionBuf, SpinWait};
use std::time::Duration;

const CAP: u32 = 1024;
const REGION_SIZE: usize = match region_size(CAP) {
    Some(n) => n,
    None => panic!("bad capacity"),
};
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

fn payload(i: u32) -> Vec<u8> {
    // Lengths 0..=40 cover empty, sub-word and multi-word payloads.
    let len = (i % 41) as usize;
    (0..len)
        .map(|k| (i as usize).wrapping_mul(31).wrapping_add(k) as u8)
        .collect()
}

fn round(pure_spin: bool) {
    let n: u32 = if cfg!(miri) { 50 } else { 20_000 };
    let mut region = Box::new(RegionBuf::<REGION_SIZE>::new());
    let config = Config::new(CAP).pure_spin(pure_spin);
    let (mut tx, mut rx) = split(region.as_mut_slice(), config, SpinWait::std()).expect("split");
    assert_eq!(tx.capacity(), CAP);
    assert_eq!(rx.max_payload(), max_payload(CAP));

    std::thread::scope(|s| {
        let sender = s.spawn(move || {
            for i in 0..n {
                tx.send_blocking(&payload(i), i, TIMEOUT)
                    .expect("send_blocking");
            }
        });
        for i in 0..n {
            let m = rx.recv_blocking(TIMEOUT).expect("recv_blocking");
            assert_eq!(m.type_id(), i);
            assert_eq!(m.payload(), &payload(i)[..]);
        }
        sender.join().expect("sender thread");
        assert_eq!(rx.recv().err(), Some(Error::Closed));
        let stats = rx.stats();
        assert_eq!(stats.messages_committed, u64::from(n));
        assert_eq!(stats.messages_released, u64::from(n));
    });
}

#[test]
fn two_threads_default_mode() {
    round(false);
}

#[test]
fn two_threads_pure_spin() {
    round(true);
}

#[test]
fn non_blocking_calls_and_errors() {
    const SMALL: usize = match region_size(64) {
        Some(n) => n,
        None => panic!("bad capacity"),
    };
    let mut region = Box::new(RegionBuf::<SMALL>::new());
    let (mut tx, mut rx) =
        split(region.as_mut_slice(), Config::new(64), SpinWait::std()).expect("split");
    assert_eq!(rx.recv().err(), Some(Error::Empty));
    assert_eq!(
        tx.send(&[0; 25], 0).err(),
        Some(Error::TooLarge { len: 25, max: 24 })
    );
    tx.send(b"hi", 3).expect("send");
    {
        let m = rx.recv().expect("recv");
        assert_eq!((m.type_id(), &*m), (3, &b"hi"[..]));
    }
    drop(rx);
    // Fill the ring: with the consumer gone a full ring reports Closed.
    let err = loop {
        if let Err(e) = tx.send(&[7; 24], 0) {
            break e;
        }
    };
    assert_eq!(err, Error::Closed);
    // Errors implement std::error::Error through the facade.
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert_eq!(boxed.to_string(), "peer closed the ring");
}

#[test]
fn handles_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Producer<'static, SpinWait>>();
    assert_send::<memtube::Consumer<'static, SpinWait>>();
}
