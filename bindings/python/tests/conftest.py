"""Shared fixtures: unique addresses, child processes, and every language's
interop peer (built once per session; test_interop.py and
test_conformance.py run them)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

import memtube

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
_counter = itertools.count()

# Every language's interop peer (examples/interop.rs is the specification).
LANGS = ["rust", "python", "c", "cpp", "go", "node", "java"]
# The languages built by bindings/LANG/build-peer.sh OUTDIR (exit 77: the
# toolchain is missing, the reason on stderr).
SCRIPTED = ["go", "node", "java"]


def unique_addr(tag: str = "t") -> str:
    """A fresh Linux abstract address (a socket path elsewhere)."""
    n = next(_counter)
    if sys.platform.startswith("linux"):
        return f"@memtube-py-{os.getpid()}-{tag}-{n}"
    return os.path.join(tempfile.gettempdir(), f"mtpy-{os.getpid()}-{tag}-{n}.sock")


@pytest.fixture
def addr(request) -> str:
    return unique_addr(request.node.name[:20])


def pair(addr: str, **opts):
    """(listener-side connection, connector-side connection) in this process."""
    with memtube.listen(addr, **opts) as listener:
        box = {}

        def accept():
            try:
                box["conn"] = listener.accept(timeout=10)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["err"] = e

        t = threading.Thread(target=accept)
        t.start()
        client = memtube.connect(addr, **opts)
        t.join()
        if "err" in box:
            raise box["err"]
        return box["conn"], client


@pytest.fixture
def duplex(addr):
    server, client = pair(addr, duplex=True)
    yield server, client
    for c in (server, client):
        try:
            c.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


@pytest.fixture
def oneway(addr):
    """(receiver-side connection (listener), sender-side connection (connector))."""
    server, client = pair(addr)
    yield server, client
    for c in (server, client):
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="session")
def interop_bin() -> str:
    """The Rust peer, examples/interop.rs (built with cargo unless
    MEMTUBE_INTEROP_BIN names a binary)."""
    env = os.environ.get("MEMTUBE_INTEROP_BIN")
    if env:
        return env
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo not found: cannot build examples/interop.rs")
    subprocess.run(
        [cargo, "build", "--quiet", "--example", "interop"],
        cwd=REPO,
        check=True,
    )
    out = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    import json

    target = Path(json.loads(out)["target_directory"])
    return str(target / "debug" / "examples" / "interop")


def python_peer(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "peer.py"), *args]


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
