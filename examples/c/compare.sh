#!/usr/bin/env bash
# Round trips over the C ABI next to the Rust API, in alternated rounds:
# each round runs ./pingpong-c (C <-> C), examples/pingpong.rs (Rust <-> Rust)
# and ./pingpong-c with the Rust example as its echo (C main <-> Rust echo),
# each holding /tmp/memtube-build.lock (the machine is shared). Every run
# measures its own interleaved one-line floor. Results: docs/bench/c-abi.md.
#
#   examples/c/compare.sh [ROUNDS] [--quick]     (from the repository root)
set -euo pipefail
rounds=${1:-12}
mode=${2:-}
lock=/tmp/memtube-build.lock
out=${OUT:-target/c-abi-bench}
mkdir -p "$out"
flock "$lock" cargo build --release -p memtube-ffi
flock "$lock" cargo build --release --example pingpong
flock "$lock" cc -O2 -Ibindings/c/include examples/c/pingpong.c target/release/libmemtube.a \
    -lpthread -ldl -lm -o "$out/pingpong-c"
for r in $(seq 1 "$rounds"); do
    flock "$lock" "$out/pingpong-c" $mode > "$out/c-$r.txt"
    flock "$lock" target/release/examples/pingpong $mode > "$out/rust-$r.txt"
    flock "$lock" "$out/pingpong-c" $mode --peer target/release/examples/pingpong > "$out/c-rust-$r.txt"
    echo "round $r done"
done
python3 - "$out" "$rounds" <<'PY'
import re, sys, statistics
out, rounds = sys.argv[1], int(sys.argv[2])
cases = ["pure-spin", "default", "no-isol"]
def c_results(path):
    res = {}
    for line in open(path):
        m = re.match(r"RESULT case=(\S+) p50=(\d+) p99=(\d+) p999=(\d+) floor=(\d+)", line)
        if m:
            res[m.group(1)] = tuple(int(x) for x in m.group(2, 3, 4, 5))
    return res
def rust_results(path):
    res = {}
    for line in open(path):
        for c in cases:
            m = re.match(r"%s\s+32 B\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)" % c, line)
            if m:
                v = [int(x) for x in m.groups()]
                res[c] = (v[2], v[4], v[5], v[7])  # p50, p99, p99.9, floor
    return res
rows = []
for r in range(1, rounds + 1):
    rows.append((r, c_results(f"{out}/c-{r}.txt"), rust_results(f"{out}/rust-{r}.txt"),
                 c_results(f"{out}/c-rust-{r}.txt")))
for c in cases:
    print(f"\n### {c} 32 B (p50 / p99 / p99.9 / interleaved floor p50, ns)\n")
    print("| round | C<->C | Rust<->Rust | C main<->Rust echo | floors within 10 % | C/Rust p50 | C-R/Rust p50 |")
    print("|---|---|---|---|---|---|---|")
    ratios, ratios_cr = [], []
    for r, cc, rr, cr in rows:
        a, b, x = cc[c], rr[c], cr[c]
        ok = max(a[3], b[3]) <= 1.10 * min(a[3], b[3])
        ok_cr = max(x[3], b[3]) <= 1.10 * min(x[3], b[3])
        fmt = lambda t: "%d / %d / %d / %d" % t
        q = a[0] / b[0]
        qx = x[0] / b[0]
        if ok: ratios.append(q)
        if ok_cr: ratios_cr.append(qx)
        print(f"| {r} | {fmt(a)} | {fmt(b)} | {fmt(x)} | {'yes' if ok else 'no'}{'' if ok_cr else ' (C-R: no)'} | {q:.3f} | {qx:.3f} |")
    if ratios:
        print(f"\nC<->C / Rust<->Rust p50 over {len(ratios)} comparable rounds: median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")
    if ratios_cr:
        print(f"C main<->Rust echo / Rust<->Rust p50 over {len(ratios_cr)} comparable rounds: median {statistics.median(ratios_cr):.3f}, mean {statistics.mean(ratios_cr):.3f}")
PY
