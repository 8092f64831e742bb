//! Laying a ring over memory, attaching to it, and watching it.

use crate::data::Data;
use crate::error::Error;
use crate::layout::*;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::wait::Wait;
use crate::{Consumer, Holder, Producer};
use core::marker::PhantomData;

/// How to lay out a new ring.
///
/// ```
/// let c = memtube_ring::Config::new(4096).pure_spin(true);
/// assert_eq!(c.capacity(), 4096);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    capacity: u32,
    pure_spin: bool,
}

impl Config {
    /// A ring whose data area holds `capacity` bytes (a power of two in
    /// [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`]), in the default spin-then-sleep mode.
    pub const fn new(capacity: u32) -> Self {
        Config {
            capacity,
            pure_spin: false,
        }
    }

    /// Pure-spin mode: blocked handles only spin, never sleep, so publishing
    /// skips even the load of the peer's sleep flag. Both sides obey the mode
    /// recorded in the region.
    pub const fn pure_spin(mut self, yes: bool) -> Self {
        self.pure_spin = yes;
        self
    }

    /// The data-area size in bytes.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Whether pure-spin mode is selected.
    pub const fn is_pure_spin(&self) -> bool {
        self.pure_spin
    }
}

/// A raw shared region: a pointer and a length, plus, for the split layout, a
/// second region holding the consumer block.
///
/// Building one is safe; the `unsafe` functions that use it ([`init`],
/// [`attach_producer`], [`attach_consumer`], [`Monitor::attach`]) state what
/// the memory must be.
#[derive(Clone, Copy, Debug)]
pub struct RawRegion {
    ptr: *mut u8,
    len: usize,
    consumer: Option<(*mut u8, usize)>,
}

impl RawRegion {
    /// The region `ptr..ptr + len`, holding the whole ring (single-region layout).
    pub const fn new(ptr: *mut u8, len: usize) -> Self {
        RawRegion {
            ptr,
            len,
            consumer: None,
        }
    }

    /// Use the split layout: the consumer block (its released position, sleep
    /// flag and counters) lives at `ptr..ptr + len` (at least
    /// [`CONSUMER_BLOCK_SIZE`] bytes, [`REGION_ALIGN`]-aligned; a page of its
    /// own if a shim is to map it read-only for the producer). The consumer
    /// then never writes to the main region.
    pub const fn with_consumer_block(mut self, ptr: *mut u8, len: usize) -> Self {
        self.consumer = Some((ptr, len));
        self
    }
}

/// An aligned buffer for a ring in a `static` or on the stack.
///
/// ```
/// use memtube_ring::{RegionBuf, region_size};
/// static mut BUF: RegionBuf<{ region_size(1024).unwrap() }> = RegionBuf::new();
/// ```
#[repr(C, align(128))]
pub struct RegionBuf<const N: usize>(pub [u8; N]);

impl<const N: usize> RegionBuf<N> {
    /// A zeroed buffer.
    pub const fn new() -> Self {
        RegionBuf([0; N])
    }

    /// The whole buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for RegionBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The parts of a validated region that handles use, with the header values
/// copied out once.
pub(crate) struct Shared<'a> {
    pub(crate) prod: &'a ProducerBlock,
    pub(crate) cons: &'a ConsumerBlock,
    pub(crate) data: Data,
    pub(crate) capacity: u32,
    pub(crate) max_payload: u32,
    pub(crate) pure_spin: bool,
    pub(crate) _region: PhantomData<&'a mut [u8]>,
}

fn check_capacity(capacity: u32) -> Result<(), Error> {
    if capacity_is_valid(capacity) {
        Ok(())
    } else {
        Err(Error::BadCapacity(capacity))
    }
}

fn check_region(region: &RawRegion, needed: usize) -> Result<(), Error> {
    if region.ptr.is_null() || region.ptr as usize % REGION_ALIGN != 0 {
        return Err(Error::Misaligned);
    }
    if region.len < needed {
        return Err(Error::RegionTooSmall {
            needed,
            len: region.len,
        });
    }
    if let Some((p, l)) = region.consumer {
        if p.is_null() || p as usize % REGION_ALIGN != 0 {
            return Err(Error::Misaligned);
        }
        if l < CONSUMER_BLOCK_SIZE {
            return Err(Error::RegionTooSmall {
                needed: CONSUMER_BLOCK_SIZE,
                len: l,
            });
        }
    }
    Ok(())
}

