//! The facade's ring module: memtube-ring re-exported under `memtube::ring`
//! (split over a caller's buffer) and the owned `channel` for threads,
//! through `memtube::ring::` paths only.

use memtube::ring::{
    channel, max_payload, region_size, split, Config, Error, Producer, RegionBuf, SpinWait,
};
use std::time::Duration;

const CAP: u32 = 1024;
const REGION_SIZE: usize = match region_size(CAP) {
    Some(n) => n,
    None => panic!("bad capacity"),
};
const TIMEOUT: Duration = Duration::from_secs(30);

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
                tx.send_timeout(&payload(i), i, TIMEOUT).expect("send");
            }
        });
        for i in 0..n {
            let m = rx.recv_timeout(TIMEOUT).expect("recv_timeout");
            assert_eq!(m.type_id(), i);
            assert_eq!(m.payload(), &payload(i)[..]);
        }
        sender.join().expect("sender thread");
        assert_eq!(rx.try_recv().err(), Some(Error::Closed));
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
    assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    assert_eq!(
        tx.try_send(&[0; 25], 0).err(),
        Some(Error::TooLarge { len: 25, max: 24 })
    );
    tx.try_send(b"hi", 3).expect("send");
    {
        let m = rx.try_recv().expect("recv");
        assert_eq!((m.type_id(), &*m), (3, &b"hi"[..]));
    }
    drop(rx);
    // Fill the ring: with the consumer gone a full ring reports Closed.
    let err = loop {
        if let Err(e) = tx.try_send(&[7; 24], 0) {
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
    assert_send::<memtube::ring::Consumer<'static, SpinWait>>();
    assert_send::<memtube::ring::OwnedProducer>();
    assert_send::<memtube::ring::OwnedConsumer>();
}

/// The owned channel: handles move into `std::thread::spawn` (no scope),
/// every message arrives in order and whole, and the consumer sees `Closed`
/// only after the last one.
#[test]
fn owned_channel_across_spawned_threads() {
    let n: u32 = if cfg!(miri) { 50 } else { 20_000 };
    let (mut tx, mut rx) = channel(CAP).expect("channel");
    let sender = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(&payload(i), i).expect("send");
        }
    });
    let receiver = std::thread::spawn(move || {
        for i in 0..n {
            let m = rx.recv_timeout(TIMEOUT).expect("recv_timeout");
            assert_eq!(m.type_id(), i);
            assert_eq!(m.payload(), &payload(i)[..]);
        }
        assert_eq!(rx.recv().err(), Some(Error::Closed));
    });
    sender.join().expect("sender thread");
    receiver.join().expect("receiver thread");
}

/// Blocking calls with a time limit report `Timeout` and leave the ring usable.
#[test]
fn timeouts_leave_the_ring_usable() {
    let (mut tx, mut rx) = channel(64).expect("channel");
    let short = Duration::from_millis(5);
    assert_eq!(rx.recv_timeout(short).err(), Some(Error::Timeout));
    tx.send_timeout(&[1; 24], 1, short).expect("room");
    assert_eq!(tx.send_timeout(&[2; 24], 2, short), Err(Error::Timeout));
    assert_eq!(tx.reserve_timeout(24, short).err(), Some(Error::Timeout));
    assert_eq!(rx.recv().expect("recv").payload(), &[1; 24]);
    tx.send(&[3; 24], 3).expect("send after a timeout");
    assert_eq!(rx.recv().expect("recv").type_id(), 3);
}

#[test]
fn handles_debug() {
    let (tx, rx) = channel(1024).expect("channel");
    assert!(format!("{tx:?}").contains("capacity: 1024"));
    assert!(format!("{rx:?}").contains("OwnedConsumer"));
}
