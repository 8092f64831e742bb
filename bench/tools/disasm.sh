#!/bin/bash
# Disassemble one function of a binary (demangled name, exact match) and run
# the store-forwarding check on it.
#   bench/tools/disasm.sh target/release/memtube-bench 'memtube_bench::systems::ring::memtube_ring_processes_peer'
set -euo pipefail
bin=$1
name=$2
line=$(nm -C -S "$bin" | awk -v n="$name" '{ s=$0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", s); if (s == n && !done) { print $1, $2; done = 1 } }')
[ -n "$line" ] || { echo "no function named $name in $bin" >&2; exit 1; }
read -r addr size <<<"$line"
out=$(mktemp)
objdump -d --no-show-raw-insn -C "$bin" --start-address=0x$addr --stop-address=$(printf "0x%x" $((0x$addr + 0x$size))) | tail -n +8 > "$out"
echo "$out: $(wc -l < "$out") lines"
python3 "$(dirname "$0")/sfcheck.py" "$out"
