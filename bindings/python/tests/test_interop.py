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

The C and C++ peers are built here with cargo, gcc and g++, the others by
their build-peer.sh. A language whose compiler or toolchain is missing is
skipped, with the reason, except in CI (CI=true), where that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, python_peer, unique_addr

LANGS = ["rust", "python", "c", "cpp", "go", "node", "java"]
# The languages built by bindings/LANG/build-peer.sh OUTDIR (exit 77: the
# toolchain is missing, the reason on stderr).
SCRIPTED = ["go", "node", "java"]
# The languages whose peers have the benchmark roles --echo and --ping.
PINGERS = ["rust", "python", "c", "go", "node", "java"]
N = 2000
CALLS = 300
SIZE = "700"  # payloads of 8..700 bytes


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} not found: CI must test every language")
        pytest.skip(f"{tool} not found: the {tool} peer is not tested on this machine")
    return path


@pytest.fixture(scope="session")
def native_peers(interop_bin, tmp_path_factory) -> dict[str, Path]:
    """Build libmemtube.a (cargo, dev profile) and the C and C++ peers."""
    cargo = _need("cargo")
    subprocess.run([cargo, "build", "--quiet", "-p", "memtube-ffi"], cwd=REPO, check=True)
    lib = Path(interop_bin).parents[1] / "libmemtube.a"
    assert lib.exists(), lib
    out = tmp_path_factory.mktemp("peers")
    include = REPO / "bindings" / "c" / "include"
    libs = [str(lib), "-lpthread", "-ldl", "-lm"]
    built = {}
    for lang, compiler, std, src in [
        ("c", "gcc", "-std=c99", "examples/c/interop.c"),
        ("cpp", "g++", "-std=c++17", "examples/cpp/interop.cpp"),
    ]:
        cc = shutil.which(compiler)
        if cc is None:
            continue
        exe = out / f"interop-{lang}"
        subprocess.run(
            [cc, std, "-O2", "-Wall", "-Wextra", "-Werror", f"-I{include}", str(REPO / src),
             *libs, "-o", str(exe)],
            check=True,
        )
        built[lang] = exe
    missing = {}
    for lang in SCRIPTED:
        script = REPO / "bindings" / lang / "build-peer.sh"
        if not script.exists():
            missing[lang] = f"{script} does not exist"
            continue
        env = dict(os.environ, MEMTUBE_LIB_DIR=str(lib.parent))
        r = subprocess.run(["bash", str(script), str(out)], env=env, capture_output=True, text=True)
        if r.returncode == 77:
            missing[lang] = r.stderr.strip()
            continue
        assert r.returncode == 0, (lang, r.stdout, r.stderr)
        exe = out / f"interop-{lang}"
        assert exe.exists(), (lang, r.stdout, r.stderr)
        built[lang] = exe
    built["missing"] = missing
    return built


@pytest.fixture(scope="session")
def peers(interop_bin, native_peers) -> dict[str, list[str]]:
    cmds = {"rust": [interop_bin], "python": python_peer()}
    cmds.update({lang: [str(exe)] for lang, exe in native_peers.items() if lang != "missing"})
    cmds["missing"] = native_peers["missing"]
    return cmds


def peer(peers: dict, lang: str) -> list[str]:
    if lang in peers["missing"]:
        why = f"the {lang} peer cannot be built here: {peers['missing'][lang]}"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must test every language)")
        pytest.skip(why)
    if lang not in peers:
        _need("gcc" if lang == "c" else "g++")
    return peers[lang]


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
