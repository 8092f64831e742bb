"""The bindings' conformance vectors of docs/PROTOCOL.md (8.4), through each
binding's own `connect`: a forged listener (plain Python sockets) sends the
`hs-conformance` handshake with a sealed memfd holding the
`ring-1k-conformance` image, both decoded from the document's hex blocks
here (never made by the code under test), and the connector must receive
exactly the four messages the document lists, then see the end of the
stream.

First this package in process, then every language's interop peer (Rust,
Python, C, C++, Go, Node.js and Java, built as test_interop.py's matrix
builds them, by the `peers` fixture of conftest.py) run as
`--connect ADDR --dump`: each must print the same lines, the four messages
as `msg TYPE HEX` and `end closed` (examples/interop.rs specifies the
mode). A language whose toolchain is missing is skipped, except under
CI=true, where that fails."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading

import pytest

import memtube
from conftest import LANGS, REPO, peer, unique_addr

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="memfd and abstract sockets are Linux's"
)

WANT = [
    (7, b"\xaa\xbb\xcc"),
    (8, b""),
    (0xFFFFFFFE, b"memtube conformance"),
    (1, b"\x5a" * 40),
]


def vector(name: str) -> bytes:
    """The `hex name=NAME` block of docs/PROTOCOL.md (`OFFSET: BYTES` lines,
    `#` comments, every byte not given zero)."""
    lines = (REPO / "docs" / "PROTOCOL.md").read_text().splitlines()
    head = f"```hex name={name} len="
    start = next(i for i, l in enumerate(lines) if l.startswith(head))
    out = bytearray(int(lines[start][len(head):].split()[0]))
    for line in lines[start + 1:]:
        if line.startswith("```"):
            break
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        off, hexbytes = line.split(":", 1)
        at = int(off, 16)
        for b in hexbytes.split():
            out[at] = int(b, 16)
            at += 1
    return bytes(out)


def forged_listener(
    addr: str, handshake: bytes, image: bytes, ready: threading.Event, hold: bool = True
) -> None:
    """Accept one connection, send `handshake` with a sealed memfd holding
    `image`, read the connector's ack, and hold the socket until it closes
    (`hold`) or close it at once (the listener side gone)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind("\0" + addr[1:])
    s.listen(1)
    ready.set()
    c, _ = s.accept()
    fd = os.memfd_create("conformance", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, image)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        socket.send_fds(c, [handshake], [fd])
    finally:
        os.close(fd)
    c.recv(16)  # the ack, then (later) the connector's close byte
    if hold:
        c.recv(16)
    c.close()
    s.close()


def test_conformance_image_through_connect():
    image, handshake = vector("ring-1k-conformance"), vector("hs-conformance")
    assert len(image) == 1664 and len(handshake) == 96
    addr = unique_addr("conf")
    ready = threading.Event()
    t = threading.Thread(target=forged_listener, args=(addr, handshake, image, ready))
    t.start()
    ready.wait(10)
    with memtube.connect(addr, direction="listener_to_connector", capacity=1024) as conn:
        got = []
        for msg in conn.receiver:  # ends at the producer's clean close
            got.append((msg.type_id, bytes(msg)))
        assert got == WANT
        with pytest.raises(memtube.Closed):
            conn.receiver.try_recv()
    t.join(10)
    assert not t.is_alive()


def dump_lines(msgs: list[tuple[int, bytes]], end: str) -> str:
    """What `--dump` prints for these messages ended by `end`."""
    lines = [f"msg {ty} {payload.hex() or '-'}" for ty, payload in msgs]
    return "\n".join([*lines, f"end {end}"]) + "\n"


def run_dump(cmd: list[str], image: bytes, hold: bool = True) -> subprocess.CompletedProcess:
    """Serve hs-conformance with `image` to one `cmd --connect ADDR --dump`."""
    addr = unique_addr("dump")
    ready = threading.Event()
    t = threading.Thread(
        target=forged_listener, args=(addr, vector("hs-conformance"), image, ready, hold), daemon=True
    )
    t.start()
    assert ready.wait(10)
    r = subprocess.run([*cmd, "--connect", addr, "--dump"], capture_output=True, text=True, timeout=120)
    t.join(10)
    assert not t.is_alive(), (r.stdout, r.stderr)
    return r


# The lines every peer prints for the conformance vectors, spelled out once.
WANT_DUMP = dump_lines(WANT, "closed")


def test_want_dump_spelled_out():
    assert WANT_DUMP == (
        "msg 7 aabbcc\n"
        "msg 8 -\n"
        "msg 4294967294 6d656d7475626520636f6e666f726d616e6365\n"
        f"msg 1 {'5a' * 40}\n"
        "end closed\n"
    )


@pytest.mark.parametrize("lang", LANGS)
def test_every_peer_decodes_the_conformance_vectors(peers, lang):
    """Each language's peer, connecting to the forged listener, prints
    exactly WANT_DUMP (so every language prints the same) and exits 0."""
    r = run_dump(peer(peers, lang), vector("ring-1k-conformance"))
    assert (r.stdout, r.returncode) == (WANT_DUMP, 0), r.stderr


@pytest.mark.parametrize("lang", LANGS)
def test_every_peer_ends_a_dump_with_the_error_kind(peers, lang):
    """The same image with the producer's state at 256 put back to 0 (never
    closed) by this test, and the listener's socket closed right after the
    ack: the four messages, then `end peer_gone` and exit status 1, the same
    in every language."""
    image = bytearray(vector("ring-1k-conformance"))
    assert image[256] == 2
    image[256] = 0
    r = run_dump(peer(peers, lang), bytes(image), hold=False)
    assert (r.stdout, r.returncode) == (dump_lines(WANT, "peer_gone"), 1), r.stderr
