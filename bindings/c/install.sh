#!/bin/sh
# Install memtube's C ABI under PREFIX (default /usr/local): the headers
# (memtube.h and the C++ wrapper memtube.hpp), the shared and static
# libraries, and a pkg-config file. Build first:
#
#   cargo build --release -p memtube-ffi
#   bindings/c/install.sh /usr/local          # from the repository root
#   cc app.c $(pkg-config --cflags --libs memtube)             # shared
#   cc app.c $(pkg-config --cflags --libs --static memtube) -static-libgcc  # or link libmemtube.a by path
#
# The shared library is named after the ABI version of memtube.h (major M,
# minor m; its SONAME is libmemtube.so.M):
#   Linux: lib/libmemtube.so.M.m, and the links libmemtube.so.M -> libmemtube.so.M.m
#          (what programs load) and libmemtube.so -> libmemtube.so.M (what -lmemtube finds)
#   macOS: lib/libmemtube.M.dylib (install name @rpath/libmemtube.M.dylib), and
#          the link libmemtube.dylib -> libmemtube.M.dylib
# Run ldconfig afterwards for a prefix in the loader's search path.
#
# TARGET_DIR overrides where the libraries are taken from (default target/release).
set -eu
prefix=${1:-/usr/local}
here=$(cd "$(dirname "$0")" && pwd)
target=${TARGET_DIR:-$here/../../target/release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
# The ABI version from src/version.rs, where build.rs reads the SONAME's.
abi() { sed -n "s/^pub const MEMTUBE_ABI_VERSION_$1: u32 = \([0-9][0-9]*\);\$/\1/p" "$here/src/version.rs"; }
major=$(abi MAJOR)
minor=$(abi MINOR)
[ -n "$major" ] && [ -n "$minor" ] || { echo "install.sh: no ABI version in src/version.rs" >&2; exit 1; }
lib=$prefix/lib
mkdir -p "$prefix/include" "$lib/pkgconfig"
cp "$here/include/memtube.h" "$here/include/memtube.hpp" "$prefix/include/"
# A new file (rm first), never rewritten in place: running programs keep the old one.
put() { rm -f "$2" && cp "$1" "$2"; }
if [ "$(uname -s)" = Darwin ]; then
    put "$target/libmemtube.dylib" "$lib/libmemtube.$major.dylib"
    ln -sf "libmemtube.$major.dylib" "$lib/libmemtube.dylib"
else
    put "$target/libmemtube.so" "$lib/libmemtube.so.$major.$minor"
    ln -sf "libmemtube.so.$major.$minor" "$lib/libmemtube.so.$major"
    ln -sf "libmemtube.so.$major" "$lib/libmemtube.so"
fi
put "$target/libmemtube.a" "$lib/libmemtube.a"
# macOS: the install name is @rpath/..., so programs linked through
# pkg-config get the prefix's lib folder as their run path.
rpath=
[ "$(uname -s)" = Darwin ] && rpath=" -Wl,-rpath,\${libdir}"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|^Libs: \(.*\)|Libs: \1$rpath|" "$here/memtube.pc.in" \
    > "$lib/pkgconfig/memtube.pc"
echo "installed memtube $version (ABI $major.$minor) under $prefix"
