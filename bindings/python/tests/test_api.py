"""The API within one process (the two sides on two threads)."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

import memtube
from conftest import pair, unique_addr

np = pytest.importorskip("numpy")


# ---------------------------------------------------------------- send / recv


def test_send_recv_bytes_like(oneway):
    server, client = oneway
    tx, rx = client.sender, server.receiver
    payloads = [
        b"hello",
        bytearray(b"bytearray"),
        memoryview(b"xxmemoryviewxx")[2:-2],
        np.arange(4, dtype=np.float32),
        b"",
    ]
    for i, p in enumerate(payloads):
        tx.send(p, type_id=i)
    for i, p in enumerate(payloads):
        m = rx.recv(timeout=5)
        assert m.type_id == i
        assert bytes(m) == bytes(memoryview(p).cast("B"))
        assert len(m) == len(bytes(m))
        assert m.tobytes() == bytes(m)


def test_send_rejects_non_buffers(oneway):
    _, client = oneway
    with pytest.raises(TypeError):
        client.sender.send("a str is not bytes")
    with pytest.raises((TypeError, ValueError, BufferError)):
        client.sender.send(np.arange(6).reshape(2, 3)[:, ::2])  # not contiguous


def test_try_recv_empty_and_timeouts(oneway):
    server, _ = oneway
    rx = server.receiver
    with pytest.raises(memtube.Empty):
        rx.try_recv()
    with pytest.raises(memtube.Empty):
        rx.recv(timeout=0)
    t0 = time.monotonic()
    with pytest.raises(memtube.Timeout) as ei:
        rx.recv(timeout=0.12)
    assert 0.1 <= time.monotonic() - t0 < 1.0
    assert isinstance(ei.value, TimeoutError)
    assert isinstance(ei.value, memtube.Error)
    assert memtube.Timeout.status == 3
    with pytest.raises(ValueError):
        rx.recv(timeout=-1)


def test_full_and_too_large(addr):
    server, client = pair(addr, capacity=4096)
    tx = client.sender
    assert tx.capacity == 4096
    assert tx.max_payload == server.receiver.max_payload
    with pytest.raises(memtube.TooLarge) as ei:
        tx.send(bytes(tx.max_payload + 1))
    assert isinstance(ei.value, ValueError)
    tx.send(bytes(tx.max_payload))
    with pytest.raises(memtube.Full):
        for _ in range(10):
            tx.try_send(bytes(1000))
    with pytest.raises(memtube.Full):
        tx.send(bytes(1000), timeout=0)
    with pytest.raises(memtube.Timeout):
        tx.send(bytes(1000), timeout=0.05)
    # Room comes back when the receiver releases.
    rx = server.receiver
    got = 0
    while True:
        try:
            rx.try_recv().release()
            got += 1
        except memtube.Empty:
            break
    assert got >= 2
    tx.try_send(b"again")
    assert bytes(rx.recv(timeout=5)) == b"again"
    st = tx.stats()
    assert st.messages_committed == got + 1
    assert st.full_events >= 1
    assert "messages_committed" in repr(st)
    server.close()
    client.close()


def test_blocking_send_waits_for_room(addr):
    server, client = pair(addr, capacity=4096)
    tx, rx = client.sender, server.receiver
    n = 200

    def consume():
        for i in range(n):
            m = rx.recv(timeout=10)
            assert m.type_id == i
            time.sleep(0.0005)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(n):
        tx.send(bytes(1000), type_id=i, timeout=10)
    t.join()
    server.close()
    client.close()


def test_iteration_ends_at_close(oneway):
    server, client = oneway
    for i in range(5):
        client.sender.send(bytes([i]) * (i + 1), type_id=i)
    client.close()
    got = [(m.type_id, bytes(m)) for m in server.receiver]
    assert got == [(i, bytes([i]) * (i + 1)) for i in range(5)]
    with pytest.raises(memtube.Closed) as ei:
        server.receiver.recv(timeout=1)
    assert isinstance(ei.value, memtube.Disconnected)
    assert server.probe_peer() == "closed"
    assert not server.is_peer_alive()


def test_sender_sees_closed_receiver(oneway):
    server, client = oneway
    server.close()
    with pytest.raises(memtube.Closed):
        for _ in range(100_000):
            client.sender.send(b"x" * 64, timeout=1)


def test_staged_and_publish(oneway):
    server, client = oneway
    tx, rx = client.sender, server.receiver
    for i in range(3):
        tx.send_staged(b"s%d" % i, type_id=i)
    with pytest.raises(memtube.Empty):
        rx.try_recv()
    tx.publish()
    assert [bytes(rx.recv(timeout=5)) for _ in range(3)] == [b"s0", b"s1", b"s2"]


def test_peer_and_handles(oneway):
    server, client = oneway
    assert server.peer.pid == os.getpid() == client.peer.pid
    assert server.peer.uid == os.geteuid()
    assert server.peer.gid == os.getegid()
    assert "pid=" in repr(server.peer)
    assert server.is_peer_alive() and client.is_peer_alive()
    assert client.probe_peer() == "alive"
    assert client.sender.is_peer_alive() and server.receiver.probe_peer() == "alive"
    # One-way: the connector only sends, the listener only receives.
    with pytest.raises(memtube.NoSuchHandle):
        client.receiver
    with pytest.raises(memtube.NoSuchHandle):
        server.sender
    assert client.sender is client.sender
    assert client.max_request == 0 or True
    assert "Connection" in repr(client)


def test_direction_listener_to_connector(addr):
    server, client = pair(addr, direction="listener_to_connector")
    server.sender.send(b"down")
    assert bytes(client.receiver.recv(timeout=5)) == b"down"
    server.close()
    client.close()


# ------------------------------------------------------------------ lifetimes


def test_message_release_and_use_after_release(oneway):
    server, client = oneway
    client.sender.send(b"payload", type_id=7)
    m = server.receiver.recv(timeout=5)
    assert not m.released
    assert "type_id=7" in repr(m)
    m.release()
    assert m.released
    m.release()  # idempotent
    for f in (bytes, memoryview, lambda m: m.address, lambda m: m.tobytes(), np.from_dlpack):
        with pytest.raises((memtube.Error, BufferError)):
            f(m)
    assert m.type_id == 7 and len(m) == 7  # metadata stays readable
    assert "released" in repr(m)


def test_message_context_manager(oneway):
    server, client = oneway
    client.sender.send(b"ctx")
    with server.receiver.recv(timeout=5) as m:
        assert bytes(m) == b"ctx"
    assert m.released
    assert server.receiver.stats().messages_released >= 0


def test_next_recv_releases_previous(oneway):
    server, client = oneway
    tx, rx = client.sender, server.receiver
    tx.send(b"one")
    tx.send(b"two")
    a = rx.recv(timeout=5)
    b = rx.recv(timeout=5)
    assert a.released and not b.released
    assert bytes(b) == b"two"


def test_next_recv_with_live_export_is_busy(oneway):
    server, client = oneway
    tx, rx = client.sender, server.receiver
    tx.send(b"one")
    tx.send(b"two")
    a = rx.recv(timeout=5)
    view = memoryview(a)
    with pytest.raises(memtube.Busy, match="release them"):
        rx.recv(timeout=5)
    with pytest.raises(BufferError):
        a.release()
    assert view.tobytes() == b"one"  # the view is still valid
    view.release()
    assert bytes(rx.recv(timeout=5)) == b"two"  # nothing lost
    assert a.released


def test_message_gc_releases(addr):
    server, client = pair(addr, capacity=4096)
    tx, rx = client.sender, server.receiver
    big = bytes(tx.max_payload)
    tx.send(big)
    m = rx.recv(timeout=5)
    with pytest.raises(memtube.Full):
        tx.try_send(big)
    del m
    gc.collect()
    tx.send(big, timeout=5)  # room came back when the message was collected
    server.close()
    client.close()


def test_numpy_zero_copy(oneway):
    server, client = oneway
    data = np.arange(1024, dtype=np.float64)
    client.sender.send(data)
    m = server.receiver.recv(timeout=5)
    arr = np.frombuffer(m, dtype=np.float64)
    assert arr.ctypes.data == m.address  # no copy
    assert not arr.flags.writeable
    assert np.array_equal(arr, data)
    with pytest.raises(ValueError):
        arr[0] = 1.0
    with pytest.raises(BufferError):
        m.release()
    del arr
    m.release()


def test_memoryview_is_readonly(oneway):
    server, client = oneway
    client.sender.send(b"ro")
    m = server.receiver.recv(timeout=5)
    mv = memoryview(m)
    assert mv.readonly and mv.format == "B" and mv.nbytes == 2
    with pytest.raises(TypeError):
        mv[0] = 1
    mv.release()


def test_dlpack_numpy(oneway):
    server, client = oneway
    client.sender.send(bytes(range(200)))
    m = server.receiver.recv(timeout=5)
    assert m.__dlpack_device__() == (1, 0)
    arr = np.from_dlpack(m)
    assert arr.dtype == np.uint8 and arr.shape == (200,)
    assert arr.ctypes.data == m.address
    assert arr.tolist() == list(range(200))
    assert not arr.flags.writeable  # versioned DLPack with READ_ONLY
    with pytest.raises(BufferError):
        m.release()
    del arr
    gc.collect()
    m.release()


def test_dlpack_capsules(oneway):
    server, client = oneway
    client.sender.send(b"caps")
    m = server.receiver.recv(timeout=5)
    legacy = m.__dlpack__()
    assert "dltensor" in repr(legacy) and "versioned" not in repr(legacy)
    versioned = m.__dlpack__(max_version=(1, 0))
    assert "dltensor_versioned" in repr(versioned)
    with pytest.raises(BufferError):
        m.__dlpack__(dl_device=(2, 0))
    with pytest.raises(BufferError):
        m.__dlpack__(copy=True)
    with pytest.raises(BufferError):
        m.release()
    del legacy, versioned  # never consumed: the destructors delete them
    m.release()


def test_close_with_live_export(oneway):
    server, client = oneway
    client.sender.send(b"x")
    m = server.receiver.recv(timeout=5)
    v = memoryview(m)
    with pytest.raises(BufferError):
        server.close()
    v.release()
    server.close()
    assert server.closed
    assert m.released
    with pytest.raises(memtube.InvalidArgument):
        server.receiver.recv(timeout=1)
    server.close()  # idempotent


# --------------------------------------------------------------------- grants


def test_reserve_commit_numpy(oneway):
    server, client = oneway
    tx, rx = client.sender, server.receiver
    g = tx.reserve(64)
    assert len(g) == 64 and not g.done
    a = np.frombuffer(g, dtype=np.uint32)
    assert a.flags.writeable and a.ctypes.data == g.address
    a[:] = np.arange(16, dtype=np.uint32)
    with pytest.raises(BufferError):
        g.commit()
    del a
    g.commit(32, type_id=9)
    assert g.done
    with pytest.raises(BufferError):
        memoryview(g)
    with pytest.raises(memtube.InvalidArgument):
        g.commit()
    m = rx.recv(timeout=5)
    assert m.type_id == 9
    assert np.frombuffer(m, np.uint32).tolist() == list(range(8))


def test_reserve_with_block(oneway):
    server, client = oneway
    tx, rx = client.sender, server.receiver
    with tx.reserve(5, type_id=4) as buf:
        memoryview(buf)[:] = b"hello"
    assert buf.done
    m = rx.recv(timeout=5)
    assert (m.type_id, bytes(m)) == (4, b"hello")
    with pytest.raises(RuntimeError):
        with tx.reserve(5) as buf:
            memoryview(buf)[:] = b"never"
            raise RuntimeError("boom")
    assert buf.done
    with pytest.raises(memtube.Empty):
        rx.try_recv()  # aborted: nothing sent
    with tx.reserve(10) as buf:
        memoryview(buf)[:3] = b"abc"
        buf.commit(3, type_id=1)  # an explicit commit inside the block
    assert bytes(rx.recv(timeout=5)) == b"abc"


def test_grant_outstanding_is_busy(oneway):
    server, client = oneway
    tx = client.sender
    g = tx.reserve(8)
    for op in (lambda: tx.send(b"x"), lambda: tx.reserve(8), tx.publish):
        with pytest.raises(memtube.Busy, match="commit"):
            op()
    with pytest.raises(memtube.InvalidArgument):
        g.commit(9)
    g.abort()
    assert g.done
    tx.send(b"ok")
    assert bytes(server.receiver.recv(timeout=5)) == b"ok"


def test_grant_gc_aborts(oneway):
    server, client = oneway
    tx = client.sender
    g = tx.try_reserve(8)
    del g
    gc.collect()
    tx.send(b"after")
    assert bytes(server.receiver.recv(timeout=5)) == b"after"


def test_reserve_too_large_and_full(addr):
    server, client = pair(addr, capacity=4096)
    tx = client.sender
    with pytest.raises(memtube.TooLarge):
        tx.reserve(tx.max_payload + 1)
    g = tx.reserve(tx.max_payload)
    g.commit()
    with pytest.raises(memtube.Full):
        tx.try_reserve(tx.max_payload)
    with pytest.raises(memtube.Timeout):
        tx.reserve(tx.max_payload, timeout=0.05)
    server.close()
    client.close()


# ------------------------------------------------------------------- threads


def test_gil_released_while_waiting(oneway):
    server, client = oneway
    ticks = 0
    done = threading.Event()

    def spin():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    with pytest.raises(memtube.Timeout):
        server.receiver.recv(timeout=0.3)
    done.set()
    t.join()
    assert ticks > 1000


def test_concurrent_use_is_busy(oneway):
    server, client = oneway
    rx = server.receiver
    started = threading.Event()
    box = {}

    def blocked():
        started.set()
        box["m"] = bytes(rx.recv(timeout=5))

    t = threading.Thread(target=blocked)
    t.start()
    started.wait()
    time.sleep(0.1)
    with pytest.raises(memtube.Busy, match="another thread"):
        rx.try_recv()
    client.sender.send(b"late")
    t.join()
    assert box["m"] == b"late"


def test_split_two_threads(addr):
    server, client = pair(addr, duplex=True)
    stx, srx = server.split()
    assert server.closed
    with pytest.raises(memtube.InvalidArgument, match="split"):
        server.sender.send(b"x")
    n = 2000

    def echo():
        for m in srx:
            stx.send(m, type_id=m.type_id)
        stx.close()

    t = threading.Thread(target=echo)
    t.start()
    ctx, crx = client.split()
    got = []

    def reader():
        for m in crx:
            got.append(m.type_id)

    r = threading.Thread(target=reader)
    r.start()
    for i in range(n):
        ctx.send(i.to_bytes(4, "little"), type_id=i, timeout=5)
    ctx.close()
    t.join(10)
    r.join(10)
    assert got == list(range(n))
    with ctx:
        pass  # closing again is fine
    with pytest.raises(memtube.InvalidArgument):
        ctx.send(b"closed")
    srx.close()
    crx.close()


# ------------------------------------------------------------------ call/serve


def test_call_serve(duplex):
    server, client = duplex
    assert client.max_request == client.sender.max_payload - 8
    biggest = server.sender.max_payload  # handles are busy inside the handler

    def handler(ty, req):
        assert isinstance(req, bytes)
        if ty == 1:
            return req[::-1]  # the request's type id
        if ty == 2:
            return None  # empty reply
        if ty == 3:
            return (33, np.frombuffer(req, np.uint8) + 1)
        if ty == 4:
            raise KeyError("handler failed")
        if ty == 5:
            return bytes(biggest)  # does not fit with the id
        return (ty, b"")

    def serve():
        try:
            server.serve(handler)
        except KeyError as e:
            box["err"] = e
            server.serve(handler)  # serving goes on after a handler error

    box = {}
    t = threading.Thread(target=serve)
    t.start()
    r = client.call(1, b"abc", timeout=5)
    assert (r.type_id, bytes(r)) == (1, b"cba")
    r = client.call(2, b"abc", timeout=5)
    assert (r.type_id, bytes(r)) == (2, b"")
    r = client.call(3, bytearray(b"\x01\x02"), timeout=5)
    assert (r.type_id, bytes(r)) == (33, b"\x02\x03")
    with pytest.raises(memtube.Protocol):
        client.call(4, b"", timeout=5)
    with pytest.raises(memtube.ReplyTooLarge):
        client.call(5, b"", timeout=5)
    with pytest.raises(memtube.TooLarge):
        client.call(1, bytes(client.max_request + 1), timeout=5)
    with client.call(1, memoryview(b"xyz"), timeout=5) as r:
        assert bytes(r) == b"zyx"
    client.close()
    t.join(10)
    assert isinstance(box["err"], KeyError)


def test_call_timeout_then_late_reply_skipped(duplex):
    server, client = duplex

    def handler(ty, req):
        if ty == 1:
            time.sleep(0.3)
        return req

    t = threading.Thread(target=lambda: server.serve(handler))
    t.start()
    with pytest.raises(memtube.Timeout):
        client.call(1, b"slow", timeout=0.1)
    r = client.call(2, b"fast", timeout=5)  # the late reply to "slow" is skipped
    assert (r.type_id, bytes(r)) == (2, b"fast")
    # A reply that takes longer than one wait slice (50 ms) but comes in time.
    r = client.call(1, b"slow-ok", timeout=5)
    assert bytes(r) == b"slow-ok"
    client.close()
    t.join(10)


def test_call_reply_lifetime(duplex):
    server, client = duplex
    t = threading.Thread(target=lambda: server.serve(lambda ty, req: req))
    t.start()
    r = client.call(1, b"keep", timeout=5)
    a = np.frombuffer(r, np.uint8)
    assert a.ctypes.data == r.address
    with pytest.raises(memtube.Busy):
        client.call(1, b"next", timeout=5)
    del a
    r2 = client.call(1, b"next", timeout=5)
    assert r.released and bytes(r2) == b"next"
    # A received message on the receiver is released by the call too.
    client.close()
    t.join(10)


def test_serve_one(duplex):
    server, client = duplex
    with pytest.raises(memtube.Empty):
        server.serve_one(lambda ty, req: req, timeout=0)
    with pytest.raises(memtube.Timeout):
        server.serve_one(lambda ty, req: req, timeout=0.05)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", bytes(client.call(3, b"one", timeout=5))))
    t.start()
    server.serve_one(lambda ty, req: req * 2, timeout=5)
    t.join()
    assert box["r"] == b"oneone"


def test_call_needs_duplex(oneway):
    server, client = oneway
    with pytest.raises(memtube.NoSuchHandle):
        client.call(1, b"x", timeout=1)
    with pytest.raises(memtube.NoSuchHandle):
        server.serve_one(lambda ty, req: req, timeout=0)


# ------------------------------------------------------- listen/connect errors


def test_connect_errors(addr, tmp_path):
    with pytest.raises(memtube.NoListener) as ei:
        memtube.connect(addr, timeout=1)
    assert isinstance(ei.value, ConnectionRefusedError)
    with memtube.listen(addr) as listener:
        assert listener.address == addr
        assert listener.fileno() >= 0
        assert addr in repr(listener)
        with pytest.raises(memtube.AddrInUse):
            memtube.listen(addr)
        with pytest.raises(memtube.Timeout):
            listener.accept(timeout=0.05)
        with pytest.raises(memtube.Timeout):
            listener.accept(timeout=0)
    assert listener.fileno() == -1
    with pytest.raises(memtube.InvalidArgument):
        listener.accept(timeout=0)
    f = tmp_path / "regular-file"
    f.write_bytes(b"")
    with pytest.raises(memtube.NotASocket):
        memtube.listen(f)
    with pytest.raises(memtube.InvalidArgument):
        memtube.listen(str(tmp_path / ("x" * 200)))


def test_path_address(tmp_path):
    p = tmp_path / "s.sock"
    server, client = pair(p)
    client.sender.send(b"path")
    assert bytes(server.receiver.recv(timeout=5)) == b"path"
    server.close()
    client.close()


def test_bad_options(addr):
    with pytest.raises(memtube.InvalidArgument):
        memtube.listen(addr, direction="sideways")
    with pytest.raises(memtube.InvalidArgument):
        memtube.listen(addr, uid_policy="nobody")
    with pytest.raises(memtube.InvalidArgument):
        memtube.listen(addr, backend="tape")
    with pytest.raises(memtube.InvalidArgument, match="power of two"):
        memtube.listen(addr, capacity=1000)
    with pytest.raises(OverflowError):
        memtube.listen(addr, capacity=-1)


def _try_connect(addr):
    try:
        memtube.connect(addr, timeout=1, handshake_timeout=0.5).close()
    except memtube.Error:
        pass


def test_uid_policy_refuses(addr):
    with memtube.listen(addr, uid_policy=[os.geteuid() + 12345]) as listener:
        t = threading.Thread(target=lambda: _try_connect(addr))
        t.start()
        with pytest.raises(memtube.PermissionDenied) as ei:
            listener.accept(timeout=5)
        assert isinstance(ei.value, PermissionError)
        t.join()
    server, client = pair(unique_addr("uid"), uid_policy="any")
    server.close()
    client.close()


def test_options_variants(addr):
    server, client = pair(addr, duplex=True, isolation=False, pure_spin=True, capacity=1 << 20)
    assert client.sender.capacity == 1 << 20
    client.sender.set_line_padding(False)
    client.sender.set_nontemporal_threshold(1 << 14)
    client.sender.send(b"v")
    assert bytes(server.receiver.recv(timeout=5)) == b"v"
    server.close()
    client.close()


def test_connector_bounds_the_rings_it_accepts(addr):
    with memtube.listen(addr, capacity=1 << 20) as listener:
        errors = []

        def accept():
            try:
                listener.accept(timeout=5)
            except memtube.Error as e:
                errors.append(e)

        t = threading.Thread(target=accept)
        t.start()
        with pytest.raises(memtube.Handshake, match="max_capacity"):
            memtube.connect(addr, capacity=4096, max_capacity=1 << 16)
        t.join()
        assert errors
        t = threading.Thread(target=lambda: listener.accept(timeout=5).close())
        t.start()
        with memtube.connect(addr, max_capacity=1 << 20) as c:
            assert c.sender.capacity == 1 << 20
        t.join()


def test_exception_hierarchy():
    kinds = [
        memtube.Empty, memtube.Full, memtube.Timeout, memtube.Closed, memtube.PeerGone,
        memtube.Cancelled, memtube.TooLarge, memtube.ReplyTooLarge, memtube.Corrupt,
        memtube.Handshake, memtube.Protocol, memtube.PermissionDenied, memtube.AddrInUse,
        memtube.NoListener, memtube.NotASocket, memtube.NoSuchHandle, memtube.Unsupported,
        memtube.OsError, memtube.InvalidArgument, memtube.Busy, memtube.BadRegion,
        memtube.RoleTaken,
    ]
    statuses = [k.status for k in kinds]
    assert statuses == list(range(1, 23))
    for k in kinds:
        assert issubclass(k, memtube.Error) and k.__module__ == "memtube" and k.__doc__
    assert issubclass(memtube.PeerGone, memtube.Disconnected)
    assert issubclass(memtube.OsError, OSError)
    assert issubclass(memtube.Error, Exception)


def test_forward_a_message_and_reprs(duplex):
    server, client = duplex
    client.sender.send(b"forward me", type_id=3)
    m = server.receiver.recv(timeout=5)
    server.sender.send(m, type_id=m.type_id)  # the message's buffer, copied into the other ring
    back = client.receiver.recv(timeout=5)
    assert (back.type_id, bytes(back)) == (3, b"forward me")
    assert m.__exit__(None, None, None) is False and m.released
    g = client.sender.reserve(4, type_id=9)
    assert g.type_id == 9 and "len=4" in repr(g)
    g.abort()
    assert "done" in repr(g)
    with pytest.raises(memtube.InvalidArgument):
        g.abort()


def test_huge_pages_work_or_are_unsupported(addr):
    with memtube.listen(addr, huge_pages=True) as listener:
        box = {}

        def connect():
            try:
                box["c"] = memtube.connect(addr, timeout=5)
            except memtube.Handshake as e:  # the listener refused: no huge pages
                box["e"] = e

        t = threading.Thread(target=connect)
        t.start()
        try:
            server = listener.accept(timeout=5)
        except memtube.Unsupported as e:
            assert "huge pages" in str(e)
            t.join()
            assert "e" in box
            return
        t.join()
        box["c"].sender.send(b"huge")
        assert bytes(server.receiver.recv(timeout=5)) == b"huge"
        server.close()
        box["c"].close()


def test_iteration_raises_peer_gone_on_split_receiver(addr):
    server, client = pair(addr)
    _, rx = server.split()
    client.sender.send(b"last")
    # A sender dropped while its thread panics would say "gone"; a clean
    # close says "closed": here the iteration simply ends.
    client.close()
    assert [bytes(m) for m in rx] == [b"last"]
    with rx:
        pass