#[cfg(not(loom))]
/// Lay a new, empty ring over `region`.
///
/// Writes the control block (and the consumer block of the split layout) and
/// the first record header; the rest of the data area may hold anything.
/// The magic number is stored last, with Release ordering, so a process that
/// attaches and sees it sees a complete header.
///
/// # Safety
///
/// - `region`'s memory (both parts, for the split layout) must be valid for
///   reads and writes of its length;
/// - nothing else may access it during the call (in particular no handle may
///   be attached to an earlier ring in it).
pub unsafe fn init(region: RawRegion, config: Config) -> Result<(), Error> {
    check_capacity(config.capacity)?;
    // `check_capacity` passed, so the size exists.
    let needed = DATA_OFFSET + config.capacity as usize;
    check_region(&region, needed)?;
    let split = region.consumer.is_some();
    // SAFETY: the caller guarantees exclusive access to `len >= CONTROL_SIZE`
    // bytes at `ptr`; zero bytes are a valid `ControlBlock` (all atomics).
    unsafe { core::ptr::write_bytes(region.ptr, 0, CONTROL_SIZE) };
    if let Some((p, _)) = region.consumer {
        // SAFETY: as above, for the `>= CONSUMER_BLOCK_SIZE` consumer region.
        unsafe { core::ptr::write_bytes(p, 0, CONSUMER_BLOCK_SIZE) };
    }
    // SAFETY: the first record header lies inside the data area (capacity >= 64).
    unsafe { core::ptr::write_bytes(region.ptr.add(DATA_OFFSET), 0, RECORD_HEADER as usize) };
    // SAFETY: aligned (checked) and at least CONTROL_SIZE bytes, valid for reads
    // and writes; `ControlBlock` is made of atomics only.
    let cb = unsafe { &*(region.ptr as *const ControlBlock) };
    let h = &cb.header;
    h.version.store(VERSION, Relaxed);
    let mut flags = 0;
    if config.pure_spin {
        flags |= FLAG_PURE_SPIN;
    }
    if split {
        flags |= FLAG_SPLIT;
    }
    h.flags.store(flags, Relaxed);
    h.capacity.store(config.capacity, Relaxed);
    h.max_payload.store(max_payload(config.capacity), Relaxed);
    h.data_offset.store(DATA_OFFSET as u32, Relaxed);
    h.consumer_offset.store(
        if split {
            0
        } else {
            CONSUMER_BLOCK_OFFSET as u32
        },
        Relaxed,
    );
    // SYNC POINT: Release; pairs with the Acquire load of the magic in `open`.
    h.magic.store(MAGIC, Release);
    Ok(())
}

#[cfg(not(loom))]
/// Validate an initialized region and copy its header out.
///
/// # Safety
/// As for [`attach_producer`].
pub(crate) unsafe fn open<'a>(region: RawRegion) -> Result<(&'a ControlBlock, Shared<'a>), Error> {
    check_region(&region, CONTROL_SIZE)?;
    // SAFETY: aligned, at least CONTROL_SIZE bytes (checked), valid for reads
    // for 'a (caller); atomics accept any bytes.
    let cb = unsafe { &*(region.ptr as *const ControlBlock) };
    let h = &cb.header;
    // SYNC POINT: Acquire; pairs with the Release store of the magic in `init`.
    if h.magic.load(Acquire) != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = h.version.load(Relaxed);
    if version != VERSION {
        return Err(Error::VersionMismatch {
            found: version,
            expected: VERSION,
        });
    }
    let flags = h.flags.load(Relaxed);
    let capacity = h.capacity.load(Relaxed);
    let max = h.max_payload.load(Relaxed);
    let data_offset = h.data_offset.load(Relaxed);
    let consumer_offset = h.consumer_offset.load(Relaxed);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Error::LayoutMismatch);
    }
    check_capacity(capacity)?;
    if max != max_payload(capacity) || data_offset as usize != DATA_OFFSET {
        return Err(Error::LayoutMismatch);
    }
    let needed = DATA_OFFSET + capacity as usize;
    if region.len < needed {
        return Err(Error::RegionTooSmall {
            needed,
            len: region.len,
        });
    }
    let split = flags & FLAG_SPLIT != 0;
    let cons: &ConsumerBlock = match (split, region.consumer) {
        (true, Some((p, _))) if consumer_offset == 0 => {
            // SAFETY: aligned and at least CONSUMER_BLOCK_SIZE bytes (checked),
            // valid for 'a (caller); atomics accept any bytes.
            unsafe { &*(p as *const ConsumerBlock) }
        }
        (false, None) if consumer_offset as usize == CONSUMER_BLOCK_OFFSET => &cb.consumer,
        _ => return Err(Error::LayoutMismatch),
    };
    // SAFETY: the data area `DATA_OFFSET..DATA_OFFSET + capacity` is inside the
    // region (length checked above), 128-aligned, valid for 'a (caller).
    let data = unsafe {
        Data::new(
            core::ptr::NonNull::new_unchecked(region.ptr.add(DATA_OFFSET)),
            capacity,
        )
    };
    Ok((
        cb,
        Shared {
            prod: &cb.producer,
            cons,
            data,
            capacity,
            max_payload: max,
            pure_spin: flags & FLAG_PURE_SPIN != 0,
            _region: PhantomData,
        },
    ))
}

