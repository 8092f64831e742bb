"""Between real processes: Ctrl-C, a killed peer, and Python <-> Rust."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import memtube
from conftest import HERE, python_peer, unique_addr

PRELUDE = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, {here!r})
    import memtube
    from conftest import pair
    """
)


def child(body: str) -> subprocess.Popen:
    code = PRELUDE.format(here=str(HERE)) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(p: subprocess.Popen, want: str, timeout: float = 10.0) -> None:
    line = p.stdout.readline()
    if line.strip() != want:
        p.kill()
        out, err = p.communicate(timeout=timeout)
        raise AssertionError(f"child said {line!r}, not {want!r}\n{out}\n{err}")


BLOCKING = {
    # A blocking receive on an empty ring.
    "recv": """
        server, client = pair({addr!r})
        rx = server.receiver
        call = lambda: rx.recv()
        after = lambda: (client.sender.send(b"after"), print("got", bytes(rx.recv(timeout=5)), flush=True))
    """,
    # A blocking send on a full ring: the k messages sent before it, each
    # numbered, are all there afterwards, in order, the interrupted one is
    # not, and the sender still works.
    "send": """
        server, client = pair({addr!r}, capacity=4096)
        tx = client.sender
        k = 0
        while True:
            try:
                tx.try_send(k.to_bytes(8, "little") + bytes(992))
                k += 1
            except memtube.Full:
                break
        call = lambda: tx.send(k.to_bytes(8, "little") + bytes(992))
        def after():
            got = []
            while True:
                try:
                    got.append(int.from_bytes(bytes(server.receiver.try_recv())[:8], "little"))
                except memtube.Empty:
                    break
            tx.send(b"after")
            last = bytes(server.receiver.recv(timeout=5))
            print("got", len(got), k, got == list(range(k)), last == b"after", flush=True)
    """,
    # accept with no peer.
    "accept": """
        listener = memtube.listen({addr!r})
        call = lambda: listener.accept()
        def after():
            try:
                listener.accept(timeout=0.05)
            except memtube.Timeout:
                print("got", "timeout", flush=True)
    """,
    # call on a server that never answers.
    "call": """
        server, client = pair({addr!r}, duplex=True)
        call = lambda: client.call(1, b"ping")
        after = lambda: print("got", server.receiver.recv(timeout=5).type_id, flush=True)
    """,
    # serve with no request.
    "serve": """
        server, client = pair({addr!r}, duplex=True)
        call = lambda: server.serve(lambda ty, req: req)
        after = lambda: print("got", "none", flush=True)
    """,
}


@pytest.mark.parametrize("what", sorted(BLOCKING))
def test_sigint_interrupts_blocking_call(what):
    body = textwrap.dedent(BLOCKING[what]).format(addr=unique_addr("int")) + textwrap.dedent(
        """
        print("ready", flush=True)
        try:
            call()
            print("returned", flush=True)
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
        after()
        """
    )
    p = child(body)
    try:
        wait_line(p, "ready")
        time.sleep(0.3)  # well inside the blocking call
        sent = time.monotonic()  # CLOCK_MONOTONIC: the same clock in both processes
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline().split()
        assert line and line[0] == "interrupted", (line, p.stderr.read())
        # Within about one 50 ms wait slice, whatever the call waits for.
        assert float(line[1]) - sent < 0.2, float(line[1]) - sent
        # Nothing lost: the handle still works after the interrupt.
        got = p.stdout.readline().split()
        assert got and got[0] == "got", (got, p.stderr.read())
        if what == "recv":
            assert got[1] == "b'after'"
        if what == "send":
            n, k, in_order, after_ok = got[1:]
            assert int(k) > 0 and n == k, got  # the interrupted send sent nothing
            assert in_order == "True" and after_ok == "True", got
        if what == "call":
            assert got[1] == "1"  # the request was sent once
        assert p.wait(timeout=10) == 0
    finally:
        p.kill()
        p.wait()


def test_peer_gone_after_sigkill():
    addr = unique_addr("kill")
    body = """
        conn = memtube.connect({addr!r}, timeout=10)
        for i in range(3):
            conn.sender.send(b"msg%d" % i, type_id=i)
        print("sent", flush=True)
        time.sleep(60)
    """.format(addr=addr)
    with memtube.listen(addr) as listener:
        p = child(body)
        try:
            conn = listener.accept(timeout=10)
            wait_line(p, "sent")
            assert conn.peer.pid == p.pid
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            rx = conn.receiver
            # Every message sent before the death is delivered, then PeerGone.
            assert [bytes(rx.recv(timeout=5)) for _ in range(3)] == [b"msg0", b"msg1", b"msg2"]
            t0 = time.monotonic()
            with pytest.raises(memtube.PeerGone) as ei:
                rx.recv(timeout=5)
            assert time.monotonic() - t0 < 1.0
            assert isinstance(ei.value, memtube.Disconnected)
            assert conn.probe_peer() == "gone"
            assert not conn.is_peer_alive()
        finally:
            p.kill()
            p.wait()


def test_peer_gone_unblocks_sender():
    addr = unique_addr("kill2")
    body = """
        listener = memtube.listen({addr!r}, capacity=4096)
        print("listening", flush=True)
        conn = listener.accept(timeout=10)
        print("accepted", flush=True)
        time.sleep(60)
    """.format(addr=addr)
    p = child(body)
    try:
        wait_line(p, "listening")
        conn = memtube.connect(addr, capacity=4096, timeout=10)
        wait_line(p, "accepted")
        tx = conn.sender
        while True:
            try:
                tx.try_send(bytes(1000))
            except memtube.Full:
                break
        os.kill(p.pid, signal.SIGKILL)
        with pytest.raises(memtube.PeerGone):
            tx.send(bytes(1000), timeout=5)
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------- interoperability
# The cross-language matrix (Rust, Python, C, C++ both ways, and call/serve)
# is tests/test_interop.py; here, that its checks can fail.


def test_interop_detects_a_mismatch(interop_bin):
    """The checks can fail: a different --size on each side is reported."""
    addr = unique_addr("bad")
    lp = subprocess.Popen(
        python_peer("--listen", addr, "--recv", "--size", "100"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert lp.stdout.readline().strip() == "listening"
        subprocess.run(
            [interop_bin, "--connect", addr, "--send", "10", "--size", "200"],
            capture_output=True,
            timeout=60,
        )
        out, err = lp.communicate(timeout=60)
        assert lp.returncode != 0
        assert "differs" in out + err
    finally:
        lp.kill()
        lp.wait()
