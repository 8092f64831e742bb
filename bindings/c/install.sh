#!/bin/sh
# Install memtube's C ABI under PREFIX (default /usr/local): the header, the
# shared and static libraries, and a pkg-config file. Build first:
#
#   cargo build --release -p memtube-ffi
#   bindings/c/install.sh /usr/local          # from the repository root
#   cc app.c $(pkg-config --cflags --libs memtube)             # shared
#   cc app.c $(pkg-config --cflags --libs --static memtube) -static-libgcc  # or link libmemtube.a by path
#
# TARGET_DIR overrides where the libraries are taken from (default target/release).
set -eu
prefix=${1:-/usr/local}
here=$(cd "$(dirname "$0")" && pwd)
target=${TARGET_DIR:-$here/../../target/release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
cp "$here/include/memtube.h" "$prefix/include/memtube.h"
cp "$target/libmemtube.so" "$prefix/lib/libmemtube.so"
cp "$target/libmemtube.a" "$prefix/lib/libmemtube.a"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$here/memtube.pc.in" \
    > "$prefix/lib/pkgconfig/memtube.pc"
echo "installed memtube $version under $prefix"
