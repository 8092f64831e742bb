//! The other libraries, each behind its cargo feature: iceoryx2
//! (publish-subscribe over `[u8]` slices, busy polling) and Tachyon
//! (`tachyon-ipc`, as its own inter-process benchmark runs it: 1 MiB buses
//! whose listener produces, hybrid polling with 50 000 spins before a
//! receive sleeps). Both run the same exchanges as
//! memtube: round trips (the peer copies each ping into a pong) and one-way
//! streams (the peer sends, this process reads every byte).

use super::{Bench, Ctx, Measured, Run};
use crate::BoxError;

/// Wait until the word at `off` holds `want` (set by the other process).
#[cfg(any(feature = "iceoryx2", feature = "tachyon"))]
fn await_word(ctx: &Ctx, off: usize, want: u64) -> Result<(), BoxError> {
    let w = ctx.shm.u64(off);
    super::wait_for("setup handshake", || {
        w.load(std::sync::atomic::Ordering::Acquire) == want
    })
}

#[cfg(any(feature = "iceoryx2", feature = "tachyon"))]
fn set_word(ctx: &Ctx, off: usize, v: u64) {
    ctx.shm
        .u64(off)
        .store(v, std::sync::atomic::Ordering::Release);
}

/// The main side's "all received" mark: the peer keeps its ports until then.
#[cfg(any(feature = "iceoryx2", feature = "tachyon"))]
const DONE: u64 = 1 << 62;

#[cfg(feature = "iceoryx2")]
pub mod ice {
    //! iceoryx2 over `[u8]` slices.
    use super::{await_word, set_word, DONE};
    use crate::shm;
    use crate::systems::{read_all, time_round_trips, Ctx, Kind, Measured, Run};
    use crate::BoxError;
    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;
    use std::hint::{black_box, spin_loop};
    use std::time::Instant;

    /// This process's iceoryx2 node.
    pub struct IceNode(pub Node<ipc::Service>);

    type Pub = Publisher<ipc::Service, [u8], ()>;
    type Sub = Subscriber<ipc::Service, [u8], ()>;

    fn node(ctx: &mut Ctx) -> Result<&Node<ipc::Service>, BoxError> {
        if ctx.ice.is_none() {
            set_log_level(LogLevel::Error);
            ctx.ice = Some(IceNode(NodeBuilder::new().create::<ipc::Service>()?));
        }
        Ok(&ctx.ice.as_ref().ok_or("no node")?.0)
    }

    fn name(ctx: &Ctx, run: Run, which: &str) -> String {
        format!("memtube-bench/{}/{}/{which}", ctx.main_pid, run.id)
    }

    /// A publisher (`publish`) or subscriber on the service `which`.
    fn ports(
        ctx: &mut Ctx,
        run: Run,
        which: &str,
        publish: bool,
    ) -> Result<(Option<Pub>, Option<Sub>), BoxError> {
        let stream = run.sys.kind() == Kind::Stream;
        let sname: ServiceName = name(ctx, run, which).as_str().try_into()?;
        let node = node(ctx)?;
        // Round trips as iceoryx2's own publish-subscribe benchmark
        // (benchmarks/publish-subscribe in its repository) configures its
        // services: a buffer of one sample, safe overflow, no history;
        // streams with a buffer deep enough to stream, no overflow.
        let buffer = if stream { 256 } else { 1 };
        let svc = node
            .service_builder(&sname)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(!stream)
            .subscriber_max_buffer_size(buffer)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()?;
        if publish {
            let p = svc
                .publisher_builder()
                .initial_max_slice_len(run.len)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()?;
            Ok((Some(p), None))
        } else {
            let s = svc.subscriber_builder().buffer_size(buffer).create()?;
            Ok((None, Some(s)))
        }
    }

    fn send(p: &Pub, data: &[u8]) -> Result<(), BoxError> {
        let s = p.loan_slice_uninit(data.len())?;
        let s = s.write_from_slice(data);
        s.send()?;
        Ok(())
    }

    pub fn main(ctx: &mut Ctx, run: Run) -> Result<Measured, BoxError> {
        let result = main_inner(ctx, run);
        // Release the peer (it keeps its ports until this mark), also on error.
        set_word(ctx, shm::MAIN_READY, run.id | DONE);
        result
    }

