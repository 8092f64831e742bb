//! Copying a payload into the data area, with cache-bypassing
//! (non-temporal) stores for large payloads on x86-64.
//!
//! A large message's lines are written by one core and read once by
//! another. With ordinary stores they sit modified in the producer's cache,
//! and the consumer fetches each from there, as fast as the two cores are
//! close; non-temporal stores put them in memory, where the consumer's
//! reads and prefetches find them at the same speed wherever the cores are.
//! Measurements: docs/design.md (non-temporal copies).

/// The non-temporal copy threshold producers get by default on AMD (and
/// Hygon) processors (docs/design.md, non-temporal copies).
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))),
    allow(dead_code)
)]
pub(crate) const AMD_NONTEMPORAL_FROM: u32 = 16 * 1024;

/// The non-temporal copy threshold a new [`Producer`](crate::Producer)
/// starts with on this machine (see
/// [`Producer::set_nontemporal_threshold`](crate::Producer::set_nontemporal_threshold)):
/// 16 KiB on AMD and Hygon x86-64 processors, `u32::MAX` (off) everywhere
/// else. Read once (CPUID) and cached. Where it is not `u32::MAX`, a new
/// producer also writes copying sends of 2 KiB or more with non-temporal
/// stores when each starts right after the previous one ended (a stream;
/// see [`Producer::set_nontemporal_threshold`](crate::Producer::set_nontemporal_threshold)).
///
/// The rule comes from measurements on both vendors. On an AMD EPYC (Zen 4)
/// guest, non-temporal stores made 64 KiB messages faster in round trips
/// (6.5 against 9.1 µs) and in streams over rings that fit a core's caches
/// (20 against 8 GB/s; 21–24 against 2–3 GB/s when the two cores were far
/// apart), and 1–4 KiB round trips twice as slow when the cores were close,
/// but 2–4 KiB streams 1.2–1.6 times as fast (3.5 times when they were far
/// apart).
/// On an Intel Xeon (Sapphire Rapids class) guest they made 64 KiB
/// messages slower both ways (streams 10 against 17 GB/s, round trips 13.5
/// against 8.1 µs). Other processors keep ordinary stores. On an AMD EPYC
/// (Zen 3) guest they lost every size between close cores and won as on
/// Zen 4 between far ones; there the distance rule (see
/// [`Producer::set_nontemporal_threshold`](crate::Producer::set_nontemporal_threshold))
/// keeps ordinary stores while the cores are close, over every ring.
///
/// ```
/// let t = memtube_ring::default_nontemporal_threshold();
/// assert!(t == 16 * 1024 || t == u32::MAX);
/// ```
pub fn default_nontemporal_threshold() -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
    {
        use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
        /// 0: not read yet (the rule never gives 0).
        static CACHED: AtomicU32 = AtomicU32::new(0);
        let t = CACHED.load(Relaxed);
        if t != 0 {
            return t;
        }
        let t = if is_amd() {
            AMD_NONTEMPORAL_FROM
        } else {
            u32::MAX
        };
        CACHED.store(t, Relaxed);
        t
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))))]
    {
        u32::MAX
    }
}

/// The smallest payload that back-to-back copying sends (a stream) write
/// with non-temporal stores by default on AMD and Hygon processors, below
/// the non-temporal threshold (docs/design.md, non-temporal copies).
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))),
    allow(dead_code)
)]
pub(crate) const AMD_STREAM_NONTEMPORAL_FROM: u32 = 2 * 1024;

/// A copying send that starts at most this many time-stamp-counter ticks
/// after the previous one ended continues a stream. No round trip is that
/// short: between the end of a send and the start of the next one it waits
/// for the peer to see the message and for its reply, two crossings
/// between cores (the one-line round trip, 120 ns or more on the AMD EPYC
/// measured, 40 ns or more on bare metal); a stream's loop spends 10–30 ns.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))),
    allow(dead_code)
)]
pub(crate) const STREAM_GAP_TICKS: u64 = 96;

/// The stream threshold a new [`Producer`](crate::Producer) starts with:
/// copying sends of at least this many bytes that start right after the
/// previous one ended (a sending loop) use non-temporal stores below
/// [`default_nontemporal_threshold`] too. 2 KiB where that default is on
/// (AMD and Hygon), `u32::MAX` (no stream rule) elsewhere. Setting a
/// threshold ([`Producer::set_nontemporal_threshold`](crate::Producer::set_nontemporal_threshold))
/// replaces both.
///
/// ```
/// let s = memtube_ring::default_stream_nontemporal_threshold();
/// let t = memtube_ring::default_nontemporal_threshold();
/// assert!(s == u32::MAX && t == u32::MAX || s == 2048 && t == 16 * 1024);
/// ```
pub fn default_stream_nontemporal_threshold() -> u32 {
    if default_nontemporal_threshold() == u32::MAX {
        u32::MAX
    } else {
        AMD_STREAM_NONTEMPORAL_FROM
    }
}

