#!/bin/sh
# Build the Java binding: OUTDIR/memtube.jar (classes + libmemtube_jni.so packed
# inside), OUTDIR/libmemtube_jni.so, and with --all also the interop peer
# (OUTDIR/memtube-peer.jar), the tests (OUTDIR/test-classes) and the README's
# example (OUTDIR/example-classes).
#
#   bindings/java/build.sh [--all] [OUTDIR]     (default OUTDIR: bindings/java/build)
#
# The C library comes from MEMTUBE_LIB_DIR (a folder holding libmemtube.a);
# unset, it is built from this repository (cargo build --release -p memtube-ffi).
# The JDK: JAVA_HOME if it holds bin/javac, else the one of `javac` on PATH
# (its real path). Needs a JDK >= 17 and a C compiler (cc). Exits 77 when
# one is missing.
set -eu
all=no
if [ "${1:-}" = "--all" ]; then all=yes; shift; fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)

missing() { echo "memtube java: $1" >&2; exit 77; }

if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then
    jhome=$JAVA_HOME
else
    javac_bin=$(command -v javac 2>/dev/null) || missing "no javac on PATH (install openjdk-17-jdk-headless)"
    jhome=$(dirname "$(dirname "$(readlink -f "$javac_bin")")")
fi
[ -f "$jhome/include/jni.h" ] || missing "no jni.h under $jhome/include (a JRE, not a JDK?)"
release=$("$jhome/bin/javac" -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p')
[ "${release:-0}" -ge 17 ] || missing "javac $release at $jhome is older than 17"
command -v "${CC:-cc}" >/dev/null 2>&1 || missing "no C compiler (${CC:-cc})"

if [ -z "${MEMTUBE_LIB_DIR:-}" ]; then
    command -v cargo >/dev/null 2>&1 || missing "MEMTUBE_LIB_DIR unset and no cargo to build libmemtube"
    (cd "$repo" && cargo build --release -p memtube-ffi >&2)
    MEMTUBE_LIB_DIR=$repo/target/release
fi
[ -f "$MEMTUBE_LIB_DIR/libmemtube.a" ] || { echo "no libmemtube.a in $MEMTUBE_LIB_DIR" >&2; exit 1; }

# The JNI shim, with libmemtube.a inside; the Rust symbols stay hidden.
"${CC:-cc}" -std=c99 -O2 -g -Wall -Wextra -Werror -fPIC -shared \
    -I"$jhome/include" -I"$jhome/include/linux" -I"$repo/bindings/c/include" \
    "$here/src/main/c/memtube_jni.c" "$MEMTUBE_LIB_DIR/libmemtube.a" \
    -Wl,--exclude-libs,ALL -Wl,-z,defs -lpthread -ldl -lm -lc \
    -o "$out/libmemtube_jni.so"

rm -rf "$out/classes"
"$jhome/bin/javac" --release 17 -Xlint:all -Werror -d "$out/classes" $(find "$here/src/main/java" -name '*.java')
mkdir -p "$out/classes/dev/memtube/native/linux-x86_64"
cp "$out/libmemtube_jni.so" "$out/classes/dev/memtube/native/linux-x86_64/"
"$jhome/bin/jar" --create --file "$out/memtube.jar" -C "$out/classes" .

if [ "$all" = yes ]; then
    rm -rf "$out/peer-classes" "$out/test-classes"
    "$jhome/bin/javac" --release 17 -Xlint:all -Werror -cp "$out/memtube.jar" -d "$out/peer-classes" \
        $(find "$here/src/peer/java" -name '*.java')
    "$jhome/bin/jar" --create --file "$out/memtube-peer.jar" -C "$out/peer-classes" .
    "$jhome/bin/javac" --release 17 -Xlint:all -Werror -cp "$out/memtube.jar" -d "$out/test-classes" \
        $(find "$here/src/test/java" -name '*.java')
    rm -rf "$out/example-classes"
    "$jhome/bin/javac" --release 17 -Xlint:all -Werror -cp "$out/memtube.jar" -d "$out/example-classes" \
        "$here/examples/Hello.java"
fi
echo "$jhome" > "$out/java-home"