    fn main_inner(ctx: &mut Ctx, run: Run) -> Result<Measured, BoxError> {
        if run.sys.kind() == Kind::Stream {
            let (_, sub) = ports(ctx, run, "stream", false)?;
            let sub = sub.ok_or("no subscriber")?;
            set_word(ctx, shm::MAIN_READY, run.id);
            await_word(ctx, shm::PEER_READY, run.id)?;
            let mut start = None;
            let mut sum = 0u64;
            let (mut received, mut expect) = (0u64, 0u64);
            let mut spin = crate::Spin::new();
            // Until the last message: a gap is counted (and fails the run
            // below) rather than stopping here, so the peer is never left
            // blocked on a full buffer.
            while expect < run.count {
                match sub.receive()? {
                    Some(s) => {
                        start.get_or_insert_with(Instant::now);
                        let p = s.payload();
                        let seq = u64::from_ne_bytes(p[..8].try_into()?);
                        sum = sum.wrapping_add(read_all(p, seq, run.len)?);
                        received += 1;
                        expect = seq + 1;
                    }
                    None => {
                        spin_loop();
                        if spin.expired() {
                            return Err("iceoryx2 stream: no message".into());
                        }
                    }
                }
            }
            if received != run.count {
                return Err(format!(
                    "iceoryx2 stream lost {} of {} messages (RetryUntilDelivered, safe overflow off)",
                    run.count - received,
                    run.count
                )
                .into());
            }
            black_box(sum);
            let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
            set_word(ctx, shm::MAIN_READY, run.id | DONE);
            return Ok(Measured::Stream {
                messages: run.count - 1,
                seconds,
            });
        }
        let (ping, _) = ports(ctx, run, "ping", true)?;
        let (_, pong) = ports(ctx, run, "pong", false)?;
        let (ping, pong) = (ping.ok_or("no publisher")?, pong.ok_or("no subscriber")?);
        set_word(ctx, shm::MAIN_READY, run.id);
        await_word(ctx, shm::PEER_READY, run.id)?;
        let mut payload = vec![0xa5u8; run.len];
        // As iceoryx2's own benchmark: the next sample is loaned before the
        // wait for the answer, off the round trip's path.
        let mut next = Some(ping.loan_slice_uninit(run.len)?);
        let h = time_round_trips(run.count, |s| {
            payload[..8].copy_from_slice(&s.to_ne_bytes());
            let sample = next.take().ok_or("no loaned sample")?;
            sample.write_from_slice(&payload).send()?;
            next = Some(ping.loan_slice_uninit(run.len)?);
            let mut spin = crate::Spin::new();
            loop {
                if let Some(m) = pong.receive()? {
                    if m.payload()[..8] != s.to_ne_bytes() {
                        return Err("iceoryx2 echo mismatch".into());
                    }
                    return Ok(());
                }
                spin_loop();
                if spin.expired() {
                    return Err("iceoryx2: no pong".into());
                }
            }
        });
        set_word(ctx, shm::MAIN_READY, run.id | DONE);
        Ok(Measured::Latency(h?))
    }

    pub fn peer(ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        await_word(ctx, shm::MAIN_READY, run.id)?;
        if run.sys.kind() == Kind::Stream {
            let (p, _) = ports(ctx, run, "stream", true)?;
            let p = p.ok_or("no publisher")?;
            set_word(ctx, shm::PEER_READY, run.id);
            let mut payload = vec![0x5au8; run.len];
            for n in 0..run.count {
                payload[..8].copy_from_slice(&n.to_ne_bytes());
                send(&p, &payload)?;
            }
        } else {
            let (_, ping) = ports(ctx, run, "ping", false)?;
            let (pong, _) = ports(ctx, run, "pong", true)?;
            let (ping, pong) = (ping.ok_or("no subscriber")?, pong.ok_or("no publisher")?);
            set_word(ctx, shm::PEER_READY, run.id);
            for _ in 0..run.count {
                // Loaned before the wait, as iceoryx2's own benchmark.
                let sample = pong.loan_slice_uninit(run.len)?;
                let mut spin = crate::Spin::new();
                loop {
                    if let Some(m) = ping.receive()? {
                        sample.write_from_slice(m.payload()).send()?;
                        break;
                    }
                    spin_loop();
                    if spin.expired() {
                        return Err("iceoryx2: no ping".into());
                    }
                }
            }
        }
        await_word(ctx, shm::MAIN_READY, run.id | DONE)
    }
}

#[cfg(feature = "tachyon")]
pub mod tach {
    //! Tachyon through `tachyon-ipc`.
    use super::{await_word, set_word, DONE};
    use crate::shm;
    use crate::systems::{read_all, time_round_trips, Ctx, Kind, Measured, Run};
    use crate::BoxError;
    use std::hint::{black_box, spin_loop};
    use std::time::{Duration, Instant};
    use tachyon_ipc::{Bus, TachyonError};