pub(crate) fn claim(state: &crate::sync::AtomicU32) -> Result<(), Error> {
    // Not on the hot path: a compare-exchange decides between two claimants.
    state
        .compare_exchange(STATE_FREE, STATE_ATTACHED, Acquire, Relaxed)
        .map(|_| ())
        .map_err(|_| Error::RoleTaken)
}

#[cfg(not(loom))]
/// Attach to an initialized ring as its producer.
///
/// Validates the header (magic, version, flags, capacity, derived fields,
/// region length, split or not) and claims the producer role; a second claim
/// fails with [`Error::RoleTaken`]. The producer never writes the consumer block.
///
/// # Safety
///
/// - `region` must have been initialized by [`init`] (in this or another
///   process; otherwise attaching fails or, if a peer forged it, the ring
///   merely reports corruption later);
/// - its memory must stay valid for reads and writes (the consumer block: for
///   reads) for `'a`, the lifetime of the returned handle;
/// - the memory may be shared with other processes, but in this process it
///   must be accessed only through ring-core handles while they exist.
pub unsafe fn attach_producer<'a, W: Wait>(
    region: RawRegion,
    wait: W,
) -> Result<Producer<'a, W>, Error> {
    // SAFETY: forwarded contract.
    let (_, sh) = unsafe { open(region)? };
    claim(&sh.prod.wait.state)?;
    Ok(Producer::new(sh, wait))
}

#[cfg(not(loom))]
/// Attach to an initialized ring as its consumer.
///
/// Validates as [`attach_producer`] does and claims the consumer role. In the
/// split layout the consumer writes only the consumer block, so the main
/// region may be mapped read-only for it.
///
/// # Safety
///
/// As for [`attach_producer`], except that the main region need only be valid
/// for reads in the split layout (the consumer block must be writable).
pub unsafe fn attach_consumer<'a, W: Wait>(
    region: RawRegion,
    wait: W,
) -> Result<Consumer<'a, W>, Error> {
    // SAFETY: forwarded contract.
    let (_, sh) = unsafe { open(region)? };
    claim(&sh.cons.wait.state)?;
    Ok(Consumer::new(sh, wait))
}

#[cfg(not(loom))]
/// Lay a ring over memory this thread owns and return both handles.
///
/// The handles borrow `region` and are `Send`: move one to another thread.
/// `region` must be [`REGION_ALIGN`]-aligned and at least
/// [`region_size`]`(capacity)` bytes; [`RegionBuf`] provides such memory.
///
/// ```
/// use memtube_ring::{split, Config, RegionBuf, SpinWait, region_size};
/// let mut buf = RegionBuf::<{ region_size(1024).unwrap() }>::new();
/// let (mut tx, mut rx) = split(buf.as_mut_slice(), Config::new(1024), SpinWait::std()).unwrap();
/// tx.try_send(b"hello", 7).unwrap();
/// let msg = rx.try_recv().unwrap();
/// assert_eq!((msg.type_id(), msg.payload()), (7, &b"hello"[..]));
/// ```
pub fn split<W: Wait + Clone>(
    region: &mut [u8],
    config: Config,
    wait: W,
) -> Result<(Producer<'_, W>, Consumer<'_, W>), Error> {
    let raw = RawRegion::new(region.as_mut_ptr(), region.len());
    // SAFETY: the exclusive borrow of `region` gives us sole access to valid
    // memory for the lifetime of both handles, which borrow it.
    unsafe {
        init(raw, config)?;
        Ok((
            attach_producer(raw, wait.clone())?,
            attach_consumer(raw, wait)?,
        ))
    }
}

