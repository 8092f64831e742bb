"""The bindings' conformance vectors of docs/PROTOCOL.md (8.4), through this
binding's own `connect`: a forged listener (plain Python sockets) sends the
`hs-conformance` handshake with a sealed memfd holding the
`ring-1k-conformance` image, and the package must receive exactly the four
messages the document lists, then see the end of the stream."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading

import pytest

import memtube
from conftest import REPO, unique_addr

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


def forged_listener(addr: str, handshake: bytes, image: bytes, ready: threading.Event) -> None:
    """Accept one connection, send `handshake` with a sealed memfd holding
    `image`, read the connector's ack, and hold the socket until it closes."""
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
