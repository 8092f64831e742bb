#!/bin/sh
# Build the Java binding and its interop peer, and write OUTDIR/interop-java,
# a wrapper taking examples/interop.rs's command line. MEMTUBE_LIB_DIR names
# the folder holding libmemtube.a (unset: built from this repository).
# Exits 77 (with the reason on stderr) when the JDK or a C compiler is missing.
#
#   bindings/java/build-peer.sh OUTDIR
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
"$here/build.sh" --all "$out/java" >&2
jhome=$(cat "$out/java/java-home")
cat > "$out/interop-java" <<WRAP
#!/bin/sh
exec "$jhome/bin/java" -Xms64m -Xmn16m -XX:+AlwaysPreTouch -Dmemtube.jni.path="$out/java/libmemtube_jni.so" \\
    -cp "$out/java/memtube.jar:$out/java/memtube-peer.jar" dev.memtube.interop.Interop "\$@"
WRAP
chmod +x "$out/interop-java"
