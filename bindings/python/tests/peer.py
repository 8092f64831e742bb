"""The Python twin of examples/interop.rs: the same command line, the same
deterministic sequence of messages, the same closing line, so that any two
of {Python, Rust, C, ...} can be run against each other between two real
processes. See examples/interop.rs for the specification.

    python peer.py (--listen ADDR | --connect ADDR)
                   (--send N | --recv | --serve | --call N | --echo | --ping N | --dump)
                   [--size S] [--capacity C] [--timeout SECS] [--unchecked] [--spin]

--dump receives until the stream ends and prints every message, checking
nothing: `msg TYPE HEX` (`-` for an empty payload), then `end closed`, or
`end KIND` and exit status 1 on any other error (KIND: the C ABI's status
name in lower case without MEMTUBE_, e.g. peer_gone); see examples/interop.rs.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import memtube

_PATTERN = bytes(range(256))


def message(i: int, size: int) -> bytes:
    """Message ``i`` of the sequence with payloads of at most ``size`` bytes."""
    n = 8 + (i * 7919) % (size - 7)
    start = (i * 31 + 8) % 256
    body = b""
    need = n - 8
    if need:
        reps = (start + need) // 256 + 1
        body = (_PATTERN * reps)[start : start + need]
    return i.to_bytes(8, "little") + body


class Fnv:
    """FNV-1a, 64-bit."""

    def __init__(self) -> None:
        self.h = 0xCBF29CE484222325

    def update(self, data: bytes) -> None:
        h = self.h
        for b in data:
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        self.h = h


def open_conn(args: argparse.Namespace) -> memtube.Connection:
    duplex = args.serve or args.echo or args.call is not None or args.ping is not None
    sends = args.send is not None
    listening = args.listen is not None
    direction = "listener_to_connector" if sends == listening else "connector_to_listener"
    opts = dict(
        capacity=args.capacity, duplex=duplex, direction=direction, pure_spin=args.spin
    )
    if listening:
        listener = memtube.listen(args.listen, **opts)
        print("listening", flush=True)
        conn = listener.accept(timeout=args.timeout)
        listener.close()
        return conn
    until = time.monotonic() + args.timeout
    while True:
        try:
            return memtube.connect(args.connect, **opts)
        except memtube.NoListener:
            if time.monotonic() > until:
                raise
            time.sleep(0.01)


def ping(conn: memtube.Connection, args: argparse.Namespace) -> tuple[int, int, float, str]:
    """--ping N: N/10 untimed round trips, then N timed ones (interop.rs)."""
    tx, rx = conn.sender, conn.receiver
    n, warm, size, timeout = args.ping, args.ping // 10, args.size, args.timeout
    msg = bytearray(size)
    samples = []
    clock = time.perf_counter_ns
    prev = clock()
    start = None
    for i in range(warm + n):
        msg[:8] = i.to_bytes(8, "little")
        tx.send(msg, i & 0xFFFFFFFF, timeout=timeout)
        with rx.recv(timeout=timeout) as m:
            if len(m) != size or m.type_id != i & 0xFFFFFFFF or memoryview(m)[:8] != msg[:8]:
                raise SystemExit(f"error: echo {i} differs")
        t = clock()
        if i >= warm:
            samples.append(t - prev)
            start = start or prev
        prev = t
    samples.sort()
    if not samples:
        return 0, 0, 0.0, ""

    def q(p: float) -> int:
        return samples[min(int(len(samples) * p), len(samples) - 1)]

    extra = f" p50_ns={q(0.5)} p99_ns={q(0.99)} p999_ns={q(0.999)}"
    return n, n * size, (prev - start) / 1e9, extra


def kind(e: memtube.Error) -> str:
    """The kind `--dump` prints: the class name in snake case (`PeerGone` ->
    `peer_gone`), which is the C ABI's status name; `OsError` is `os`."""
    if isinstance(e, memtube.OsError):
        return "os"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(e).__name__).lower()


