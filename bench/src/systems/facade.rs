//! memtube's connections (`listen` / `connect`, the facade): round trips
//! over duplex connections, one-way streams, the wake-up of a sleeping
//! receiver.

use super::{histogram, interval, lat, read_all, time_round_trips, Bench, Ctx, Measured, Rng, Run};
use crate::{mono_ns, BoxError, TIMEOUT};
use hdrhistogram::Histogram;
use memtube::{Direction, Options};
use std::hint::black_box;
use std::time::Instant;

/// A round trip over a duplex connection: the main side sends and times,
/// the peer echoes.
pub struct RoundTrip {
    /// The options (both sides pass the same), from those with the
    /// payload's [`ring_capacity`].
    pub options: fn(Options) -> Options,
    /// The sender's settings (both sides apply them).
    pub sender: fn(&mut memtube::Sender),
}

impl RoundTrip {
    /// A round trip with these options and the sender's defaults.
    pub const fn new(options: fn(Options) -> Options) -> Self {
        RoundTrip {
            options,
            sender: |_| {},
        }
    }

    /// With these sender settings.
    pub const fn sender(self, sender: fn(&mut memtube::Sender)) -> Self {
        RoundTrip { sender, ..self }
    }

    /// The options of a run (both sides pass the same).
    fn options(&self, len: usize) -> Options {
        (self.options)(Options::new().capacity(ring_capacity(len)))
    }
}

impl Bench for RoundTrip {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(memtube_rt_main(self, ctx, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        memtube_rt_peer(self, ctx, run)
    }
}

/// How a stream's sender sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Reserve, produce the payload in place (fill), commit.
    ZeroCopy,
    /// `send_blocking` copies the payload in.
    Copy,
    /// `send_staged`, `publish` every 16 messages.
    Batch,
}

/// One way: the peer sends, the main side reads every byte in place.
pub struct Stream {
    /// How the peer sends.
    pub way: Way,
    /// The sender's settings.
    pub sender: fn(&mut memtube::Sender),
    /// The ring's capacity in bytes.
    pub capacity: u32,
    /// Pure-spin mode (else the default: spin, then sleep).
    pub pure_spin: bool,
}

/// The streams' ring capacity unless a row says otherwise.
pub const STREAM_CAPACITY: u32 = 256 * 1024;

impl Stream {
    /// A stream sent this way, with the sender's defaults, over a ring of
    /// [`STREAM_CAPACITY`].
    pub const fn new(way: Way) -> Self {
        Stream {
            way,
            sender: |_| {},
            capacity: STREAM_CAPACITY,
            pure_spin: false,
        }
    }

    /// In pure-spin mode.
    pub const fn pure_spin(self) -> Self {
        Stream {
            pure_spin: true,
            ..self
        }
    }

    /// Over a ring of `capacity` bytes.
    pub const fn capacity(self, capacity: u32) -> Self {
        Stream { capacity, ..self }
    }

    /// With these sender settings.
    pub const fn sender(self, sender: fn(&mut memtube::Sender)) -> Self {
        Stream { sender, ..self }
    }
}

impl Bench for Stream {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        memtube_stream_main(self, ctx, run)
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        memtube_stream_peer(self, ctx, run)
    }
}

/// The streams' options (both sides pass the same).
fn stream_options(stream: &Stream) -> Options {
    Options::new()
        .capacity(stream.capacity)
        .pure_spin(stream.pure_spin)
        .direction(Direction::ConnectorToListener)
}

/// Default mode: the receiver (main side) sleeps, the peer sends at random
/// intervals.
pub struct Wake;

impl Bench for Wake {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(wake_main(ctx, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        wake_peer(ctx, run)
    }
}

/// The wake-up's options (both sides pass the same).
fn wake_options() -> Options {
    Options::new()
        .capacity(16 * 1024)
        .direction(Direction::ConnectorToListener)
}

/// The data-area bytes of the memtube rings for `len`-byte payloads.
pub fn ring_capacity(len: usize) -> u32 {
    if len <= 4096 {
        16 * 1024
    } else {
        256 * 1024
    }
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_rt_main(rt: &RoundTrip, ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let conn = listener.accept_with(&rt.options(run.len), Some(TIMEOUT))?;
    let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
        return Err("duplex connection without two rings".into());
    };
    (rt.sender)(&mut tx);
    let mut payload = vec![0xa5u8; run.len];
    time_round_trips(run.count, |s| {
        payload[..8].copy_from_slice(&s.to_ne_bytes());
        tx.send_timeout(&payload, 7, TIMEOUT)?;
        let m = rx.recv_timeout(TIMEOUT)?;
        if m.len() != run.len || m[..8] != s.to_ne_bytes() {
            return Err(format!("memtube echo mismatch at {s}").into());
        }
        Ok(())
    })
}

/// Not inlined, so its hot loop can be read in the disassembly.
#[inline(never)]
fn memtube_rt_peer(rt: &RoundTrip, ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let conn = memtube::connect(ctx.addr.as_str(), &rt.options(run.len))?;
    let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
        return Err("duplex connection without two rings".into());
    };
    (rt.sender)(&mut tx);
    for _ in 0..run.count {
        let m = rx.recv_timeout(TIMEOUT)?;
        tx.send_timeout(&m, m.type_id(), TIMEOUT)?;
    }
    Ok(())
}

