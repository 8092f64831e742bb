#!/usr/bin/env bash
# Cross-check of memtube-bench's Tachyon row: Tachyon's 32 B inter-process
# round trip measured as Tachyon's own benchmark runs it (inter.c says how),
# over the one-line floor of the same two processes, in rounds alternated
# with memtube in the same harness (its C ABI) and with memtube-bench's own
# Tachyon row and floor (same scheduling: --fifo).
#
#   bench/tools/tachyon-inter/run.sh [ROUNDS]      (as root: SCHED_FIFO)
#
# Builds Tachyon's C++ core from the sources the tachyon-sys crate vendors
# (fetched by cargo with the bench's `tachyon` feature) with clang-19 the way
# Tachyon's own release build does: -O3 -march=native, and every call inside
# the core inlinable (its CMake links the core into a shared library with
# -flto; here the core's files are compiled as one unit, as memtube-bench's
# build.rs does). The harness calls it through its C API without inlining
# across that boundary, as Tachyon's benchmark calls its shared library (and
# as it calls libmemtube.a). Into target/tachyon-inter.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out="$repo/target/tachyon-inter"
rounds=${1:-5}
mkdir -p "$out"
cd "$repo"
core=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name 'tachyon-sys-0.5.1' 2>/dev/null | head -1)
if [ -z "$core" ]; then
    cargo fetch -q
    core=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name 'tachyon-sys-0.5.1' | head -1)
fi
core="$core/vendor/core"
[ -d "$core/src" ] || { echo "no Tachyon sources under $core" >&2; exit 1; }
CXX=${CXX:-clang++-19}
CC=${CC:-clang-19}
flags="-O3 -march=native"
unit="$out/tachyon_one_unit.cpp"
: > "$unit"
for f in arena shm tachyon_c tachyon_rpc transport_uds; do
    echo "#include \"$core/src/$f.cpp\"" >> "$unit"
done
$CXX $flags -std=c++23 -fno-exceptions -fno-rtti -I"$core/include" -c "$unit" -o "$out/tachyon_one_unit.o"
objs=("$out/tachyon_one_unit.o")
# memtube's C ABI (release build of bindings/c: libmemtube.a), for --system memtube.
CARGO_TARGET_DIR="$repo/target" cargo build -q --release -p memtube-ffi
$CC $flags -std=c17 -Wall -Wextra -I"$core/include" -I"$repo/bindings/c/include" -c "$here/inter.c" -o "$out/inter.o"
$CXX $flags -o "$out/inter" "$out/inter.o" "${objs[@]}" "$repo/target/release/libmemtube.a" -lpthread -lrt -ldl -lm
echo "built $out/inter from $core and target/release/libmemtube.a" >&2

# The bench as of this checkout (a no-op when up to date), unless
# MEMTUBE_BENCH names another binary.
bench="${MEMTUBE_BENCH:-$repo/target/tach/release/memtube-bench}"
if [ -z "${MEMTUBE_BENCH:-}" ]; then
    CXX=$CXX CC=$CC CARGO_TARGET_DIR="$repo/target/tach" cargo build -q --release -p memtube-bench --features tachyon
fi
for r in $(seq 1 "$rounds"); do
    # Tachyon and memtube take turns at going first (the first of a round
    # may find the machine in another state).
    # (inter exits 3 when its round was dropped: the line says so.)
    one() { local rc=0; "$out/inter" "$@" --rounds 1 --iterations 200000 > "$out/round.txt" || rc=$?; [ "$rc" = 0 ] || [ "$rc" = 3 ] || exit "$rc"; }
    tach() { one; sed -n "s/^round 0: /round $r, Tachyon as its benchmark runs it: /p" "$out/round.txt"; }
    memt() { one --system memtube; sed -n "s/^round 0: /round $r, memtube in the same harness: /p" "$out/round.txt"; }
    if [ $((r % 2)) = 1 ]; then tach; memt; else memt; tach; fi
    "$bench" --only 'tachyon|floor: one line' --rounds 1 --fifo --out "$out/bench-$r" |
        awk -F'|' -v r="$r" '$2 == " tachyon " && $3 == " 32 B " && NF > 12 && $5 + 0 > 0 {
            printf "round %s, memtube-bench Tachyon row: p50 %s ns, %sx the bench'"'"'s floor probe\n", r, $5 + 0, $6 + 0 }'
done
