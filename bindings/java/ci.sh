#!/bin/sh
# What CI runs for the Java binding, self-contained on a fresh Debian machine
# (as root): installs OpenJDK 17 and a C compiler when missing (apt-get),
# builds libmemtube_jni.so and the jar, and runs the test suite
# (bindings/java/test.sh). Uses MEMTUBE_LIB_DIR when set (libmemtube.a and
# the Rust `interop` peer); otherwise builds both with cargo.
# Without CI=true a toolchain that cannot be installed skips (exit 77); with
# CI=true it fails.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

toolchain_missing() {
    echo "memtube java ci: $1" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 77
}

jdk17() { ls -d /usr/lib/jvm/java-17-openjdk-* 2>/dev/null | head -n 1; }

if [ -z "$(jdk17)" ] || ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || true
        apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless gcc libc6-dev >&2 \
            || toolchain_missing "apt-get could not install openjdk-17-jdk-headless and gcc"
    else
        toolchain_missing "OpenJDK 17 or cc missing, and no apt-get as root to install them"
    fi
fi
j=$(jdk17)
[ -n "$j" ] && [ -x "$j/bin/javac" ] || toolchain_missing "no javac under /usr/lib/jvm/java-17-openjdk-*"
export JAVA_HOME="$j"
exec "$here/test.sh"
