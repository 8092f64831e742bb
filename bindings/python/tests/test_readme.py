"""The top README's Python block, run as written: its receiver in one
process, its sender (after the "# in another process:" line) in another."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import REPO, unique_addr


def readme_block() -> tuple[str, str]:
    text = (REPO / "README.md").read_text()
    start = text.index("```python", text.index("**Python.**")) + len("```python")
    code = text[start:text.index("```", start)]
    receiver, sender = code.split("# in another process:")
    imports = "".join(l + "\n" for l in receiver.splitlines() if l.startswith("import "))
    return receiver, imports + sender


def test_readme_python_block_runs():
    addr = unique_addr("readme")
    receiver, sender = (part.replace("@demo", addr) for part in readme_block())
    rx = subprocess.Popen(
        [sys.executable, "-c", receiver], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(100):  # until the receiver listens
            tx = subprocess.run([sys.executable, "-c", sender], capture_output=True, text=True)
            if tx.returncode == 0 or "NoListener" not in tx.stderr:
                break
            time.sleep(0.05)
        assert tx.returncode == 0, tx.stderr
        out, err = rx.communicate(timeout=10)
        assert rx.returncode == 0, err
        assert out == "1 b'hello'\n", out
    finally:
        rx.kill()
        rx.wait()