#[cfg(not(loom))]
/// Like [`split`], with the consumer block in a second region (the split
/// layout a shim uses to isolate the two sides' pages).
///
/// ```
/// use memtube_ring::{split_with_consumer_block, Config, RegionBuf, SpinWait, region_size};
/// let mut main = RegionBuf::<{ region_size(256).unwrap() }>::new();
/// let mut cons = RegionBuf::<{ memtube_ring::CONSUMER_BLOCK_SIZE }>::new();
/// let (mut tx, mut rx) = split_with_consumer_block(
///     main.as_mut_slice(), cons.as_mut_slice(), Config::new(256), SpinWait::std()).unwrap();
/// tx.try_send(&[1, 2, 3], 0).unwrap();
/// assert_eq!(rx.try_recv().unwrap().payload(), &[1, 2, 3]);
/// ```
pub fn split_with_consumer_block<'a, W: Wait + Clone>(
    region: &'a mut [u8],
    consumer_block: &'a mut [u8],
    config: Config,
    wait: W,
) -> Result<(Producer<'a, W>, Consumer<'a, W>), Error> {
    let raw = RawRegion::new(region.as_mut_ptr(), region.len())
        .with_consumer_block(consumer_block.as_mut_ptr(), consumer_block.len());
    // SAFETY: as in `split`, for both exclusively borrowed regions.
    unsafe {
        init(raw, config)?;
        Ok((
            attach_producer(raw, wait.clone())?,
            attach_consumer(raw, wait)?,
        ))
    }
}

/// The state of one side's role, as recorded in the region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RoleState {
    /// Nobody has claimed the role.
    #[default]
    Free,
    /// A handle holds the role (or held it and died without closing).
    Attached,
    /// The handle was dropped.
    Closed,
    /// A value the protocol never writes (a corrupt region).
    Invalid(u32),
}

impl RoleState {
    fn from_word(w: u32) -> Self {
        match w {
            STATE_FREE => RoleState::Free,
            STATE_ATTACHED => RoleState::Attached,
            STATE_CLOSED => RoleState::Closed,
            other => RoleState::Invalid(other),
        }
    }
}

/// Counters and role states read from the control block. Each field is read
/// with a separate relaxed load, so a snapshot taken while the ring runs is
/// not atomic: each counter is exact at some moment and never goes
/// backwards, but two counters may come from different moments (on a weakly
/// ordered CPU, `messages_released` may already count a message whose bytes
/// `bytes_released` does not yet; a monitor that needs a pair to agree reads
/// again until it does, or compares snapshots over time). Counters are
/// published lazily (at each publication or release), so they may lag by
/// one batch. Keeping them consistent would cost the hot path a sequence
/// lock; nothing in memtube needs that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Messages the producer has published.
    pub messages_committed: u64,
    /// Payload bytes the producer has published.
    pub bytes_committed: u64,
    /// Times a reservation (blocking or not) found the ring full on its first try.
    pub full_events: u64,
    /// Wake calls the producer made (the consumer had announced sleep).
    pub producer_wakes: u64,
    /// Messages the consumer has released.
    pub messages_released: u64,
    /// Payload bytes the consumer has released.
    pub bytes_released: u64,
    /// Wake calls the consumer made (the producer had announced sleep).
    pub consumer_wakes: u64,
    /// The producer role's state.
    pub producer: RoleState,
    /// The consumer role's state.
    pub consumer: RoleState,
    /// Who holds (or last held) the producer role, if it was recorded.
    pub producer_holder: Option<Holder>,
    /// Who holds (or last held) the consumer role, if it was recorded.
    pub consumer_holder: Option<Holder>,
}

