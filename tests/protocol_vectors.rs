//! The hex test vectors of `docs/PROTOCOL.md`, checked against this
//! implementation.
//!
//! The vectors live in one place only: the fenced blocks tagged
//! ```` ```hex name=... len=... ```` in `docs/PROTOCOL.md`, which this test
//! parses. Every scenario below rebuilds its bytes with the real code (ring
//! images from `init` / `attach_*` + `send` / `recv`, handshake messages from
//! `Handshake::encode`) and compares them byte for byte with the block of the
//! same name; handshake blocks with an `expect=` attribute must also be
//! refused by `Handshake::decode` with exactly that error (its `Debug` form).
//! A block in the document that no scenario produces, or a scenario whose
//! block is missing, fails the test too, so the document and the test cannot
//! drift apart.
//!
//! Block format (also described in the document, section "Test vectors"):
//! each line is `OFFSET: BYTES`, the offset in hex, then up to 16 bytes as
//! pairs of hex digits separated by spaces; `#` starts a comment; every byte
//! of the `len` bytes that no line gives is zero.
//!
//! `MEMTUBE_PRINT_VECTORS=1 cargo test -p memtube --test protocol_vectors
//! -- --nocapture` prints every vector as the code produces it, in that format.

use memtube_ring::handshake::{Handshake, RingDesc, Side};
use memtube_ring::{
    attach_consumer, attach_producer, init, region_size, Config, Error, RawRegion, RegionBuf,
    SpinWait, CONSUMER_BLOCK_SIZE,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const CAP: u32 = 1024;
const N: usize = match region_size(CAP) {
    Some(n) => n,
    None => panic!("1024 is a valid capacity"),
};

/// One ```` ```hex ```` block of the document.
#[derive(Debug)]
struct Block {
    name: String,
    /// Line of the opening fence (1-based), for messages.
    line: usize,
    bytes: Vec<u8>,
    expect: Option<String>,
}

fn parse(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        let Some(attrs) = l.trim_start().strip_prefix("```hex") else {
            continue;
        };
        let mut name = None;
        let mut len = None;
        let mut expect = None;
        for a in attrs.split_whitespace() {
            match a.split_once('=') {
                Some(("name", v)) => name = Some(v.to_string()),
                Some(("len", v)) => {
                    len = Some(
                        v.parse::<usize>()
                            .unwrap_or_else(|e| panic!("line {}: len {v}: {e}", i + 1)),
                    )
                }
                Some(("expect", v)) => expect = Some(v.to_string()),
                _ => panic!("line {}: unknown attribute {a:?}", i + 1),
            }
        }
        let name = name.unwrap_or_else(|| panic!("line {}: hex block without name=", i + 1));
        let len = len.unwrap_or_else(|| panic!("line {}: hex block without len=", i + 1));
        let mut bytes = vec![0u8; len];
        let mut given = vec![false; len];
        let mut closed = false;
        for (j, l) in lines.by_ref() {
            let l = l.trim();
            if l.starts_with("```") {
                closed = true;
                break;
            }
            let l = l.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let (off, hex) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("line {}: no `offset:`", j + 1));
            let off = usize::from_str_radix(off.trim(), 16)
                .unwrap_or_else(|e| panic!("line {}: offset: {e}", j + 1));
            let vals: Vec<u8> = hex
                .split_whitespace()
                .map(|b| {
                    assert_eq!(
                        b.len(),
                        2,
                        "line {}: byte {b:?} is not two hex digits",
                        j + 1
                    );
                    u8::from_str_radix(b, 16)
                        .unwrap_or_else(|e| panic!("line {}: byte {b:?}: {e}", j + 1))
                })
                .collect();
            assert!(
                !vals.is_empty() && vals.len() <= 16,
                "line {}: 1 to 16 bytes per line",
                j + 1
            );
            for (k, v) in vals.into_iter().enumerate() {
                let at = off + k;
                assert!(at < len, "line {}: offset {at:#x} past len {len}", j + 1);
                assert!(!given[at], "line {}: byte {at:#x} given twice", j + 1);
                given[at] = true;
                bytes[at] = v;
            }
        }
        assert!(closed, "block {name} (line {}) is not closed", i + 1);
        out.push(Block {
            name,
            line: i + 1,
            bytes,
            expect,
        });
    }
    out
}

/// The document's format: 16 bytes a line, all-zero lines left out.
fn dump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let _ = write!(s, "{:04x}:", i * 16);
        for b in chunk {
            let _ = write!(s, " {b:02x}");
        }
        s.push('\n');
    }
    s
}

