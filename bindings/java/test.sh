#!/bin/sh
# Build the Java binding and run its test suite (java -ea, our own runner).
#
#   bindings/java/test.sh [-Dtest=NAME] [SUITE ...]
#
# MEMTUBE_LIB_DIR: the folder with libmemtube.a (and the Rust `interop` peer);
# unset, both are built from this repository. MEMTUBE_INTEROP overrides the
# peer's path. BUILD_DIR: where to build (default bindings/java/build).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${BUILD_DIR:-$here/build}
if [ -z "${MEMTUBE_LIB_DIR:-}" ] && command -v cargo >/dev/null 2>&1; then
    (cd "$repo" && cargo build --release -p memtube-ffi >&2 && cargo build --release --example interop >&2)
    export MEMTUBE_LIB_DIR="$repo/target/release"
    : "${MEMTUBE_INTEROP:=$repo/target/release/examples/interop}"
    export MEMTUBE_INTEROP
fi
"$here/build.sh" --all "$out"
jhome=$(cat "$out/java-home")
props=""
for a in "$@"; do case $a in -D*) props="$props $a";; esac; done
suites=""
for a in "$@"; do case $a in -D*) ;; *) suites="$suites $a";; esac; done
# shellcheck disable=SC2086
exec "$jhome/bin/java" -ea -Xcheck:jni $props -Dmemtube.jni.path="$out/libmemtube_jni.so" \
    -Dmemtube.examples="$out/example-classes" -Dmemtube.readme="$repo/README.md" \
    -cp "$out/memtube.jar:$out/test-classes" dev.memtube.TestRunner $suites
