#!/bin/sh
# Build the Go binding and its interop peer (cmd/interop-go) into
# OUTDIR/interop-go, linking libmemtube.a statically from MEMTUBE_LIB_DIR
# (unset: built from this repository with cargo, in target/release).
# Exit 77 (and say why on stderr) when Go is not installed.
#
#   bindings/go/build-peer.sh OUTDIR
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
if ! command -v go >/dev/null 2>&1; then
    echo "build-peer.sh: Go is not installed (apt-get install golang-go); skipping the Go peer" >&2
    exit 77
fi
if [ -z "${MEMTUBE_LIB_DIR:-}" ]; then
    (cd "$repo" && cargo build --release -p memtube-ffi >&2)
    MEMTUBE_LIB_DIR=$repo/target/release
fi
lib=$(cd "$MEMTUBE_LIB_DIR" && pwd)
if [ ! -f "$lib/libmemtube.a" ]; then
    echo "build-peer.sh: no libmemtube.a in $lib" >&2
    exit 1
fi
cd "$here"
GOFLAGS="${GOFLAGS:-} -tags=memtube_nopkgconfig" GOPROXY=off GO111MODULE=on \
    CGO_ENABLED=1 CGO_CFLAGS="-O2 -I$repo/bindings/c/include" \
    CGO_LDFLAGS="$lib/libmemtube.a -lpthread -ldl -lm" \
    go build -trimpath -o "$out/interop-go" ./cmd/interop-go
echo "$out/interop-go"
