#!/usr/bin/env bash
# Every language binding's 32-byte round trip, against itself and against
# Rust, in memtube-bench's interleaved rounds with the floor probes:
#
#   bench/tools/langs.sh [--quick | --full] [--rounds N] [--out DIR]
#
# Builds one interop peer per language into target/langs/ over the release
# libmemtube (Rust: examples/interop.rs; C: examples/c/interop.c; Python:
# bindings/python/tests/peer.py with the package installed in
# target/langs/venv; Go, Node.js, Java: bindings/LANG/build-peer.sh), then
# runs `memtube-bench --langs target/langs` with the arguments given. A
# language whose toolchain is missing is left out, with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
dir=$repo/target/langs
mkdir -p "$dir"
cargo build -q --release -p memtube-ffi -p memtube-bench
cargo build -q --release -p memtube --example interop
lib=$repo/target/release
cp "$lib/examples/interop" "$dir/interop-rust"
if command -v cc >/dev/null; then
  cc -std=c99 -O2 -Ibindings/c/include examples/c/interop.c "$lib/libmemtube.a" \
    -lpthread -ldl -lm -o "$dir/interop-c"
else
  echo "langs: C left out: no cc" >&2
fi
venv=$dir/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import memtube" 2>/dev/null \
   || [ -n "$(find bindings/python/src src platform-* ring-core/src -newer "$venv/.built" 2>/dev/null | head -1)" ]; then
  rm -rf "$venv"
  if python3 -m venv "$venv" && "$venv/bin/pip" install -q maturin \
     && "$venv/bin/pip" install -q ./bindings/python; then
    touch "$venv/.built"
  else
    echo "langs: Python left out: could not install the package into $venv" >&2
    rm -rf "$venv"
  fi
fi
if [ -x "$venv/bin/python" ]; then
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$venv/bin/python" "$repo/bindings/python/tests/peer.py" \
    > "$dir/interop-python"
  chmod +x "$dir/interop-python"
fi
for lang in go node java; do
  if [ ! -e "bindings/$lang/build-peer.sh" ]; then
    echo "langs: $lang left out: no bindings/$lang/build-peer.sh" >&2
    continue
  fi
  rc=0
  MEMTUBE_LIB_DIR=$lib bash "bindings/$lang/build-peer.sh" "$dir" || rc=$?
  if [ "$rc" = 77 ]; then
    echo "langs: $lang left out (toolchain missing, see above)" >&2
    rm -f "$dir/interop-$lang"
  elif [ "$rc" != 0 ]; then
    echo "langs: building the $lang peer failed ($rc)" >&2
    exit 1
  fi
done
exec "$lib/memtube-bench" --langs "$dir" "$@"