/// The time-stamp counter (x86-64; 0 elsewhere, where no stream rule is
/// on). Constant-rate on every processor the stream rule is on for.
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
    {
        // SAFETY: RDTSC exists on every x86-64 processor; it only reads
        // the counter.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))))]
    {
        0
    }
}

/// The time-stamp counter after every earlier instruction has completed
/// and before any later one starts (`lfence; rdtsc; lfence`): two of these
/// around a load time that load (the distance rule; x86-64, 0 elsewhere).
#[inline(always)]
pub(crate) fn ticks_fenced() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
    {
        // SAFETY: LFENCE exists with SSE2 (this block's condition) and
        // RDTSC on every x86-64 processor; they only order and read the
        // counter.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_mm_lfence();
            let t = core::arch::x86_64::_rdtsc();
            core::arch::x86_64::_mm_lfence();
            t
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))))]
    {
        0
    }
}

/// A timed read of the consumer's released position that found it moved
/// (so fetched its line from the consumer's core) and took at most this
/// many time-stamp-counter ticks says that core is close: the distance
/// rule (`producer/distance.rs`). On the AMD EPYC (Zen 4) guest measured
/// (TSC 2.6 GHz), such reads (timed with [`ticks_fenced`]) took 32–191
/// ticks, most 128–159, between cores sharing an L3 cache (one-line round
/// trip 120–150 ns), and most 352–415 (the lowest 224 but for a few in a
/// thousand) between the farther pairs (about 400 ns), where ordinary
/// stores of a large message stream mostly at a tenth of non-temporal
/// ones' rate. On the Zen 3 guest (TSC 2.45 GHz), the timed reads of one
/// 64 KiB stream over a 4 MiB ring between close cores (an instrumented
/// build, 64 reads): 4 under 64 ticks, 31 at 64–127, 28 at 128–191, 1 at
/// 192–255; its far level was not sampled.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))),
    allow(dead_code)
)]
pub(crate) const CLOSE_TICKS: u64 = 200;

/// Bytes of this core's L2 cache where the distance rule can be on (AMD
/// and Hygon: CPUID leaf 0x8000_0006), else 0. Read once per process.
pub(crate) fn l2_cache_bytes() -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
    {
        use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
        /// `u32::MAX`: not read yet.
        static CACHED: AtomicU32 = AtomicU32::new(u32::MAX);
        let b = CACHED.load(Relaxed);
        if b != u32::MAX {
            return b;
        }
        let b = if is_amd() {
            // SAFETY: CPUID exists on every x86-64 processor and only reads
            // identification registers; leaf 0x8000_0006 is asked for only
            // when the highest extended leaf (0x8000_0000) includes it.
            #[allow(unused_unsafe)]
            unsafe {
                if core::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0006 {
                    // ECX bits 31..16: L2 size in KiB.
                    (core::arch::x86_64::__cpuid(0x8000_0006).ecx >> 16).saturating_mul(1024)
                } else {
                    0
                }
            }
        } else {
            0
        };
        CACHED.store(b, Relaxed);
        b
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))))]
    {
        0
    }
}

/// Whether, on this processor, copying sends of 2 KiB and more are best
/// written with ordinary stores whenever the consumer's core is close,
/// whatever the ring's size (the distance rule, `producer/distance.rs`,
/// then runs over every ring). True on AMD Zen 3 (family 0x19, models
/// 0x00–0x0F and 0x20–0x5F: Milan, Vermeer, Rembrandt, Cezanne), false on
/// other processors, Zen 4 among them. Read once per process.
///
/// Measured on one guest of each (docs/design.md, non-temporal copies):
/// between close cores of the AMD EPYC Zen 3 guest (model 0x01),
/// non-temporal stores lost at every size and ring (64 KiB round trips
/// 10.0 against 6.8 µs, 64 KiB streams 9.6 against 11.6 GB/s, 4 KiB
/// streams 8.2 against 9.7), while on the Zen 4 guest (model 0x11) they
/// win 64 KiB messages and 2–4 KiB streams over rings its L2 holds. Between
/// far cores both keep the default thresholds.
pub(crate) fn close_ordinary_everywhere() -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
    {
        use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
        /// 0: not read yet; 1: false; 2: true.
        static CACHED: AtomicU8 = AtomicU8::new(0);
        match CACHED.load(Relaxed) {
            1 => return false,
            2 => return true,
            _ => {}
        }
        let zen3 = is_amd() && {
            // SAFETY: CPUID leaf 1 exists on every x86-64 processor and
            // only reads identification registers.
            #[allow(unused_unsafe)]
            let eax = unsafe { core::arch::x86_64::__cpuid(1).eax };
            is_zen3(eax)
        };
        CACHED.store(if zen3 { 2 } else { 1 }, Relaxed);
        zen3
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))))]
    {
        false
    }
}

