"""Python round-trip latency and stream rate of memtube, next to the Python
floor (and, with --peers, Tachyon's and iceoryx2's Python packages).

    python bindings/python/bench/pingpong.py [--rounds 10] [--iters 20000]
        [--peers tachyon,iceoryx2] [--json out.json]

Each round runs every probe once, in the same order, two processes pinned
to CPUs 0 (this one, the client) and 1 (a child, the echo):

- floor: two Python processes exchange a counter through one shared mapping
  (mmap + memoryview.cast("Q")): the client writes i in the ping word and
  spins until the pong word (another cache line, 128 bytes further) reads i;
  the echo spins on ping and writes pong. The least a Python round trip can
  cost: no call into any extension.
- memtube 32 B: a duplex connection (default options); the client sends
  32 bytes (Sender.send) and receives the echo (Receiver.recv); the echo
  receives and sends the message back as is (send(msg): no copy to bytes).
- memtube 64 KiB numpy: the same with 64 KiB; each side views the received
  message as a numpy array without copying (numpy.frombuffer) and reads it.
- stream Python -> Rust: one-way, 32-byte messages sent one by one
  (Sender.send) and in batches of 64 (send_staged + publish) to the Rust
  peer examples/interop.rs (--recv --unchecked, release build); messages/s
  as the Rust side times it, from its first message to the close.
- tachyon (--peers): tachyon-ipc's RpcBus, call + wait / serve + reply, as in
  its README's RPC section.
- iceoryx2 (--peers): two publish-subscribe services (ping, pong) of a
  32-byte ctypes payload, loan_uninit + write_payload + send, and a
  busy-polled receive, as in its examples and its ping-pong benchmark.

Every round trip is timed (one perf_counter_ns per iteration, the same
loop shape for every probe); p50 and p99 after a warm-up of a tenth.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CLIENT_CPU, ECHO_CPU = 0, 1
SMALL, BIG = 32, 64 * 1024
PING, PONG = 0, 16  # words of the floor's mapping: 128 bytes apart


def pin(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def stats(samples: list[int]) -> dict:
    s = sorted(samples[len(samples) // 10 :])
    n = len(s)
    return {
        "p50": s[n // 2],
        "p99": s[min(n - 1, n * 99 // 100)],
        "n": n,
    }


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--role", *args],
        stdout=subprocess.PIPE,
        text=True,
    )


def expect(p: subprocess.Popen, word: str) -> None:
    line = p.stdout.readline().strip()
    if line != word:
        p.kill()
        raise RuntimeError(f"echo said {line!r}, expected {word!r}")


# ---------------------------------------------------------------------- floor


def floor_map(path: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 4096)
    mm = mmap.mmap(fd, 4096)
    os.close(fd)
    return mm, memoryview(mm).cast("Q")


def floor_echo(path: str, n: int) -> None:
    pin(ECHO_CPU)
    mm, q = floor_map(path)
    print("ready", flush=True)
    for i in range(1, n + 1):
        while q[PING] != i:
            pass
        q[PONG] = i
    q.release()
    mm.close()


def floor_client(iters: int) -> list[int]:
    path = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
                        f"memtube-floor-{os.getpid()}")
    mm, q = floor_map(path)
    q[PING] = q[PONG] = 0
    echo = spawn("floor-echo", path, str(iters))
    expect(echo, "ready")
    samples = [0] * iters
    perf = time.perf_counter_ns
    t0 = perf()
    for i in range(1, iters + 1):
        q[PING] = i
        while q[PONG] != i:
            pass
        t1 = perf()
        samples[i - 1] = t1 - t0
        t0 = t1
    echo.wait()
    q.release()
    mm.close()
    os.unlink(path)
    return samples


# -------------------------------------------------------------------- memtube


def mt_echo(addr: str, big: str) -> None:
    import memtube

    pin(ECHO_CPU)
    conn = memtube.connect(addr, duplex=True, timeout=10)
    tx, rx = conn.sender, conn.receiver
    print("ready", flush=True)
    if big == "1":
        import numpy as np

        for m in rx:
            a = np.frombuffer(m, np.uint8)
            a[-1]  # read it in place
            tx.send(a)
            del a
    else:
        for m in rx:
            tx.send(m)
    conn.close()


def mt_client(iters: int, size: int) -> list[int]:
    import memtube

    addr = f"@memtube-bench-{os.getpid()}-{size}-{time.monotonic_ns()}"
    cap = 1 << 20 if size > 4096 else 1 << 16
    with memtube.listen(addr, duplex=True, capacity=cap) as listener:
        echo = spawn("mt-echo", addr, "1" if size > SMALL else "0")
        conn = listener.accept(timeout=10)
    expect(echo, "ready")
    tx, rx = conn.sender, conn.receiver
    samples = [0] * iters
    perf = time.perf_counter_ns
    if size > SMALL:
        import numpy as np

        payload = np.zeros(size, np.uint8)
        t0 = perf()
        for i in range(iters):
            tx.send(payload)
            a = np.frombuffer(rx.recv(), np.uint8)
            a[-1]
            del a
            t1 = perf()
            samples[i] = t1 - t0
            t0 = t1
    else:
        payload = bytes(size)
        send, recv = tx.send, rx.recv
        t0 = perf()
        for i in range(iters):
            send(payload)
            recv()
            t1 = perf()
            samples[i] = t1 - t0
            t0 = t1
    conn.close()
    echo.wait()
    return samples


def interop_bin() -> str:
    env = os.environ.get("MEMTUBE_INTEROP_BIN")
    if env:
        return env
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "interop"],
                   cwd=REPO, check=True)
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, check=True, capture_output=True, text=True).stdout)
    return str(Path(meta["target_directory"]) / "release" / "examples" / "interop")


def stream_to_rust(binary: str, n: int, batch: int) -> dict:
    import memtube

    addr = f"@memtube-bench-stream-{os.getpid()}-{time.monotonic_ns()}"
    sink = subprocess.Popen(
        ["taskset", "-c", str(ECHO_CPU), binary, "--listen", addr, "--recv", "--unchecked",
         "--capacity", str(1 << 18), "--size", "64"],
        stdout=subprocess.PIPE, text=True)
    expect(sink, "listening")
    conn = memtube.connect(addr, capacity=1 << 18, timeout=10)
    tx = conn.sender
    tx.set_line_padding(False)  # a stream packs small messages
    payload = bytes(SMALL)
    n = n // batch * batch
    t0 = time.perf_counter()
    if batch == 1:
        send = tx.send
        for _ in range(n):
            send(payload)
    else:
        staged, publish = tx.send_staged, tx.publish
        for _ in range(n // batch):
            for _ in range(batch):
                try:
                    staged(payload)
                except memtube.Full:
                    publish()
                    tx.send(payload)
            publish()
    py_secs = time.perf_counter() - t0
    conn.close()
    out = sink.communicate(timeout=60)[0].strip().splitlines()[-1].split()
    fields = dict(w.split("=", 1) for w in out[1:])
    count, secs = int(fields["count"]), float(fields["secs"])
    assert count == n, (count, n)
    return {"msgs_per_s": count / secs, "py_msgs_per_s": n / py_secs}


# --------------------------------------------------------------------- peers


def tachyon_echo(path: str) -> None:
    import tachyon

    pin(ECHO_CPU)
    with tachyon.RpcBus.rpc_listen(path, 1 << 16, 1 << 16) as callee:
        print("ready", flush=True)
        try:
            while True:
                with callee.serve() as rx:
                    cid = rx.correlation_id
                    with memoryview(rx) as m:
                        reply = m.tobytes()
                callee.reply(cid, reply, msg_type=2)
        except (tachyon.TachyonError, KeyboardInterrupt):
            pass


def tachyon_client(iters: int) -> list[int]:
    import tachyon

    path = os.path.join(tempfile.gettempdir(), f"memtube-bench-tachyon-{os.getpid()}.sock")
    echo = spawn("tachyon-echo", path)
    # rpc_listen blocks until the caller connects: retry until the socket exists.
    deadline = time.monotonic() + 10
    while True:
        try:
            caller = tachyon.RpcBus.rpc_connect(path)
            break
        except Exception:  # noqa: BLE001 - not there yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    expect(echo, "ready")
    payload = bytes(SMALL)
    samples = [0] * iters
    perf = time.perf_counter_ns
    t0 = perf()
    for i in range(iters):
        cid = caller.call(payload, msg_type=1)
        with caller.wait(cid) as rx:
            with memoryview(rx) as m:
                m[0]
        t1 = perf()
        samples[i] = t1 - t0
        t0 = t1
    caller._rpc.destroy()
    echo.kill()
    echo.wait()
    try:
        os.unlink(path)
    except OSError:
        pass
    return samples


def iox_services(prefix: str):
    import ctypes

    import iceoryx2 as iox2

    class Payload(ctypes.Structure):
        _fields_ = [("data", ctypes.c_uint8 * SMALL)]

    iox2.set_log_level_from_env_or(iox2.LogLevel.Error)
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    ping = node.service_builder(iox2.ServiceName.new(prefix + "/ping")).publish_subscribe(Payload).open_or_create()
    pong = node.service_builder(iox2.ServiceName.new(prefix + "/pong")).publish_subscribe(Payload).open_or_create()
    return node, ping, pong, Payload


def iox_echo(prefix: str, n: str) -> None:
    pin(ECHO_CPU)
    node, ping, pong, Payload = iox_services(prefix)
    sub = ping.subscriber_builder().create()
    pub = pong.publisher_builder().create()
    print("ready", flush=True)
    for _ in range(int(n)):
        while (sample := sub.receive()) is None:
            pass
        sample.delete()
        s = pub.loan_uninit()
        s.write_payload(Payload()).send()


def iox_client(iters: int) -> list[int]:
    prefix = f"memtube-bench-{os.getpid()}-{time.monotonic_ns()}"
    node, ping, pong, Payload = iox_services(prefix)
    pub = ping.publisher_builder().create()
    sub = pong.subscriber_builder().create()
    echo = spawn("iox-echo", prefix, str(iters))
    expect(echo, "ready")
    time.sleep(0.2)  # let the ports connect
    samples = [0] * iters
    perf = time.perf_counter_ns
    t0 = perf()
    for i in range(iters):
        s = pub.loan_uninit()
        s.write_payload(Payload()).send()
        while (r := sub.receive()) is None:
            pass
        r.delete()
        t1 = perf()
        samples[i] = t1 - t0
        t0 = t1
    echo.wait()
    return samples


# ----------------------------------------------------------------------- main


def role(args: list[str]) -> None:
    r, rest = args[0], args[1:]
    {
        "floor-echo": lambda: floor_echo(rest[0], int(rest[1])),
        "mt-echo": lambda: mt_echo(rest[0], rest[1]),
        "tachyon-echo": lambda: tachyon_echo(rest[0]),
        "iox-echo": lambda: iox_echo(rest[0], rest[1]),
    }[r]()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--role":
        role(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--iters", type=int, default=20000, help="32-byte round trips per probe and round")
    p.add_argument("--big-iters", type=int, default=2000, help="64 KiB round trips per round")
    p.add_argument("--stream", type=int, default=500_000, help="messages of the stream per round (0: none)")
    p.add_argument("--peers", default="", help="comma-separated: tachyon,iceoryx2")
    p.add_argument("--json", help="write every round's figures here")
    a = p.parse_args()
    pin(CLIENT_CPU)
    peers = [x for x in a.peers.split(",") if x]
    binary = interop_bin() if a.stream else None
    try:
        model = [ln for ln in open("/proc/cpuinfo") if ln.startswith("model name")][0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        model = "?"
    print(f"# {model}; Python {sys.version.split()[0]}; client CPU {CLIENT_CPU}, echo CPU {ECHO_CPU}")
    rounds = []
    for r in range(1, a.rounds + 1):
        res = {"floor": stats(floor_client(a.iters)),
               "memtube_32": stats(mt_client(a.iters, SMALL)),
               "memtube_64k_numpy": stats(mt_client(a.big_iters, BIG))}
        for peer in peers:
            try:
                res[peer] = stats({"tachyon": tachyon_client, "iceoryx2": iox_client}[peer](a.iters))
            except ImportError as e:
                res[peer] = {"error": str(e)}
        if binary:
            res["stream_send"] = stream_to_rust(binary, a.stream, 1)
            res["stream_staged64"] = stream_to_rust(binary, a.stream, 64)
        res["ratio_32"] = res["memtube_32"]["p50"] / res["floor"]["p50"]
        rounds.append(res)
        line = (f"round {r:2}: floor p50 {res['floor']['p50']:6} p99 {res['floor']['p99']:6} | "
                f"memtube 32 B p50 {res['memtube_32']['p50']:6} p99 {res['memtube_32']['p99']:6} "
                f"({res['ratio_32']:.2f}x floor) | 64 KiB numpy p50 {res['memtube_64k_numpy']['p50']:7} "
                f"p99 {res['memtube_64k_numpy']['p99']:7}")
        for peer in peers:
            st = res[peer]
            line += (f" | {peer} p50 {st['p50']:6} p99 {st['p99']:6} ({st['p50'] / res['floor']['p50']:.1f}x)"
                     if "p50" in st else f" | {peer}: {st['error']}")
        if binary:
            line += (f" | stream send {res['stream_send']['msgs_per_s'] / 1e6:.2f} M/s, "
                     f"staged64 {res['stream_staged64']['msgs_per_s'] / 1e6:.2f} M/s")
        print(line, flush=True)
    med = lambda k, f="p50": sorted(x[k][f] for x in rounds)[len(rounds) // 2]  # noqa: E731
    ratios = sorted(x["ratio_32"] for x in rounds)
    print(f"median over {len(rounds)} rounds (ns): floor p50 {med('floor')}, memtube 32 B p50 "
          f"{med('memtube_32')} p99 {med('memtube_32', 'p99')}, ratio {ratios[len(ratios) // 2]:.2f}x "
          f"(worst {ratios[-1]:.2f}x), 64 KiB numpy p50 {med('memtube_64k_numpy')}")
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": model, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
