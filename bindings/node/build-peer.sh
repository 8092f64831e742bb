#!/bin/sh
# Build the Node.js binding and its interop peer; write OUTDIR/interop-node,
# an executable taking examples/interop.rs's command line.
#   bindings/node/build-peer.sh OUTDIR
# MEMTUBE_LIB_DIR: folder of libmemtube.a (unset: built from this repository).
# Exit 77 (skip) when node or a C compiler is missing.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
if ! command -v node >/dev/null 2>&1; then
    echo "build-peer.sh: node is not installed (Node.js 18 or later needed): skipping the Node.js peer" >&2
    exit 77
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "build-peer.sh: node $(node --version) is too old (18 or later needed): skipping the Node.js peer" >&2
    exit 77
fi
if ! command -v "${CC:-cc}" >/dev/null 2>&1; then
    echo "build-peer.sh: no C compiler (${CC:-cc}) to build the addon: skipping the Node.js peer" >&2
    exit 77
fi
node "$here/build.js"
node=$(command -v node)
cat > "$out/interop-node" <<WRAP
#!/bin/sh
exec "$node" "$here/examples/interop.js" "\$@"
WRAP
chmod +x "$out/interop-node"
echo "build-peer.sh: wrote $out/interop-node" >&2