/// Whether CPUID leaf 1's EAX (on an AMD processor) names a Zen 3 core:
/// family 0x19 (base 0xF plus extended 0xA), model 0x00–0x0F or
/// 0x20–0x5F.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri))),
    allow(dead_code)
)]
fn is_zen3(eax: u32) -> bool {
    let base_family = (eax >> 8) & 0xF;
    let family = if base_family == 0xF {
        base_family + ((eax >> 20) & 0xFF)
    } else {
        base_family
    };
    let model = ((eax >> 4) & 0xF) | (((eax >> 16) & 0xF) << 4);
    family == 0x19 && (model < 0x10 || (0x20..0x60).contains(&model))
}

/// Whether CPUID names AMD ("AuthenticAMD") or Hygon ("HygonGenuine", a
/// Zen derivative) as the vendor.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
fn is_amd() -> bool {
    // SAFETY: CPUID leaf 0 exists on every x86-64 processor and only
    // reads identification registers.
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid(0) };
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&r.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&r.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&r.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD" || &vendor == b"HygonGenuine"
}

/// Copy `src` to `dst`: the whole 64-byte lines of `dst` with non-temporal
/// stores when `nontemporal` and the target has them (x86-64 with SSE2),
/// everything else with ordinary stores. Either way a later Release store
/// publishes every byte written: after non-temporal stores, which x86
/// orders weakly, an `sfence` makes that hold.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes and not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_in(dst: *mut u8, src: &[u8], nontemporal: bool) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
    if nontemporal {
        // SAFETY: the caller's contract.
        unsafe { copy_nontemporal(dst, src) };
        return;
    }
    let _ = nontemporal;
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
}

/// # Safety
/// As [`copy_in`].
#[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(loom), not(miri)))]
#[inline(never)]
unsafe fn copy_nontemporal(dst: *mut u8, src: &[u8]) {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
    let len = src.len();
    let s = src.as_ptr();
    // Ordinary stores up to the first line boundary of `dst` (the record's
    // header shares that line) and after the last one.
    let head = ((dst as usize).wrapping_neg() & 63).min(len);
    let body_end = head + (len - head) / 64 * 64;
    // SAFETY: `head <= len`; `dst` and `s` are valid for `len` bytes and do
    // not overlap (the caller's contract).
    unsafe { core::ptr::copy_nonoverlapping(s, dst, head) };
    let mut i = head;
    while i < body_end {
        // SAFETY: `i + 64 <= body_end <= len`, so the 64 bytes at `i` are in
        // both buffers; `dst + i` is 64-aligned (the loop runs only when
        // `head` reached `dst`'s first line boundary, and `i - head` is a
        // multiple of 64), as `_mm_stream_si128` needs 16; `_mm_loadu_si128`
        // takes any alignment; the cfg requires SSE2.
        unsafe {
            let from = s.add(i).cast::<__m128i>();
            let to = dst.add(i).cast::<__m128i>();
            let (a, b) = (_mm_loadu_si128(from), _mm_loadu_si128(from.add(1)));
            let (c, d) = (_mm_loadu_si128(from.add(2)), _mm_loadu_si128(from.add(3)));
            _mm_stream_si128(to, a);
            _mm_stream_si128(to.add(1), b);
            _mm_stream_si128(to.add(2), c);
            _mm_stream_si128(to.add(3), d);
        }
        i += 64;
    }
    // SAFETY: `body_end <= len`, in bounds of both.
    unsafe { core::ptr::copy_nonoverlapping(s.add(body_end), dst.add(body_end), len - body_end) };
    // Non-temporal stores are weakly ordered: without this fence a later
    // Release store (the commit word) could become visible before them.
    // SAFETY: the cfg requires SSE2 (which includes SSE).
    unsafe { _mm_sfence() };
}