/// What the code produces for one vector name.
struct Actual {
    bytes: Vec<u8>,
    /// For handshake messages the decoder must refuse: the `Debug` of its error.
    expect: Option<String>,
}

fn image(ptr: *const u8, len: usize) -> Vec<u8> {
    // SAFETY: `ptr..ptr + len` is a live allocation of this test (a leaked
    // `RegionBuf`); the ring handles touch it only inside their calls, and
    // this single-threaded test reads it between calls.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

/// A zeroed, 128-aligned buffer of `M` bytes, owned through a raw pointer so
/// that the test can read it while ring handles are attached to it.
struct Buf<const M: usize>(*mut RegionBuf<M>);

impl<const M: usize> Buf<M> {
    fn new() -> Self {
        Buf(Box::into_raw(Box::new(RegionBuf::<M>::new())))
    }
    fn ptr(&self) -> *mut u8 {
        self.0.cast()
    }
    fn image(&self) -> Vec<u8> {
        image(self.ptr(), M)
    }
}

impl<const M: usize> Drop for Buf<M> {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw` in `new`, freed only here; every
        // handle attached to it was dropped before (declared after it).
        drop(unsafe { Box::from_raw(self.0) });
    }
}

fn recv_one(rx: &mut memtube_ring::Consumer<'_, SpinWait>, type_id: u32, payload: &[u8]) {
    let m = rx.try_recv().expect("a message is waiting");
    assert_eq!((m.type_id(), m.payload()), (type_id, payload));
}

/// The single-region 1 KiB ring: after `init`, after two sends, after a
/// wrap with an end padding record, after both handles are dropped.
fn ring_vectors(out: &mut BTreeMap<String, Actual>) {
    let buf = Buf::<N>::new();
    let raw = RawRegion::new(buf.ptr(), N);
    let mut put = |name: &str, bytes: Vec<u8>| {
        out.insert(
            name.to_string(),
            Actual {
                bytes,
                expect: None,
            },
        );
    };
    // SAFETY: `buf` is valid for reads and writes of N bytes, 128-aligned, and
    // nothing else accesses it during the call.
    unsafe { init(raw, Config::new(CAP)) }.unwrap();
    put("ring-1k-init", buf.image());

    // SAFETY: initialized just above; `buf` outlives both handles (they are
    // dropped below, before it); this test reads it only between calls.
    let mut tx = unsafe { attach_producer(raw, SpinWait::std()) }.unwrap();
    // SAFETY: as above.
    let mut rx = unsafe { attach_consumer(raw, SpinWait::std()) }.unwrap();
    tx.send(&[0xAA, 0xBB, 0xCC], 7).unwrap();
    tx.send(&[], 8).unwrap();
    put("ring-1k-two-messages", buf.image());

    recv_one(&mut rx, 7, &[0xAA, 0xBB, 0xCC]);
    recv_one(&mut rx, 8, &[]);
    // Two fillers bring the producer to offset 1000.
    tx.send(&[0; 496], 9).unwrap();
    tx.send(&[0; 464], 10).unwrap();
    recv_one(&mut rx, 9, &[0; 496]);
    recv_one(&mut rx, 10, &[0; 464]);
    // A 32-byte record does not fit the 24 bytes left: end padding, then offset 0.
    tx.send(&[0x5A; 24], 11).unwrap();
    put("ring-1k-wrap", buf.image());

    recv_one(&mut rx, 11, &[0x5A; 24]);
    assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    drop(tx);
    drop(rx);
    put("ring-1k-closed", buf.image());
}

/// The split layout (consumer block in its own region), with line padding
/// (as memtube's isolated connections use it): two 32-byte messages.
fn split_vectors(out: &mut BTreeMap<String, Actual>) {
    let main = Buf::<N>::new();
    let cons = Buf::<CONSUMER_BLOCK_SIZE>::new();
    let raw = RawRegion::new(main.ptr(), N).with_consumer_block(cons.ptr(), CONSUMER_BLOCK_SIZE);
    // SAFETY: both buffers are valid, 128-aligned, of the lengths given, and
    // nothing else accesses them during the call.
    unsafe { init(raw, Config::new(CAP)) }.unwrap();
    // SAFETY: initialized just above; both buffers outlive the handles
    // (dropped at the end of this function, before the buffers, declared
    // earlier); this test reads them only between calls.
    let mut tx = unsafe { attach_producer(raw, SpinWait::std()) }.unwrap();
    // SAFETY: as above.
    let mut rx = unsafe { attach_consumer(raw, SpinWait::std()) }.unwrap();
    tx.set_line_padding(true);
    tx.send(&[0x11; 32], 1).unwrap();
    tx.send(&[0x22; 32], 2).unwrap();
    recv_one(&mut rx, 1, &[0x11; 32]);
    recv_one(&mut rx, 2, &[0x22; 32]);
    assert_eq!(rx.try_recv().err(), Some(Error::Empty));
    for (name, bytes) in [
        ("split-1k-main", main.image()),
        ("split-1k-consumer-block", cons.image()),
    ] {
        out.insert(
            name.to_string(),
            Actual {
                bytes,
                expect: None,
            },
        );
    }
    drop(tx);
    drop(rx);
}

/// The bindings' conformance image: a producer sent four messages and
/// closed; the consumer role is free. Every binding attaches a consumer over
/// a copy of it and must read exactly these messages, then `Closed`.
const CONFORMANCE: [(u32, &[u8]); 4] = [
    (7, &[0xAA, 0xBB, 0xCC]),
    (8, &[]),
    (0xFFFF_FFFE, b"memtube conformance"),
    (1, &[0x5A; 40]),
];

fn conformance_vector(out: &mut BTreeMap<String, Actual>) {
    let buf = Buf::<N>::new();
    let raw = RawRegion::new(buf.ptr(), N);
    // SAFETY: `buf` is valid for reads and writes of N bytes, 128-aligned, and
    // nothing else accesses it during the call.
    unsafe { init(raw, Config::new(CAP)) }.unwrap();
    // SAFETY: initialized just above; `buf` outlives the handle (dropped
    // below); this test reads it only after the handle is gone.
    let mut tx = unsafe { attach_producer(raw, SpinWait::std()) }.unwrap();
    for (ty, p) in CONFORMANCE {
        tx.send(p, ty).unwrap();
    }
    drop(tx);
    let image = buf.image();
    // Decoded as the bindings must decode it: a consumer over a copy.
    let copy = Buf::<N>::new();
    // SAFETY: `copy` is N writable bytes and `image` N readable ones; the
    // two allocations are distinct.
    unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), copy.ptr(), N) };
    // SAFETY: `copy` holds an initialized region and outlives `rx`.
    let mut rx =
        unsafe { attach_consumer(RawRegion::new(copy.ptr(), N), SpinWait::std()) }.unwrap();
    for (ty, p) in CONFORMANCE {
        recv_one(&mut rx, ty, p);
    }
    assert_eq!(rx.try_recv().err(), Some(Error::Closed));
    drop(rx);
    out.insert(
        "ring-1k-conformance".to_string(),
        Actual {
            bytes: image,
            expect: None,
        },
    );
    // The handshake that hands that region to a connector that receives:
    // one ring, single-region layout, the listener (sender of the
    // handshake) produces, descriptor 0.
    let hs = Handshake::simplex(RingDesc::single(CAP, Side::Sender, 0).unwrap(), false);
    let bytes = hs.encode();
    assert_eq!(Handshake::decode(&bytes), Ok(hs));
    assert_eq!(hs.rings()[0].main_len, N as u64);
    out.insert(
        "hs-conformance".to_string(),
        Actual {
            bytes: bytes.to_vec(),
            expect: None,
        },
    );
}

fn handshake_vectors(out: &mut BTreeMap<String, Actual>) {
    // What `listen` sends with the default options: one ring of 64 KiB from
    // the listener to the connector, split layout (isolation).
    let simplex = Handshake::simplex(RingDesc::split(1 << 16, Side::Sender, 0, 1).unwrap(), false);
    // A duplex connection without isolation, 4 KiB rings.
    let duplex = Handshake::duplex(
        RingDesc::single(4096, Side::Sender, 0).unwrap(),
        RingDesc::single(4096, Side::Receiver, 1).unwrap(),
        false,
    );
    // Duplex, isolation, pure spin: four descriptors.
    let duplex_split = Handshake::duplex(
        RingDesc::split(4096, Side::Sender, 0, 1).unwrap(),
        RingDesc::split(4096, Side::Receiver, 2, 3).unwrap(),
        true,
    );
    for (name, hs) in [
        ("hs-simplex-split", simplex),
        ("hs-duplex", duplex),
        ("hs-duplex-split-spin", duplex_split),
    ] {
        let bytes = hs.encode();
        assert_eq!(Handshake::decode(&bytes), Ok(hs));
        out.insert(
            name.to_string(),
            Actual {
                bytes: bytes.to_vec(),
                expect: None,
            },
        );
    }
    // Invalid messages: the duplex one with one defect each.
    let base = duplex.encode();
    type Mutation = fn(&mut Vec<u8>);
    let bad: [(&str, Mutation); 12] = [
        ("hs-bad-length", |b| b.truncate(95)),
        ("hs-bad-magic", |b| b[7] = b'2'),
        ("hs-bad-version", |b| b[8] = 2),
        ("hs-bad-layout-version", |b| b[12] = 1),
        ("hs-bad-flags", |b| b[16] |= 0x20),
        ("hs-bad-ring-count", |b| b[20] = 1),
        ("hs-bad-reserved", |b| b[28] = 1),
        ("hs-bad-producer", |b| b[68] = 0),
        ("hs-bad-capacity", |b| {
            b[64..68].copy_from_slice(&1000u32.to_le_bytes())
        }),
        ("hs-bad-region-length", |b| b[80] ^= 8),
        ("hs-bad-descriptors", |b| b[72] = 0),
        ("hs-bad-split", |b| b[16] |= 2),
    ];
    for (name, mutate) in bad {
        let mut b = base.to_vec();
        mutate(&mut b);
        let err = Handshake::decode(&b).expect_err(name);
        out.insert(
            name.to_string(),
            Actual {
                bytes: b,
                expect: Some(format!("{err:?}")),
            },
        );
    }
}

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/PROTOCOL.md")
}

#[test]
fn document_vectors_match_the_implementation() {
    let mut actual = BTreeMap::new();
    ring_vectors(&mut actual);
    split_vectors(&mut actual);
    conformance_vector(&mut actual);
    handshake_vectors(&mut actual);
    if std::env::var_os("MEMTUBE_PRINT_VECTORS").is_some() {
        for (name, a) in &actual {
            let expect = a
                .expect
                .as_ref()
                .map(|e| format!(" expect={e}"))
                .unwrap_or_default();
            println!(
                "```hex name={name} len={}{expect}\n{}```\n",
                a.bytes.len(),
                dump(&a.bytes)
            );
        }
    }
    let path = doc_path();
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let blocks = parse(&doc);
    let mut failures = Vec::new();
    let mut seen = BTreeMap::new();
    for b in &blocks {
        if let Some(prev) = seen.insert(b.name.clone(), b.line) {
            failures.push(format!(
                "{}: vector {} given twice (line {prev} and {})",
                path.display(),
                b.name,
                b.line
            ));
            continue;
        }
        let Some(a) = actual.get(&b.name) else {
            failures.push(format!(
                "line {}: vector {} is checked by no scenario of this test",
                b.line, b.name
            ));
            continue;
        };
        if a.bytes != b.bytes {
            let diffs: Vec<String> = (0..a.bytes.len().max(b.bytes.len()))
                .filter(|&i| a.bytes.get(i) != b.bytes.get(i))
                .take(8)
                .map(|i| {
                    format!(
                        "{i:#06x}: doc {:02x?} code {:02x?}",
                        b.bytes.get(i),
                        a.bytes.get(i)
                    )
                })
                .collect();
            failures.push(format!(
                "line {}: vector {} ({} bytes in the doc, {} from the code) differs at {}\n\
                 the code produces:\n{}",
                b.line,
                b.name,
                b.bytes.len(),
                a.bytes.len(),
                diffs.join(", "),
                dump(&a.bytes)
            ));
        }
        if a.expect != b.expect {
            failures.push(format!(
                "line {}: vector {}: the doc expects {:?}, the code gives {:?}",
                b.line, b.name, b.expect, a.expect
            ));
        }
        // The refusal is checked on the document's own bytes too.
        if let Some(e) = &b.expect {
            match Handshake::decode(&b.bytes) {
                Ok(_) => failures.push(format!("line {}: {} decodes", b.line, b.name)),
                Err(got) if format!("{got:?}") != *e => failures.push(format!(
                    "line {}: {} is refused with {got:?}, not {e}",
                    b.line, b.name
                )),
                Err(_) => {}
            }
        }
    }
    for name in actual.keys() {
        if !seen.contains_key(name) {
            failures.push(format!("vector {name} is missing from {}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn parser_reads_offsets_comments_and_zero_fill() {
    let doc = "text\n```hex name=t len=20\n0000: 01 02 # c\n\n0010: ff # c\n```\n";
    let b = parse(doc);
    assert_eq!(b.len(), 1);
    let mut want = vec![0u8; 20];
    want[0] = 1;
    want[1] = 2;
    want[16] = 0xff;
    assert_eq!(b[0].bytes, want);
    assert_eq!(
        dump(&want),
        "0000: 01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n0010: ff 00 00 00\n"
    );
}
