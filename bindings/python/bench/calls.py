"""What each call into the extension costs, in one process, on one core:
the per-round-trip work that memtube's Python round trip adds to the floor.

    python bindings/python/bench/calls.py [--n 1000000]

Each line is the mean of N iterations of a loop (the loop's own cost, an
empty loop, is subtracted), best of 5 runs.
"""

from __future__ import annotations

import argparse
import mmap
import os
import threading
import time

import memtube


def best(fn, n: int, reps: int = 5) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn(n)
        out.append((time.perf_counter_ns() - t0) / n)
    return min(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    n = p.parse_args().n
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass

    addr = f"@memtube-calls-{os.getpid()}"
    listener = memtube.listen(addr, duplex=True)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("c", listener.accept(timeout=10)))
    t.start()
    client = memtube.connect(addr, duplex=True)
    t.join()
    server = box["c"]
    tx, rx = client.sender, server.receiver  # one ring: client -> server
    payload = bytes(32)
    tx.send(payload)
    msg = rx.recv()
    mm = mmap.mmap(-1, 4096)
    q = memoryview(mm).cast("Q")

    def empty(n):
        for _ in range(n):
            pass

    def floor_side(n):  # one side of the floor's round trip: a store and a load
        for i in range(n):
            q[0] = i
            q[16]

    def getter(n):  # a pyo3 getter: the least a call into the extension costs
        m = msg
        for _ in range(n):
            m.type_id

    def length(n):
        m = msg
        for _ in range(n):
            len(m)

    def locked(n):  # a method that takes the handle's lock
        s = tx
        for _ in range(n):
            s.max_payload

    def send_recv(n):  # the work of one side per round trip, without the wait
        send, recv = tx.send, rx.recv
        for _ in range(n):
            send(payload)
            recv()

    def send_recv_of(data, timeouts=False, release=None):
        """send + recv as the checked interop peer writes them, one change
        at a time: another payload type, keyword timeouts, an explicit
        release or a `with` block."""
        send, recv = tx.send, rx.recv

        def loop(n):
            if timeouts:
                for _ in range(n):
                    send(data, 1, timeout=10.0)
                    recv(timeout=10.0)
            elif release == "call":
                for _ in range(n):
                    send(data)
                    recv().release()
            elif release == "with":
                for _ in range(n):
                    send(data)
                    with recv():
                        pass
            else:
                for _ in range(n):
                    send(data)
                    recv()

        return loop

    def send_only(n):
        send, recv = tx.send, rx.recv
        for i in range(n):
            send(payload)
            if i & 255 == 255:
                for _ in range(256):
                    recv()
        for _ in range(n & 255):  # the last partial batch: the ring stays empty between runs
            recv()

    def try_recv_empty(n):  # an exception raised and caught
        while True:
            try:
                rx.try_recv().release()
            except memtube.Empty:
                break
        r = rx.try_recv
        for _ in range(n):
            try:
                r()
            except memtube.Empty:
                pass

    def memoryview_of(n):
        tx.send(payload)
        mm_ = rx.recv()
        for _ in range(n):
            memoryview(mm_).release()

    base = best(empty, n)
    rows = [
        ("empty loop (subtracted below)", base),
        ("floor side: q[0] = i; q[16]", best(floor_side, n) - base),
        ("getter msg.type_id", best(getter, n) - base),
        ("len(msg)", best(length, n) - base),
        ("tx.max_payload (takes the lock)", best(locked, n) - base),
        ("tx.send(32 B) + rx.recv() (same core)", best(send_recv, n) - base),
        ("tx.send(32 B) + rx.recv(), in batches of 256", best(send_only, n) - base),
        ("  the same, sending a bytearray", best(send_recv_of(bytearray(32)), n) - base),
        ("  the same, keyword timeouts on both", best(send_recv_of(payload, timeouts=True), n) - base),
        ("  the same, msg.release() after recv", best(send_recv_of(payload, release="call"), n) - base),
        ("  the same, with rx.recv(): pass", best(send_recv_of(payload, release="with"), n) - base),
        ("rx.try_recv() raising Empty", best(try_recv_empty, n // 10) - base),
        ("memoryview(msg).release()", best(memoryview_of, n) - base),
    ]
    for name, ns in rows:
        print(f"{ns:8.1f} ns  {name}")
    msg.release()
    client.close()
    server.close()


if __name__ == "__main__":
    main()
