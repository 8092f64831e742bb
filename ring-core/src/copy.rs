//! Copying a payload into the data area, with cache-bypassing
//! (non-temporal) stores for large payloads on x86-64.
//!
//! A large message's lines are written by one core and read once by
//! another. With ordinary stores they sit modified in the producer's cache,
//! and the consumer fetches each from there, as fast as the two cores are
//! close; non-temporal stores put them in memory, where the consumer's
//! reads and prefetches find them at the same speed wherever the cores are.
//! Measurements: [`crate::Producer::set_nontemporal_threshold`].

/// Copy `src` to `dst`: the whole 64-byte lines of `dst` with non-temporal
/// stores when `nontemporal` and the target supports them, everything else
/// with ordinary stores. On return every store is ordered before the
/// caller's later stores (an `sfence` after non-temporal ones), so a later
/// Release store publishes them.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes and not overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_in(dst: *mut u8, src: &[u8], nontemporal: bool) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
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
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
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
        // both buffers; `dst + i` is 64-aligned (`dst + head` is, and `i -
        // head` is a multiple of 64), as `_mm_stream_si128` needs 16;
        // `_mm_loadu_si128` takes any alignment. SSE2 is part of x86-64.
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
    // SAFETY: SSE is part of x86-64.
    unsafe { _mm_sfence() };
}

#[cfg(test)]
mod tests {
    use super::copy_in;
    use std::vec::Vec;

    /// Every length and alignment around the line boundaries, both ways.
    #[test]
    fn copies_exactly() {
        let src: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
        for nt in [false, true] {
            for dst_off in [0usize, 8, 16, 56, 64] {
                for len in [0usize, 1, 8, 63, 64, 65, 127, 128, 200, 575, 600] {
                    for src_off in [0usize, 1, 8] {
                        let mut buf = [0xeeu8; 768];
                        let s = &src[src_off..src_off + len];
                        // SAFETY: `dst_off + len <= 664 < 768`; distinct buffers.
                        unsafe { copy_in(buf.as_mut_ptr().add(dst_off), s, nt) };
                        assert_eq!(&buf[dst_off..dst_off + len], s, "nt {nt} len {len}");
                        assert!(buf[..dst_off].iter().all(|&b| b == 0xee));
                        assert!(buf[dst_off + len..].iter().all(|&b| b == 0xee));
                    }
                }
            }
        }
    }
}
