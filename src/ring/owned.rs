//! A ring that owns its region: [`channel`], with `'static` handles that move
//! into `std::thread::spawn`.

use super::{attach_consumer, attach_producer, init, region_size, Config, Consumer, Error};
use super::{Producer, RawRegion, Wait, REGION_ALIGN};
use std::alloc::Layout;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

/// The wait that [`channel`] handles block with: the OS's address wait where
/// memtube has one (a futex on Linux, `os_sync` / `__ulock` on macOS), else
/// [`SpinWait::std`](super::SpinWait::std), which polls and yields.
pub type NativeWait = crate::NativeWait;

/// A zeroed heap allocation holding one ring, freed when the last handle
/// that uses it is dropped.
struct HeapRegion {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the allocation is plain memory that nothing in this process
// accesses except through the ring handles (whose protocol is atomic where
// both sides touch the same bytes); freeing it from any thread is fine.
unsafe impl Send for HeapRegion {}
// SAFETY: `HeapRegion` itself offers no access to the memory.
unsafe impl Sync for HeapRegion {}

impl HeapRegion {
    fn zeroed(len: usize) -> HeapRegion {
        let layout = Layout::from_size_align(len, REGION_ALIGN)
            .expect("region_size is far below isize::MAX and REGION_ALIGN a power of two");
        // SAFETY: `len` is at least the control block's size, so the layout
        // is not zero-sized.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        HeapRegion { ptr, layout }
    }

    fn raw(&self) -> RawRegion {
        RawRegion::new(self.ptr.as_ptr(), self.layout.size())
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this very layout; the handles
        // that used it were dropped before their `Arc` of it (field order).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The writing end of a [`channel`]: a [`Producer`] that keeps its region
/// alive. It dereferences to the [`Producer`], so every producer method
/// (`send`, `try_send`, `reserve`, ...) is available on it.
pub struct OwnedProducer<W: Wait = NativeWait> {
    // Declared first: dropped (closing the ring) before the region is freed.
    inner: Producer<'static, W>,
    _region: Arc<HeapRegion>,
}

/// The reading end of a [`channel`]: a [`Consumer`] that keeps its region
/// alive. It dereferences to the [`Consumer`] (`recv`, `try_recv`, ...).
pub struct OwnedConsumer<W: Wait = NativeWait> {
    // Declared first: dropped before the region is freed.
    inner: Consumer<'static, W>,
    _region: Arc<HeapRegion>,
}

/// A ring of `capacity` bytes (a power of two, at least
/// [`MIN_CAPACITY`](super::MIN_CAPACITY)) in a heap region of its own, for two
/// threads: the handles are `'static` and `Send`, so they move into
/// `std::thread::spawn`. The region is freed when both are dropped.
///
/// The region is allocated zeroed on the heap, never on the stack, so large
/// rings work in debug builds too. Dropping one handle closes the ring: the
/// other side's calls then return [`Error::Closed`] (a consumer after it has
/// received every message sent before).
///
/// ```
/// let (mut tx, mut rx) = memtube::ring::channel(4096)?;
/// let producer = std::thread::spawn(move || {
///     for i in 0u32..100 {
///         tx.send(&i.to_le_bytes(), 1).unwrap(); // blocks while the ring is full
///     }
/// }); // dropping `tx` closes the ring
/// let mut sum = 0;
/// loop {
///     match rx.recv() {
///         Ok(msg) => sum += u32::from_le_bytes(msg.payload().try_into().unwrap()),
///         Err(memtube::ring::Error::Closed) => break,
///         Err(e) => panic!("{e}"),
///     }
/// }
/// producer.join().unwrap();
/// assert_eq!(sum, 4950);
/// # Ok::<(), memtube::ring::Error>(())
/// ```
pub fn channel(capacity: u32) -> Result<(OwnedProducer, OwnedConsumer), Error> {
    channel_with(Config::new(capacity), NativeWait::default())
}

/// [`channel`] with a [`Config`] (for example pure-spin mode) and a
/// [`Wait`] of your choice.
///
/// ```
/// use memtube::ring::{channel_with, Config, SpinWait};
/// let (mut tx, mut rx) = channel_with(Config::new(1024).pure_spin(true), SpinWait::std())?;
/// tx.try_send(b"hi", 2)?;
/// assert_eq!(rx.try_recv()?.payload(), b"hi");
/// # Ok::<(), memtube::ring::Error>(())
/// ```
pub fn channel_with<W: Wait + Clone>(
    config: Config,
    wait: W,
) -> Result<(OwnedProducer<W>, OwnedConsumer<W>), Error> {
    let len = region_size(config.capacity()).ok_or(Error::BadCapacity(config.capacity()))?;
    let region = Arc::new(HeapRegion::zeroed(len));
    let raw = region.raw();
    // SAFETY: the region is a fresh allocation of `len` bytes, aligned to
    // REGION_ALIGN, that nothing else accesses; it stays valid for as long as
    // either handle exists, because each handle holds an `Arc` of it and is
    // dropped before that `Arc` (field order). The `'static` lifetime is
    // therefore never outlived: the handles cannot outlive their own field.
    let (inner_p, inner_c) = unsafe {
        init(raw, config)?;
        (
            attach_producer::<'static, W>(raw, wait.clone())?,
            attach_consumer::<'static, W>(raw, wait)?,
        )
    };
    Ok((
        OwnedProducer {
            inner: inner_p,
            _region: Arc::clone(&region),
        },
        OwnedConsumer {
            inner: inner_c,
            _region: region,
        },
    ))
}

impl<W: Wait> Deref for OwnedProducer<W> {
    type Target = Producer<'static, W>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<W: Wait> DerefMut for OwnedProducer<W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl<W: Wait> Deref for OwnedConsumer<W> {
    type Target = Consumer<'static, W>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<W: Wait> DerefMut for OwnedConsumer<W> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl<W: Wait> fmt::Debug for OwnedProducer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedProducer")
            .field("capacity", &self.inner.capacity())
            .field("consumer_closed", &self.inner.is_consumer_closed())
            .finish_non_exhaustive()
    }
}

impl<W: Wait> fmt::Debug for OwnedConsumer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedConsumer")
            .field("capacity", &self.inner.capacity())
            .field("producer_closed", &self.inner.is_producer_closed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send + 'static>() {}

    #[test]
    fn handles_are_send_and_static() {
        is_send::<OwnedProducer>();
        is_send::<OwnedConsumer>();
    }

    #[test]
    fn bad_capacity_is_an_error() {
        assert_eq!(channel(1000).err(), Some(Error::BadCapacity(1000)));
    }

    #[test]
    fn large_ring_on_the_heap() {
        // 64 MiB: a stack buffer of this size overflows a debug build.
        let (mut tx, mut rx) = channel(1 << 26).unwrap();
        tx.try_send(&[7; 1000], 3).unwrap();
        let m = rx.try_recv().unwrap();
        assert_eq!((m.type_id(), m.payload()), (3, &[7u8; 1000][..]));
    }

    #[test]
    fn either_side_may_be_dropped_first() {
        let (tx, mut rx) = channel(1024).unwrap();
        drop(tx);
        assert_eq!(rx.recv().err(), Some(Error::Closed));
        let (mut tx, rx) = channel(1024).unwrap();
        drop(rx);
        // The ring still has room; a full ring would report Closed.
        while tx.try_send(&[0; 64], 0).is_ok() {}
        assert_eq!(tx.try_send(&[0; 64], 0), Err(Error::Closed));
    }
}