def dump(args: argparse.Namespace) -> int:
    """--dump: every message as `msg TYPE HEX`, then `end KIND`."""
    try:
        conn = open_conn(args)
        rx = conn.receiver
        while True:
            with rx.recv(timeout=args.timeout) as msg:
                print(f"msg {msg.type_id} {bytes(msg).hex() or '-'}")
    except memtube.Error as e:
        end = kind(e)
    print(f"end {end}", flush=True)
    return 0 if end == "closed" else 1


def run(args: argparse.Namespace) -> tuple[int, int, int, float, str]:
    conn = open_conn(args)
    if args.ping is not None:
        count, nbytes, secs, extra = ping(conn, args)
        conn.close()
        return count, nbytes, 0, secs, extra
    count = nbytes = 0
    fnv = Fnv()
    start = None
    if args.send is not None:
        tx = conn.sender
        for i in range(args.send):
            m = message(i, args.size)
            tx.send(m, i & 0xFFFFFFFF, timeout=args.timeout)
            start = start or time.perf_counter()
            fnv.update(m)
            nbytes += len(m)
            count += 1
    elif args.echo:
        tx = conn.sender
        for msg in conn.receiver:
            start = start or time.perf_counter()
            tx.send(msg, msg.type_id, timeout=args.timeout)
            nbytes += len(msg)
            count += 1
            msg.release()
    elif args.recv and args.unchecked:
        for msg in conn.receiver:
            start = start or time.perf_counter()
            nbytes += len(msg)
            count += 1
            msg.release()
    elif args.recv:
        for msg in conn.receiver:
            start = start or time.perf_counter()
            want = message(count, args.size)
            got = bytes(msg)
            if msg.type_id != count & 0xFFFFFFFF or got != want:
                raise SystemExit(
                    f"error: message {count} differs: type id {msg.type_id}, "
                    f"{len(got)} bytes (expected {len(want)})"
                )
            fnv.update(got)
            nbytes += len(got)
            count += 1
    elif args.serve:
        bad = []

        def handler(ty: int, req: bytes):
            nonlocal count, nbytes, start
            start = start or time.perf_counter()
            if ty != count & 0xFFFFFFFF or req != message(count, args.size):
                bad.append(count)
            fnv.update(req)
            nbytes += len(req)
            count += 1
            return ((ty + 1) & 0xFFFFFFFF, req[::-1])

        conn.serve(handler)
        if bad:
            raise SystemExit(f"error: request {bad[0]} differs")
    else:
        for i in range(args.call):
            m = message(i, args.size)
            with conn.call(i & 0xFFFFFFFF, m, timeout=args.timeout) as reply:
                start = start or time.perf_counter()
                if reply.type_id != (i + 1) & 0xFFFFFFFF or bytes(reply) != m[::-1]:
                    raise SystemExit(f"error: reply {i} differs")
            fnv.update(m)
            nbytes += len(m)
            count += 1
    conn.close()
    secs = time.perf_counter() - start if start else 0.0
    h = 0 if args.echo or args.unchecked else fnv.h
    return count, nbytes, h, secs, ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen")
    where.add_argument("--connect")
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--send", type=int)
    role.add_argument("--recv", action="store_true")
    role.add_argument("--serve", action="store_true")
    role.add_argument("--call", type=int)
    role.add_argument("--echo", action="store_true")
    role.add_argument("--ping", type=int)
    role.add_argument("--dump", action="store_true")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--capacity", type=int, default=1 << 16)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--unchecked", action="store_true")
    p.add_argument("--spin", action="store_true")
    args = p.parse_args(argv)
    if args.size < 8:
        p.error("--size must be at least 8")
    if args.dump:
        sys.exit(dump(args))
    try:
        count, nbytes, h, secs, extra = run(args)
    except memtube.Error as e:
        print(f"error: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print(f"ok count={count} bytes={nbytes} fnv={h:016x} secs={secs:.6f}{extra}", flush=True)


if __name__ == "__main__":
    main()