#[cfg(test)]
mod tests {
    use super::copy_in;
    use std::vec;
    use std::vec::Vec;

    /// The default follows the vendor the kernel names (x86-64 Linux, not
    /// under Miri, where CPUID is not read and the default is off).
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri), not(loom)))]
    fn the_default_follows_the_vendor() {
        extern crate std;
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let vendor = info
            .lines()
            .find_map(|l| l.strip_prefix("vendor_id"))
            .and_then(|v| v.split(':').nth(1))
            .expect("a vendor_id line")
            .trim();
        let want = match vendor {
            "AuthenticAMD" | "HygonGenuine" => super::AMD_NONTEMPORAL_FROM,
            _ => u32::MAX,
        };
        assert_eq!(
            super::default_nontemporal_threshold(),
            want,
            "vendor {vendor}"
        );
        // Cached: the same again.
        assert_eq!(super::default_nontemporal_threshold(), want);
    }

    /// Zen 3 from CPUID leaf 1's EAX: signatures of released processors.
    #[test]
    fn zen3_by_signature() {
        for (eax, zen3, name) in [
            (0x00A0_0F11, true, "EPYC Milan (model 0x01)"),
            (0x00A2_0F10, true, "Ryzen 5000 Vermeer (0x21)"),
            (0x00A5_0F00, true, "Ryzen 5000 Cezanne (0x50)"),
            (0x00A4_0F41, true, "Ryzen 6000 Rembrandt (0x44)"),
            (0x00A1_0F11, false, "EPYC Genoa, Zen 4 (0x11)"),
            (0x00A6_0F12, false, "Ryzen 7000 Raphael, Zen 4 (0x61)"),
            (0x00AA_0F01, false, "EPYC Bergamo, Zen 4c (0xA0)"),
            (0x00B0_0F21, false, "EPYC Turin, Zen 5 (family 0x1A)"),
            (0x0083_0F10, false, "EPYC Rome, Zen 2 (family 0x17)"),
            (0x0008_06F8, false, "Xeon Sapphire Rapids (family 6)"),
        ] {
            assert_eq!(super::is_zen3(eax), zen3, "{name}");
        }
    }

    /// On x86-64 Linux, the Zen 3 rule follows the family and model the
    /// kernel names.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri), not(loom)))]
    fn zen3_follows_the_kernel() {
        extern crate std;
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let field = |key: &str| {
            info.lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(key))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| std::string::String::from(v.trim()))
                .expect("a cpuinfo field")
        };
        let amd = matches!(field("vendor_id").as_str(), "AuthenticAMD" | "HygonGenuine");
        let family: u32 = field("cpu family").parse().unwrap();
        let model: u32 = field("model").parse().unwrap();
        let want = amd && family == 0x19 && (model < 0x10 || (0x20..0x60).contains(&model));
        assert_eq!(
            super::close_ordinary_everywhere(),
            want,
            "family {family} model {model}"
        );
    }

    #[repr(C, align(64))]
    struct Buf([u8; 64 + 700 + 64]);

    /// Every destination offset within a line, lengths around one to four
    /// lines and a few large ones, both ways; the bytes around the copy stay
    /// untouched.
    #[test]
    fn copies_exactly() {
        let src: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        // Under Miri (a plain copy there, and slow) a sample.
        let (lens, dst_offs): (Vec<usize>, Vec<usize>) = if cfg!(miri) {
            (vec![0, 1, 8, 63, 64, 65, 129, 513], vec![0, 8, 56, 63])
        } else {
            (
                (0..=260).chain([300, 511, 512, 513, 600, 640]).collect(),
                (0..64).collect(),
            )
        };
        for nt in [false, true] {
            for &len in &lens {
                for &dst_off in &dst_offs {
                    let src_off = len % 3;
                    let mut buf = Buf([0xee; 64 + 700 + 64]);
                    let s = &src[src_off..src_off + len.min(700 - src_off)];
                    let len = s.len();
                    // SAFETY: `dst_off + len <= 63 + 700 < 828`; distinct buffers.
                    unsafe { copy_in(buf.0.as_mut_ptr().add(dst_off), s, nt) };
                    assert_eq!(
                        &buf.0[dst_off..dst_off + len],
                        s,
                        "nt {nt} off {dst_off} len {len}"
                    );
                    assert!(buf.0[..dst_off].iter().all(|&b| b == 0xee));
                    assert!(buf.0[dst_off + len..].iter().all(|&b| b == 0xee));
                }
            }
        }
    }
}