pub(crate) fn read_stats(prod: &ProducerBlock, cons: &ConsumerBlock) -> Stats {
    Stats {
        messages_committed: prod.hot.messages.load(Relaxed),
        bytes_committed: prod.hot.bytes.load(Relaxed),
        full_events: prod.hot.full.load(Relaxed),
        producer_wakes: prod.hot.wakes.load(Relaxed),
        messages_released: cons.hot.messages.load(Relaxed),
        bytes_released: cons.hot.bytes.load(Relaxed),
        consumer_wakes: cons.hot.wakes.load(Relaxed),
        producer: RoleState::from_word(prod.wait.state.load(Relaxed)),
        consumer: RoleState::from_word(cons.wait.state.load(Relaxed)),
        producer_holder: Holder::read(&prod.wait),
        consumer_holder: Holder::read(&cons.wait),
    }
}

/// A read-only observer of a ring: reads counters and role states without
/// claiming a role or writing anything, so it never slows the hot path beyond
/// the cache-line reads themselves.
pub struct Monitor<'a> {
    prod: &'a ProducerBlock,
    cons: &'a ConsumerBlock,
    capacity: u32,
}

impl<'a> Monitor<'a> {
    #[cfg(not(loom))]
    /// Observe an initialized ring.
    ///
    /// # Safety
    ///
    /// `region` (both parts for the split layout) must be valid for reads for
    /// `'a`. It may be mapped read-only.
    pub unsafe fn attach(region: RawRegion) -> Result<Self, Error> {
        // SAFETY: forwarded contract; `open` only reads.
        let (_, sh) = unsafe { open(region)? };
        Ok(Monitor {
            prod: sh.prod,
            cons: sh.cons,
            capacity: sh.capacity,
        })
    }

    /// A snapshot of the counters and role states.
    pub fn stats(&self) -> Stats {
        read_stats(self.prod, self.cons)
    }

    /// The ring's data-area capacity in bytes.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

#[cfg(loom)]
pub(crate) fn loom_shared(capacity: u32, pure_spin: bool) -> (Shared<'static>, Shared<'static>) {
    extern crate std;
    use std::boxed::Box;
    let cb: &'static ControlBlock = Box::leak(Box::new(ControlBlock {
        header: HeaderLine {
            magic: crate::sync::AtomicU64::new(MAGIC),
            version: crate::sync::AtomicU32::new(VERSION),
            flags: crate::sync::AtomicU32::new(0),
            capacity: crate::sync::AtomicU32::new(capacity),
            max_payload: crate::sync::AtomicU32::new(max_payload(capacity)),
            data_offset: crate::sync::AtomicU32::new(DATA_OFFSET as u32),
            consumer_offset: crate::sync::AtomicU32::new(CONSUMER_BLOCK_OFFSET as u32),
        },
        producer: ProducerBlock {
            hot: ProducerHot {
                messages: crate::sync::AtomicU64::new(0),
                bytes: crate::sync::AtomicU64::new(0),
                full: crate::sync::AtomicU64::new(0),
                wakes: crate::sync::AtomicU64::new(0),
            },
            wait: WaitLine {
                state: crate::sync::AtomicU32::new(STATE_ATTACHED),
                sleeping: crate::sync::AtomicU32::new(0),
                seq: crate::sync::AtomicU32::new(0),
                wflags: crate::sync::AtomicU32::new(0),
                holder: crate::sync::AtomicU64::new(0),
            },
        },
        consumer: ConsumerBlock {
            hot: ConsumerHot {
                released: crate::sync::AtomicU32::new(0),
                _reserved: crate::sync::AtomicU32::new(0),
                messages: crate::sync::AtomicU64::new(0),
                bytes: crate::sync::AtomicU64::new(0),
                wakes: crate::sync::AtomicU64::new(0),
            },
            wait: WaitLine {
                state: crate::sync::AtomicU32::new(STATE_ATTACHED),
                sleeping: crate::sync::AtomicU32::new(0),
                seq: crate::sync::AtomicU32::new(0),
                wflags: crate::sync::AtomicU32::new(0),
                holder: crate::sync::AtomicU64::new(0),
            },
        },
    }));
    let data = Data::new_loom(capacity);
    let p = Shared {
        prod: &cb.producer,
        cons: &cb.consumer,
        data,
        capacity,
        max_payload: max_payload(capacity),
        pure_spin,
        _region: PhantomData,
    };
    // Both sides see the same leaked storage.
    let c = Shared {
        prod: &cb.producer,
        cons: &cb.consumer,
        data: p.data.clone_loom(),
        capacity,
        max_payload: max_payload(capacity),
        pure_spin,
        _region: PhantomData,
    };
    (p, c)
}