fn memtube_stream_main(stream: &Stream, ctx: &Ctx, run: Run) -> Result<Measured, BoxError> {
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let mut conn = listener.accept_with(&stream_options(stream), Some(TIMEOUT))?;
    let rx = conn.receiver()?;
    let mut start = None;
    let mut sum = 0u64;
    for n in 0..run.count {
        let m = rx.recv_timeout(TIMEOUT)?;
        start.get_or_insert_with(Instant::now);
        sum = sum.wrapping_add(read_all(&m, n, run.len)?);
    }
    black_box(sum);
    let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(Measured::Stream {
        messages: run.count - 1,
        seconds,
    })
}

fn memtube_stream_peer(stream: &Stream, ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let mut conn = memtube::connect(ctx.addr.as_str(), &stream_options(stream))?;
    let tx = conn.sender()?;
    let mut payload = vec![0x5au8; run.len];
    (stream.sender)(tx);
    match stream.way {
        Way::ZeroCopy => {
            for n in 0..run.count {
                let mut g = tx.reserve_timeout(run.len, TIMEOUT)?;
                g[..8].copy_from_slice(&n.to_ne_bytes());
                g[8..run.len].fill(n as u8); // the payload, produced in place
                g.commit(run.len, 1);
            }
        }
        Way::Copy => {
            for n in 0..run.count {
                payload[..8].copy_from_slice(&n.to_ne_bytes());
                tx.send_timeout(&payload, 1, TIMEOUT)?;
            }
        }
        Way::Batch => {
            for n in 0..run.count {
                payload[..8].copy_from_slice(&n.to_ne_bytes());
                loop {
                    match tx.send_staged(&payload, 1) {
                        Ok(()) => break,
                        Err(memtube::Error::Full) => {
                            tx.publish();
                            tx.wait_for_room(run.len, Some(TIMEOUT))?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if n % 16 == 15 {
                    tx.publish();
                }
            }
            tx.publish();
        }
    }
    // Dropping the sender closes the ring; the receiver still gets every message.
    Ok(())
}

fn wake_main(ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    let mut h = histogram();
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let mut conn = listener.accept_with(&wake_options(), Some(TIMEOUT))?;
    let rx = conn.receiver()?;
    for _ in 0..run.count {
        let m = rx.recv_timeout(TIMEOUT)?;
        let now = mono_ns();
        let sent = u64::from_ne_bytes(m[..8].try_into()?);
        h.saturating_record(now.saturating_sub(sent));
    }
    Ok(h)
}

fn wake_peer(ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    wake_peer_with(ctx, run, &wake_options())
}

/// The wake-ups' peer: sends at random intervals over a connection made
/// with `opts`, each message stamped with its send time.
fn wake_peer_with(ctx: &Ctx, run: Run, opts: &Options) -> Result<(), BoxError> {
    let mut rng = Rng::for_run(run.id);
    let mut conn = memtube::connect(ctx.addr.as_str(), opts)?;
    let tx = conn.sender()?;
    let mut payload = vec![0u8; run.len.max(8)];
    for _ in 0..run.count {
        std::thread::sleep(interval(&mut rng));
        payload[..8].copy_from_slice(&mono_ns().to_ne_bytes());
        tx.send_timeout(&payload, 1, TIMEOUT)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- instruction counts

/// The same through `memtube::listen` / `connect` (one process, both ends),
/// pure spin, isolation on or off (`--selfloop memtube|memtube-noiso N`).
#[inline(never)]
pub fn selfloop_memtube(n: u64, isolation: bool) -> Result<u64, BoxError> {
    let opts = Options::new()
        .capacity(16 * 1024)
        .pure_spin(true)
        .isolation(isolation);
    let addr = format!("@memtube-bench-selfloop-{}", std::process::id());
    let listener = memtube::listen(addr.as_str(), &opts)?;
    let accept = std::thread::spawn(move || listener.accept_timeout(TIMEOUT));
    let mut out = memtube::connect(addr.as_str(), &opts)?;
    let mut inc = accept.join().map_err(|_| "accept panicked")??;
    let (tx, rx) = (out.sender()?, inc.receiver()?);
    let payload = [0xa5u8; 32];
    let mut sum = 0u64;
    for _ in 0..n {
        tx.send_timeout(&payload, 7, TIMEOUT)?;
        let m = rx.recv_timeout(TIMEOUT)?;
        sum = sum.wrapping_add(u64::from(m[0]));
    }
    Ok(sum)
}

// ---------------------------------------------------------------- poll sets

/// Round trips through a server that serves `connections` duplex
/// connections from one [`memtube::PollSet`]: the main side (the client)
/// opens them all and times round trips over the last one while the
/// others stay idle; the peer (the server) echoes whatever the set reports.
pub struct PollRoundTrip {
    /// Connections (one active).
    pub connections: usize,
}

impl PollRoundTrip {
    fn options(len: usize) -> Options {
        Options::new().capacity(ring_capacity(len)).duplex(true)
    }
}

impl Bench for PollRoundTrip {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat(poll_rt_main(self, ctx, run))
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        poll_rt_peer(self, ctx, run)
    }
}

#[inline(never)]
fn poll_rt_main(p: &PollRoundTrip, ctx: &Ctx, run: Run) -> Result<Histogram<u64>, BoxError> {
    let listener = ctx.listener.as_ref().ok_or("no listener")?;
    let opts = PollRoundTrip::options(run.len);
    let mut conns = Vec::with_capacity(p.connections);
    for _ in 0..p.connections {
        conns.push(listener.accept_with(&opts, Some(TIMEOUT))?);
    }
    let active = conns.last_mut().ok_or("no connection")?;
    let mut payload = vec![0xa5u8; run.len];
    let h = time_round_trips(run.count, |s| {
        payload[..8].copy_from_slice(&s.to_ne_bytes());
        active.sender()?.send_timeout(&payload, 7, TIMEOUT)?;
        let m = active.receiver()?.recv_timeout(TIMEOUT)?;
        if m.len() != run.len || m[..8] != s.to_ne_bytes() {
            return Err(format!("memtube poll-set echo mismatch at {s}").into());
        }
        Ok(())
    })?;
    Ok(h)
}

#[inline(never)]
fn poll_rt_peer(p: &PollRoundTrip, ctx: &Ctx, run: Run) -> Result<(), BoxError> {
    let opts = PollRoundTrip::options(run.len);
    let mut set = memtube::PollSet::new();
    for _ in 0..p.connections {
        set.insert(memtube::connect(ctx.addr.as_str(), &opts)?);
    }
    let mut events = memtube::Events::with_capacity(p.connections);
    let mut echoed = 0;
    while echoed < run.count {
        set.wait(&mut events, Some(TIMEOUT))?;
        for ev in &events {
            let conn = set.get_mut(ev.key()).ok_or("an event for a removed key")?;
            let (Some(tx), Some(rx)) = conn.split_mut() else {
                return Err("duplex connection without two rings".into());
            };
            let Ok(m) = rx.try_recv() else {
                continue;
            };
            tx.send_timeout(&m, m.type_id(), TIMEOUT)?;
            echoed += 1;
        }
    }
    Ok(())
}

/// A fan-in stream: the peer sends messages in turn over `clients`
/// connections (one thread: message `n` goes to connection `n % clients`);
/// the main side receives them all through one poll set and reads every
/// byte. The aggregate rate, against the single pair's ("memtube copy").
pub struct PollStream {
    /// Connections, all active.
    pub clients: usize,
}

fn poll_stream_options() -> Options {
    Options::new()
        .capacity(STREAM_CAPACITY)
        .direction(Direction::ConnectorToListener)
}

impl Bench for PollStream {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        let listener = ctx.listener.as_ref().ok_or("no listener")?;
        let mut set = memtube::PollSet::<memtube::Receiver>::new();
        for _ in 0..self.clients {
            let conn = listener.accept_with(&poll_stream_options(), Some(TIMEOUT))?;
            set.insert(conn.into_split().1.ok_or("no receiver")?);
        }
        let k = self.clients as u64;
        // The next sequence number each connection carries.
        let mut next: Vec<u64> = (0..k).collect();
        let mut events = memtube::Events::with_capacity(self.clients);
        let mut start = None;
        let mut got = 0u64;
        let mut sum = 0u64;
        while got < run.count {
            set.wait(&mut events, Some(TIMEOUT))?;
            start.get_or_insert_with(Instant::now);
            for ev in &events {
                let key = ev.key();
                let rx = set.get_mut(key).ok_or("an event for a removed key")?;
                // What is there now, up to a bound (fairness).
                for _ in 0..64 {
                    match rx.try_recv() {
                        Ok(m) => {
                            sum = sum.wrapping_add(read_all(&m, next[key], run.len)?);
                            next[key] += k;
                            got += 1;
                        }
                        Err(memtube::Error::Empty) | Err(memtube::Error::Closed) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        black_box(sum);
        let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        Ok(Measured::Stream {
            messages: run.count - 1,
            seconds,
        })
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        let mut conns = Vec::with_capacity(self.clients);
        for _ in 0..self.clients {
            conns.push(memtube::connect(ctx.addr.as_str(), &poll_stream_options())?);
        }
        let mut txs = Vec::with_capacity(self.clients);
        for c in conns {
            txs.push(c.into_split().0.ok_or("no sender")?);
        }
        let mut payload = vec![0x5au8; run.len];
        let k = self.clients as u64;
        for n in 0..run.count {
            payload[..8].copy_from_slice(&n.to_ne_bytes());
            txs[(n % k) as usize].send_timeout(&payload, 1, TIMEOUT)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- async (tokio)

/// The async rows' options (both sides pass the same): readiness on.
fn async_options(len: usize) -> Options {
    Options::new().capacity(ring_capacity(len)).readiness(true)
}

/// A current-thread tokio runtime with its I/O and time drivers, as an
/// async service runs one per core.
fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Default mode, the receiver an [`memtube::tokio::AsyncReceiver`]
/// awaiting in a tokio runtime; the peer sends at random intervals (as
/// [`Wake`]): the wake-up through the readiness descriptor.
pub struct AsyncWake;

impl Bench for AsyncWake {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat((|| {
            let mut h = histogram();
            let listener = ctx.listener.as_ref().ok_or("no listener")?;
            let opts = async_options(run.len).direction(Direction::ConnectorToListener);
            let conn = listener.accept_with(&opts, Some(TIMEOUT))?;
            let rt = runtime()?;
            rt.block_on(async {
                let rx = conn.into_split().1.ok_or("no receiver")?;
                let mut rx = memtube::tokio::AsyncReceiver::new(rx)?;
                for _ in 0..run.count {
                    let m = rx.recv().await?;
                    let now = mono_ns();
                    let sent = u64::from_ne_bytes(m[..8].try_into()?);
                    h.saturating_record(now.saturating_sub(sent));
                }
                if std::env::var_os("MEMTUBE_BENCH_DEBUG").is_some() {
                    eprintln!(
                        "async wake: {} slice timeouts, {} capped waits",
                        rx.slice_timeouts(),
                        rx.capped_waits()
                    );
                }
                Ok::<_, BoxError>(())
            })?;
            Ok(h)
        })())
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        let opts = async_options(run.len).direction(Direction::ConnectorToListener);
        wake_peer_with(ctx, run, &opts)
    }
}

/// Round trips from async handles in a tokio runtime (send, then await the
/// echo), against a blocking echo: while both keep pace the readiness path
/// is never taken, so this should match the blocking "memtube default".
pub struct AsyncRoundTrip;

impl Bench for AsyncRoundTrip {
    fn main(&self, ctx: &mut Ctx, run: Run, _: Option<usize>) -> Result<Measured, BoxError> {
        lat((|| {
            let listener = ctx.listener.as_ref().ok_or("no listener")?;
            let conn = listener.accept_with(&async_options(run.len).duplex(true), Some(TIMEOUT))?;
            let (Some(tx), Some(rx)) = conn.into_split() else {
                return Err("duplex connection without two rings".into());
            };
            let rt = runtime()?;
            rt.block_on(async {
                let mut tx = memtube::tokio::AsyncSender::new(tx)?;
                let mut rx = memtube::tokio::AsyncReceiver::new(rx)?;
                let mut payload = vec![0xa5u8; run.len];
                // As `time_round_trips`: one clock read per round trip, the
                // first tenth not recorded.
                let warm = run.count / 10;
                let mut h = histogram();
                let mut prev = Instant::now();
                for s in 0..run.count {
                    payload[..8].copy_from_slice(&s.to_ne_bytes());
                    tx.send(&payload, 7).await?;
                    let m = rx.recv().await?;
                    if m.len() != run.len || m[..8] != s.to_ne_bytes() {
                        return Err(format!("memtube async echo mismatch at {s}").into());
                    }
                    drop(m);
                    let now = Instant::now();
                    if s >= warm {
                        h.saturating_record((now - prev).as_nanos() as u64);
                    }
                    prev = now;
                }
                Ok::<_, BoxError>(h)
            })
        })())
    }

    fn peer(&self, ctx: &mut Ctx, run: Run) -> Result<(), BoxError> {
        let opts = async_options(run.len).duplex(true);
        let conn = memtube::connect(ctx.addr.as_str(), &opts)?;
        let (Some(mut tx), Some(mut rx)) = conn.into_split() else {
            return Err("duplex connection without two rings".into());
        };
        for _ in 0..run.count {
            let m = rx.recv_timeout(TIMEOUT)?;
            tx.send_timeout(&m, m.type_id(), TIMEOUT)?;
        }
        Ok(())
    }
}
