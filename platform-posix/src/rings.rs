//! Laying the rings over fresh regions (the listener) and mapping received
//! ones (the connector), with the isolation rules: each side maps writable
//! only the pages it writes.

use crate::error::{Error, HandshakeFailure, Result};
use crate::options::{Direction, Options};
use crate::region::{Mapping, NewRegion};
use crate::wake::{self, ConnWait};
use crate::Os;
use memtube_ring::handshake::{
    Handshake, RingDesc, Side, CONSUMER_REGION_MIN, HS_HUGE_PAGES, HUGE_PAGE_ALIGN, NO_FD,
};
use memtube_ring::{Config, Consumer, Producer, RawRegion};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

/// The mappings of one ring in this process. The handle that borrows them
/// is dropped first (it is declared before this in every owner).
#[derive(Debug)]
pub(crate) struct RingMaps {
    pub(crate) main: Mapping,
    pub(crate) cons: Option<Mapping>,
    /// A descriptor of each region (main, then consumer block), kept open
    /// for as long as the ring is mapped so that a monitor of the same user
    /// (`memtube top`) can open the region read-only through
    /// `/proc/<pid>/fd`: an unprivileged process cannot open another one's
    /// mapping (`/proc/<pid>/map_files` needs `CAP_CHECKPOINT_RESTORE`).
    /// Best effort: empty if duplicating failed, or without
    /// [`Options::monitorable`]. Never used otherwise.
    _fds: Vec<OwnedFd>,
    /// With [`Options::readiness`]: this side's ends of the ring's wake
    /// channels (readable end, sending end), taken by the handle.
    pub(crate) wake: Option<(OwnedFd, OwnedFd)>,
}

/// Duplicates (close-on-exec) of `fds` for [`RingMaps`]; those that cannot
/// be duplicated (descriptor limit) are left out: the ring works without them.
fn keep_fds<'a>(opts: &Options, fds: impl IntoIterator<Item = BorrowedFd<'a>>) -> Vec<OwnedFd> {
    if !opts.monitorable {
        return Vec::new();
    }
    fds.into_iter()
        .filter_map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 0).ok())
        .collect()
}

impl RingMaps {
    fn raw(&self) -> RawRegion {
        let r = RawRegion::new(self.main.as_ptr(), self.main.len());
        match &self.cons {
            Some(c) => r.with_consumer_block(c.as_ptr(), c.len()),
            None => r,
        }
    }

    fn lock(&self) -> Result<()> {
        self.main.lock()?;
        if let Some(c) = &self.cons {
            c.lock()?;
        }
        Ok(())
    }

    /// Check the ring's header (magic, version, layout, capacity) without
    /// claiming a role: reads the header line only.
    fn validate(&self) -> Result<()> {
        // SAFETY: the mappings are live and readable for the duration of
        // the call; the monitor only reads, and is dropped before returning.
        match unsafe { memtube_ring::Monitor::attach(self.raw()) } {
            Ok(_) => Ok(()),
            Err(e) => Err(HandshakeFailure::Attach(e).into()),
        }
    }

    /// Attach as producer, for as long as `self` lives.
    pub(crate) fn producer<O: Os>(
        &self,
        wake_tx: Option<OwnedFd>,
    ) -> Result<Producer<'static, ConnWait<O>>> {
        let w = ConnWait::<O>::new(wake_tx);
        // SAFETY: the region was initialized by `memtube_ring::init` (by us, or
        // validated by ring-core now if the peer did); the mappings are live
        // shared memory of the right lengths (main writable, consumer block
        // readable) and stay mapped until this `RingMaps` drops, which every
        // owner does only after dropping the returned handle (field order);
        // this process touches the memory only through ring-core handles.
        // The holder (this process) is recorded for monitors (`memtube top`
        // tells the producer's pid by it); not recorded where the system
        // will not say when this process started.
        unsafe {
            match crate::holder::try_this_process::<O>() {
                Some(h) => memtube_ring::attach_producer_as(self.raw(), w, h),
                None => memtube_ring::attach_producer(self.raw(), w),
            }
        }
        .map_err(Error::from)
    }

    /// Attach as consumer, for as long as `self` lives.
    pub(crate) fn consumer<O: Os>(
        &self,
        wake_tx: Option<OwnedFd>,
    ) -> Result<Consumer<'static, ConnWait<O>>> {
        let w = ConnWait::<O>::new(wake_tx);
        // SAFETY: as in `producer`; with the split layout the main region
        // needs only be readable and the consumer block is mapped writable.
        // The holder is recorded as in `producer`.
        unsafe {
            match crate::holder::try_this_process::<O>() {
                Some(h) => memtube_ring::attach_consumer_as(self.raw(), w, h),
                None => memtube_ring::attach_consumer(self.raw(), w),
            }
        }
        .map_err(Error::from)
    }
}

