"""Every language against every other, between real processes.

Each language has a peer that sends, receives, serves or calls the same
deterministic sequence and checks every byte (examples/interop.rs says how):
Rust (examples/interop.rs), Python (tests/peer.py, this package), C
(examples/c/interop.c over libmemtube), C++ (examples/cpp/interop.cpp over
memtube.hpp), Go, Node.js and Java (each binding's own peer, built by
bindings/LANG/build-peer.sh over libmemtube). For each ordered pair: a stream
from one to the other (who listens alternates), and call/serve. Both sides
must end with the same count, byte count and FNV-1a hash. Each language's
round-trip benchmark roles (--ping against --echo) are checked against Rust
both ways.

The peers are built once per session by the `peers` fixture (conftest.py):
the C and C++ peers with cargo, gcc and g++, the others by their
build-peer.sh. A language whose compiler or toolchain is missing is
skipped, with the reason, except in CI (CI=true), where that fails.
"""

from __future__ import annotations

import subprocess

import pytest

from conftest import LANGS, peer, unique_addr

# The languages whose peers have the benchmark roles --echo and --ping.
PINGERS = ["rust", "python", "c", "go", "node", "java"]
N = 2000
CALLS = 300
SIZE = "700"  # payloads of 8..700 bytes


def run_pair(listen_cmd: list[str], connect_cmd: list[str]) -> tuple[str, str]:
    """Run a listening and a connecting peer; both must succeed. Returns
    their closing lines."""
    lp = subprocess.Popen(listen_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = lp.stdout.readline().strip()
        assert first == "listening", (first, lp.stderr.read())
        cp = subprocess.run(connect_cmd, capture_output=True, text=True, timeout=120)
        out, err = lp.communicate(timeout=120)
    finally:
        lp.kill()
        lp.wait()
    c_line = cp.stdout.strip().splitlines()[-1] if cp.stdout.strip() else cp.stderr
    l_line = out.strip().splitlines()[-1] if out.strip() else err
    assert cp.returncode == 0 and lp.returncode == 0, (l_line, c_line, err, cp.stderr)
    return l_line, c_line


def check_same(a: str, b: str, count: int) -> None:
    def summary(line: str) -> dict[str, str]:
        words = line.split()
        assert words[0] == "ok", line
        return dict(w.split("=", 1) for w in words[1:])

    sa, sb = summary(a), summary(b)
    assert int(sa["count"]) == int(sb["count"]) == count
    assert sa["bytes"] == sb["bytes"] and sa["fnv"] == sb["fnv"]


PAIRS = [(a, b) for a in LANGS for b in LANGS]


@pytest.mark.parametrize("src,dst", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_stream(peers, src, dst):
    addr = unique_addr(f"s{src}{dst}")
    opts = ["--size", SIZE, "--capacity", "16384"]
    send = [*peer(peers, src), "--send", str(N), *opts]
    recv = [*peer(peers, dst), "--recv", *opts]
    # Who listens alternates over the matrix, so both roles meet every language.
    if (LANGS.index(src) + LANGS.index(dst)) % 2 == 0:
        a, b = run_pair([*send, "--listen", addr], [*recv, "--connect", addr])
    else:
        a, b = run_pair([*recv, "--listen", addr], [*send, "--connect", addr])
    check_same(a, b, N)


@pytest.mark.parametrize("server,caller", PAIRS, ids=[f"{b}-calls-{a}" for a, b in PAIRS])
def test_call_serve(peers, server, caller):
    addr = unique_addr(f"c{server}{caller}")
    a, b = run_pair(
        [*peer(peers, server), "--listen", addr, "--serve", "--size", SIZE],
        [*peer(peers, caller), "--connect", addr, "--call", str(CALLS), "--size", SIZE],
    )
    check_same(a, b, CALLS)


PING_PAIRS = [(a, "rust") for a in PINGERS] + [("rust", b) for b in PINGERS if b != "rust"]


@pytest.mark.parametrize("pinger,echo", PING_PAIRS, ids=[f"{a}-pings-{b}" for a, b in PING_PAIRS])
def test_ping_echo(peers, pinger, echo):
    """The round-trip benchmark's roles: every echo comes back intact (the
    pinger checks length, type id and sequence number), percentiles printed."""
    addr = unique_addr(f"p{pinger}{echo}")
    n = 2000
    a, b = run_pair(
        [*peer(peers, echo), "--listen", addr, "--echo", "--size", "32"],
        [*peer(peers, pinger), "--connect", addr, "--ping", str(n), "--size", "32"],
    )
    fields = dict(w.split("=", 1) for w in b.split()[1:])
    assert b.split()[0] == "ok" and int(fields["count"]) == n, b
    assert 0 < int(fields["p50_ns"]) <= int(fields["p99_ns"]) <= int(fields["p999_ns"]), b
    echoed = dict(w.split("=", 1) for w in a.split()[1:])
    assert a.split()[0] == "ok" and int(echoed["count"]) == n + n // 10, a
