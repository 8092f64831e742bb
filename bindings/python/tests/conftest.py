"""Shared fixtures: unique addresses, the Rust interop peer, child processes."""

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
