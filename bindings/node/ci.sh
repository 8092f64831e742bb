#!/bin/sh
# What CI runs for the Node.js binding, self-contained on a fresh Debian
# machine as root: installs node and a C compiler when missing (Debian's
# packages), the dev dependencies (npm registry), builds the addon and the
# Rust interop peer, runs the binding's test suite (node --test).
#   MEMTUBE_LIB_DIR  folder of libmemtube.a (and the `interop` peer); unset:
#                    both are built from this repository with cargo.
# Locally a missing toolchain skips (exit 77); under CI=true it fails.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ci=${CI:-false}

missing() {
    if [ "$ci" = true ]; then
        echo "ci.sh: $1" >&2
        exit 1
    fi
    echo "ci.sh: $1: skipping the Node.js binding" >&2
    exit 77
}

node_ok() {
    command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]
}

if ! node_ok || ! command -v npm >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        node_ok || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null
        command -v npm >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
        command -v cc >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
    fi
    node_ok || missing "node 18 or later is not installed"
    command -v npm >/dev/null 2>&1 || missing "npm is not installed"
    command -v cc >/dev/null 2>&1 || missing "no C compiler (cc)"
fi
echo "ci.sh: node $(node --version), npm $(npm --version)" >&2

if [ -z "${MEMTUBE_LIB_DIR:-}" ]; then
    (cd "$repo" && cargo build --release -p memtube-ffi && cargo build --release --example interop)
    export MEMTUBE_LIB_DIR="$repo/target/release"
    export MEMTUBE_INTEROP="$repo/target/release/examples/interop"
elif [ -z "${MEMTUBE_INTEROP:-}" ] && [ ! -x "$MEMTUBE_LIB_DIR/interop" ]; then
    (cd "$repo" && cargo build --release --example interop)
    export MEMTUBE_INTEROP="$repo/target/release/examples/interop"
fi
export MEMTUBE_LIB_DIR

cd "$here"
# typescript, @types/node and node-api-headers (no lockfile: the ranges in
# package.json pin the majors)
npm install --ignore-scripts --no-audit --no-fund --no-package-lock --loglevel=error
node build.js
node --test test/