/// Which rings a connection has, and which of them this side (the listener
/// if `listener`) produces: `(ring index, we produce)`.
pub(crate) fn sides(opts: &Options) -> Vec<Side> {
    if opts.duplex {
        vec![Side::Sender, Side::Receiver]
    } else {
        match opts.direction {
            Direction::ListenerToConnector => vec![Side::Sender],
            Direction::ConnectorToListener => vec![Side::Receiver],
        }
    }
}

fn main_len(cap: u32, huge: bool) -> Result<u64> {
    let n = memtube_ring::region_size(cap)
        .ok_or(Error::Ring(memtube_ring::Error::BadCapacity(cap)))? as u64;
    Ok(if huge {
        n.div_ceil(HUGE_PAGE_ALIGN) * HUGE_PAGE_ALIGN
    } else {
        n
    })
}

/// The listener's side: create, lay out and seal the rings.
pub(crate) struct Created {
    pub(crate) hs: Handshake,
    pub(crate) fds: Vec<OwnedFd>,
    /// Per ring: its mappings here and whether we (the listener) produce it.
    pub(crate) ours: Vec<(RingMaps, bool)>,
}

pub(crate) fn create<O: Os>(opts: &Options) -> Result<Created> {
    let cap = opts.capacity;
    let huge = opts.huge_pages;
    let split = opts.isolation;
    let backend = opts.backend_for::<O>();
    let len = main_len(cap, huge)?;
    let mut fds = Vec::new();
    let mut descs = Vec::new();
    let mut ours = Vec::new();
    for side in sides(opts) {
        let we_produce = side == Side::Sender;
        let main = NewRegion::create::<O>(backend, c"memtube-ring", len, huge)?;
        let main_rw = Mapping::new::<O>(main.rw.as_fd(), len as usize, true, huge)?;
        let cons = if split {
            let r =
                NewRegion::create::<O>(backend, c"memtube-consumer", CONSUMER_REGION_MIN, false)?;
            let m = Mapping::new::<O>(r.rw.as_fd(), CONSUMER_REGION_MIN as usize, true, false)?;
            Some((r, m))
        } else {
            None
        };
        let mut raw = RawRegion::new(main_rw.as_ptr(), main_rw.len());
        if let Some((_, m)) = &cons {
            raw = raw.with_consumer_block(m.as_ptr(), m.len());
        }
        // SAFETY: both mappings are fresh, writable, of the lengths given,
        // and nothing else in any process can reach them yet.
        unsafe { memtube_ring::init(raw, Config::new(cap).pure_spin(opts.pure_spin)) }?;
        let main_fd;
        let maps = match cons {
            None => {
                // Single region: both sides write it.
                main_fd = main.finish::<O>(true)?;
                RingMaps {
                    main: main_rw,
                    cons: None,
                    _fds: keep_fds(opts, [main_fd.as_fd()]),
                    wake: None,
                }
            }
            Some((cons, cons_rw)) => {
                // The peer gets write access only to what it writes (memfd:
                // sealed, enforced; shm: a read-only descriptor); we keep
                // only read access to the rest.
                let main_fd = main.finish::<O>(!we_produce)?;
                let cfd = cons.finish::<O>(we_produce)?;
                let kept = keep_fds(opts, [main_fd.as_fd(), cfd.as_fd()]);
                let maps = if we_produce {
                    drop(cons_rw);
                    let ro =
                        Mapping::new::<O>(cfd.as_fd(), CONSUMER_REGION_MIN as usize, false, false)?;
                    RingMaps {
                        main: main_rw,
                        cons: Some(ro),
                        _fds: kept,
                        wake: None,
                    }
                } else {
                    drop(main_rw);
                    let ro = Mapping::new::<O>(main_fd.as_fd(), len as usize, false, huge)?;
                    RingMaps {
                        main: ro,
                        cons: Some(cons_rw),
                        _fds: kept,
                        wake: None,
                    }
                };
                let ci = fds.len() as u32 + 1;
                fds.push(main_fd);
                fds.push(cfd);
                descs.push(RingDesc {
                    capacity: cap,
                    producer: side,
                    main_fd: ci - 1,
                    consumer_fd: ci,
                    main_len: len,
                    consumer_len: CONSUMER_REGION_MIN,
                });
                if opts.mlock {
                    maps.lock()?;
                }
                ours.push((maps, we_produce));
                continue;
            }
        };
        descs.push(RingDesc {
            capacity: cap,
            producer: side,
            main_fd: fds.len() as u32,
            consumer_fd: NO_FD,
            main_len: len,
            consumer_len: 0,
        });
        fds.push(main_fd);
        if opts.mlock {
            maps.lock()?;
        }
        ours.push((maps, we_produce));
    }
    if opts.readiness {
        // The wake channels, after every region descriptor, two per ring:
        // the peer's readable end, then its sending end.
        for (maps, _) in &mut ours {
            let ch = wake::pair::<O>()?;
            maps.wake = Some(ch.ours);
            fds.push(ch.theirs.0);
            fds.push(ch.theirs.1);
        }
    }
    let mut hs = match descs.as_slice() {
        [a] => Handshake::simplex(*a, opts.pure_spin),
        [a, b] => Handshake::duplex(*a, *b, opts.pure_spin),
        _ => unreachable!("one or two rings"),
    };
    if huge {
        hs.flags |= HS_HUGE_PAGES;
    }
    if opts.readiness {
        hs = hs.with_wake_channels();
    }
    Ok(Created { hs, fds, ours })
}