    extern "C" {
        /// Defined only in build.rs's build of Tachyon's core (one unit,
        /// as Tachyon's LTO release build): calling it makes a link that
        /// took `tachyon-sys`'s separately compiled copy instead fail.
        fn memtube_bench_tachyon_one_unit() -> std::ffi::c_int;
    }

    /// Tachyon's core as its release build compiles it (see build.rs).
    fn one_unit() -> Result<(), BoxError> {
        // SAFETY: a C function without arguments, state or side effects.
        if unsafe { memtube_bench_tachyon_one_unit() } != 1 {
            return Err("tachyon: not the one-unit build of its core".into());
        }
        Ok(())
    }

    /// Spins before a receive sleeps on the bus's futex: Tachyon's own
    /// inter-process benchmark's setting, with its default (hybrid)
    /// polling mode, which this adapter keeps.
    const SPIN_THRESHOLD: u32 = 50_000;

    /// Create a bus (its producer side) and wait for its consumer to connect.
    fn listen(p: &str, cap: usize) -> Result<Bus, BoxError> {
        let _ = std::fs::remove_file(p);
        let b = Bus::listen(p, cap)?;
        let _ = std::fs::remove_file(p);
        Ok(b)
    }

    fn connect(p: &str) -> Result<Bus, BoxError> {
        let start = Instant::now();
        loop {
            match Bus::connect(p) {
                Ok(b) => return Ok(b),
                Err(e) if start.elapsed() > crate::TIMEOUT => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    fn send(bus: &Bus, data: &[u8]) -> Result<(), BoxError> {
        let mut spin = crate::Spin::new();
        loop {
            match bus.send(data, 1) {
                Ok(()) => return Ok(()),
                Err(TachyonError::BufferFull) => {
                    spin_loop();
                    if spin.expired() {
                        return Err("tachyon: ring stayed full".into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The buses of one run: fresh each run, 1 MiB as in Tachyon's own
    /// inter-process benchmark, so that every run wraps its buses many
    /// times, and never smaller than 64 messages of the run. Tachyon's
    /// consumer publishes its released position only every 32 commits
    /// (`BATCH_SIZE` in its arena), so a bus that holds fewer than 32
    /// messages stays full forever in a ping-pong: its producer never sees
    /// the space the consumer released (this is what an earlier version of
    /// this adapter saw with 64 KiB messages).
    pub struct Buses {
        ping: Option<Bus>,
        pong: Option<Bus>,
        stream: Option<Bus>,
    }

    fn name(ctx: &Ctx, run: Run, which: &str) -> String {
        format!(
            "/tmp/memtube-bench-{}-{}-{which}.sock",
            ctx.main_pid, run.id
        )
    }

    /// Bus bytes one message of `run` takes: Tachyon's 64-byte header, the
    /// payload, rounded up to its 64-byte alignment.
    fn slot(run: Run) -> usize {
        (run.len + 64).div_ceil(64) * 64
    }

    /// Bus bytes for `run`: 1 MiB, or 64 slots of its messages if larger.
    fn capacity(run: Run) -> usize {
        (64 * slot(run)).next_power_of_two().max(1 << 20)
    }

    /// Round trips before the timed ones: one lap of the bus, so that every
    /// timed message lands on lines the two cores have held before. A fresh
    /// bus's first lap writes lines no core holds yet; at 32 B a lap is
    /// 8 192 round trips, which in a quick run (20 000) left a third of the
    /// timed ones on the first lap and its row 15 % above Tachyon's own
    /// benchmark, whose 10 000 warm-up round trips cover that lap
    /// (docs/benchmarks.md, peer baselines).
    fn warm_up(run: Run) -> u64 {
        (capacity(run) / slot(run)) as u64
    }

    fn main_buses(ctx: &Ctx, run: Run) -> Result<Buses, BoxError> {
        one_unit()?;
        let cap = capacity(run);
        // As in Tachyon's own benchmark, each bus's listener is its producer.
        if run.sys.kind() == Kind::Stream {
            let stream = Some(connect(&name(ctx, run, "stream"))?);
            return Ok(Buses {
                ping: None,
                pong: None,
                stream,
            });
        }
        let ping = Some(listen(&name(ctx, run, "ping"), cap)?);
        let pong = Some(connect(&name(ctx, run, "pong"))?);
        Ok(Buses {
            ping,
            pong,
            stream: None,
        })
    }

    fn peer_buses(ctx: &Ctx, run: Run) -> Result<Buses, BoxError> {
        one_unit()?;
        let cap = capacity(run);
        if run.sys.kind() == Kind::Stream {
            let stream = Some(listen(&name(ctx, run, "stream"), cap)?);
            return Ok(Buses {
                ping: None,
                pong: None,
                stream,
            });
        }
        let ping = Some(connect(&name(ctx, run, "ping"))?);
        let pong = Some(listen(&name(ctx, run, "pong"), cap)?);
        Ok(Buses {
            ping,
            pong,
            stream: None,
        })
    }

    pub fn main(ctx: &mut Ctx, run: Run) -> Result<Measured, BoxError> {
        set_word(ctx, shm::MAIN_READY, run.id);
        let b = main_buses(ctx, run)?;
        if let Some(stream) = &b.stream {
            let mut start = None;
            let mut sum = 0u64;
            for n in 0..run.count {
                let g = stream.acquire_rx(SPIN_THRESHOLD)?;
                start.get_or_insert_with(Instant::now);
                sum = sum.wrapping_add(read_all(g.data(), n, run.len)?);
                g.commit()?;
            }
            black_box(sum);
            let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
            set_word(ctx, shm::MAIN_READY, run.id | DONE);
            return Ok(Measured::Stream {
                messages: run.count - 1,
                seconds,
            });
        }
        let (ping, pong) = (
            b.ping.as_ref().ok_or("no bus")?,
            b.pong.as_ref().ok_or("no bus")?,
        );
        let mut payload = vec![0xa5u8; run.len];
        let mut rt = |s: u64| -> Result<(), BoxError> {
            payload[..8].copy_from_slice(&s.to_ne_bytes());
            send(ping, &payload).map_err(|e| format!("round trip {s}: {e}"))?;
            let g = pong.acquire_rx(SPIN_THRESHOLD)?;
            if g.data()[..8] != s.to_ne_bytes() {
                return Err("tachyon echo mismatch".into());
            }
            g.commit()?;
            Ok(())
        };
        let warm = warm_up(run);
        let h = (0..warm)
            .try_for_each(&mut rt)
            .and_then(|()| time_round_trips(run.count, |s| rt(warm + s)));
        set_word(ctx, shm::MAIN_READY, run.id | DONE);
        Ok(Measured::Latency(h?))
    }

    pub fn peer(ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        await_word(ctx, shm::MAIN_READY, run.id)?;
        let b = peer_buses(ctx, run)?;
        if let Some(stream) = &b.stream {
            let mut payload = vec![0x5au8; run.len];
            for n in 0..run.count {
                payload[..8].copy_from_slice(&n.to_ne_bytes());
                send(stream, &payload)?;
            }
            // Keep the bus until the main process has read everything.
            return await_word(ctx, shm::MAIN_READY, run.id | DONE);
        }
        let (ping, pong) = (
            b.ping.as_ref().ok_or("no bus")?,
            b.pong.as_ref().ok_or("no bus")?,
        );
        for _ in 0..warm_up(run) + run.count {
            let g = ping.acquire_rx(SPIN_THRESHOLD)?;
            let len = g.actual_size;
            let mut spin = crate::Spin::new();
            let tx = loop {
                match pong.acquire_tx(len) {
                    Ok(tx) => break tx,
                    Err(TachyonError::BufferFull) if !spin.expired() => spin_loop(),
                    Err(e) => return Err(e.into()),
                }
            };
            tx.write(g.data());
            let ty = g.type_id;
            g.commit()?;
            tx.commit(len, ty)?;
        }
        await_word(ctx, shm::MAIN_READY, run.id | DONE)
    }
}

/// iceoryx2 (round trips and streams).
pub struct Iceoryx2;

impl Bench for Iceoryx2 {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        #[cfg(feature = "iceoryx2")]
        return ice::main(ctx, run);
        #[cfg(not(feature = "iceoryx2"))]
        {
            let _ = (ctx, run);
            Err("built without the `iceoryx2` feature".into())
        }
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        #[cfg(feature = "iceoryx2")]
        return ice::peer(ctx, run);
        #[cfg(not(feature = "iceoryx2"))]
        {
            let _ = (ctx, run);
            Err("built without the `iceoryx2` feature".into())
        }
    }
}

/// Tachyon (round trips and streams).
pub struct Tachyon;

impl Bench for Tachyon {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        #[cfg(feature = "tachyon")]
        return tach::main(ctx, run);
        #[cfg(not(feature = "tachyon"))]
        {
            let _ = (ctx, run);
            Err("built without the `tachyon` feature".into())
        }
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        #[cfg(feature = "tachyon")]
        return tach::peer(ctx, run);
        #[cfg(not(feature = "tachyon"))]
        {
            let _ = (ctx, run);
            Err("built without the `tachyon` feature".into())
        }
    }
}