/// The connector's side: check the handshake against our options and map
/// each ring; returns `(mappings, we produce)` per ring.
pub(crate) fn map_received<O: Os>(
    hs: &Handshake,
    fds: &[OwnedFd],
    opts: &Options,
) -> Result<Vec<(RingMaps, bool)>> {
    if hs.is_duplex() != opts.duplex {
        return Err(HandshakeFailure::Mismatch("duplex").into());
    }
    if hs.has_wake_channels() != opts.readiness {
        return Err(HandshakeFailure::Mismatch("readiness").into());
    }
    let rings = hs.rings();
    if !opts.duplex && rings[0].producer != sides(opts)[0] {
        return Err(HandshakeFailure::Mismatch("direction").into());
    }
    let huge = hs.is_huge_pages();
    // The listener chose the rings: refuse any larger than we accept before
    // mapping anything (a sparse memfd costs the sender nothing).
    let max = opts.get_max_capacity();
    if let Some(r) = rings.iter().find(|r| r.capacity > max) {
        return Err(HandshakeFailure::CapacityTooLarge {
            claimed: r.capacity,
            max,
        }
        .into());
    }
    let mut out = Vec::new();
    for r in rings {
        let we_produce = r.producer == Side::Receiver;
        let split = r.consumer_fd != NO_FD;
        // Mapped lazily, checked, then faulted in: a region whose header is
        // invalid costs one page, not the whole ring.
        let main = Mapping::new_lazy::<O>(
            fds[r.main_fd as usize].as_fd(),
            usize::try_from(r.main_len).map_err(|_| Error::Os(rustix::io::Errno::NOMEM))?,
            !split || we_produce,
            huge,
        )?;
        let cons = if split {
            Some(Mapping::new::<O>(
                fds[r.consumer_fd as usize].as_fd(),
                r.consumer_len as usize,
                !we_produce,
                false,
            )?)
        } else {
            None
        };
        let mut kept = keep_fds(opts, [fds[r.main_fd as usize].as_fd()]);
        if split {
            kept.extend(keep_fds(opts, [fds[r.consumer_fd as usize].as_fd()]));
        }
        // Ring i's wake channel ends follow the regions (checked on receipt).
        let wake = if hs.has_wake_channels() {
            let at = hs.region_fd_count() as usize + 2 * out.len();
            let dup = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 0);
            Some((dup(&fds[at])?, dup(&fds[at + 1])?))
        } else {
            None
        };
        let maps = RingMaps {
            main,
            cons,
            _fds: kept,
            wake,
        };
        maps.validate()?;
        maps.main.populate();
        if opts.mlock {
            maps.lock()?;
        }
        out.push((maps, we_produce));
    }
    Ok(out)
}
