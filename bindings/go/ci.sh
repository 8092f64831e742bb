#!/bin/sh
# What CI runs for the Go binding, self-contained on a fresh Debian machine
# (as root): installs Go from Debian's packages if missing, builds libmemtube
# (unless MEMTUBE_LIB_DIR names a folder holding libmemtube.a, and the Rust
# interop peer as interop or examples/interop),
# then gofmt, go vet, the package's tests under the race detector, the
# interop peer against the Rust one both ways, and the pkg-config install
# route of README.md. Without Go and outside CI (CI unset or not "true") it
# prints why and exits 77 (skipped).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if ! command -v go >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go pkg-config >/dev/null
    fi
fi
if ! command -v go >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "ci.sh: Go is not installed and could not be (apt-get install golang-go)" >&2
        exit 1
    fi
    echo "ci.sh: Go is not installed (apt-get install golang-go): Go binding skipped" >&2
    exit 77
fi
go version

if [ -z "${MEMTUBE_LIB_DIR:-}" ]; then
    (cd "$repo" && cargo build --release -p memtube-ffi && cargo build --release -p memtube --example interop)
    MEMTUBE_LIB_DIR=$repo/target/release
fi
lib=$(cd "$MEMTUBE_LIB_DIR" && pwd)
# The Rust interop peer: beside the library (a prepared folder) or where
# cargo puts it (a target folder).
interop=$lib/interop
[ -x "$interop" ] || interop=$lib/examples/interop
if [ ! -x "$interop" ]; then
    echo "ci.sh: no Rust interop peer in $lib or $lib/examples (cargo build -p memtube --example interop)" >&2
    exit 1
fi
export MEMTUBE_LIB_DIR=$lib MEMTUBE_INTEROP=$interop
export GOPROXY=off GOFLAGS=-tags=memtube_nopkgconfig CGO_ENABLED=1
export CGO_CFLAGS="-O2 -I$repo/bindings/c/include"
export CGO_LDFLAGS="$lib/libmemtube.a -lpthread -ldl -lm"
cd "$here"

echo "== gofmt, go vet"
bad=$(gofmt -l .)
if [ -n "$bad" ]; then
    echo "not gofmt'd: $bad" >&2
    exit 1
fi
go vet ./...

echo "== go test -race"
go test -race -count=1 ./...

echo "== the interop peer against the Rust one"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/build-peer.sh" "$tmp" >/dev/null
G=$tmp/interop-go R=$interop
pairrun() { # LISTENER-BIN LISTENER-ARGS CONNECTOR-BIN CONNECTOR-ARGS
    a="@memtube-go-ci-$$-$1"
    "$2" --listen "$a" $3 >"$tmp/l.out" &
    lp=$!
    "$4" --connect "$a" $5 >"$tmp/c.out"
    wait $lp
    l=$(grep '^ok' "$tmp/l.out" | sed 's/ secs=.*//') c=$(grep '^ok' "$tmp/c.out" | sed 's/ secs=.*//')
    if [ -z "$l" ] || [ "$l" != "$c" ]; then
        echo "interop $1 differs: listener '$l', connector '$c'" >&2
        cat "$tmp/l.out" "$tmp/c.out" >&2
        exit 1
    fi
    echo "  $1: $c"
}
pairrun rust-recv-go-send "$R" "--recv --size 700" "$G" "--send 2000 --size 700"
pairrun go-recv-rust-send "$G" "--recv --size 700" "$R" "--send 2000 --size 700"
pairrun rust-serve-go-call "$R" "--serve --size 700" "$G" "--call 2000 --size 700"
pairrun go-serve-rust-call "$G" "--serve --size 700" "$R" "--call 2000 --size 700"

echo "== the Go block of the top README.md: its receiver and its sender, run"
# The block is cut at its "// in another process:" line; each half becomes
# the body of a main with a 10 s context, @demo a fresh address.
mkdir -p "$tmp/readme/recv" "$tmp/readme/send"
printf 'module readme\n\ngo 1.19\n\nrequire memtube v0.0.0\n\nreplace memtube => %s\n' "$here" >"$tmp/readme/go.mod"
awk -v dir="$tmp/readme" -v addr="@memtube-go-readme-$$" '
    /^\*\*Go\.\*\*/ { inside = 1 }
    inside && /^```go$/ { code = 1; out = dir "/recv/main.go"; next }
    code && /^```$/ { exit }
    code && /in another process:/ { out = dir "/send/main.go"; next }
    code { gsub(/@demo/, addr); body[out] = body[out] $0 "\n" }
    END {
        head = "package main\n\nimport (\n\t\"context\"\n\t\"errors\"\n\t\"fmt\"\n\t\"log\"\n\t\"time\"\n\n\t\"memtube\"\n)\n\nvar _, _ = fmt.Sprint, errors.Is\n\nfunc main() {\n\tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)\n\tdefer cancel()\n"
        for (f in body) printf "%s%s}\n", head, body[f] > f
    }' "$repo/README.md"
(cd "$tmp/readme" && go build -o recv-bin ./recv && go build -o send-bin ./send)
"$tmp/readme/recv-bin" >"$tmp/readme/out" &
rp=$!
# Until the receiver listens (Connect does not wait for a listener).
n=0
# (The name shows from bind(2) on; flags 00010000, accepting, after listen(2).)
until awk -v n="@memtube-go-readme-$$" '$NF == n && $4 == "00010000" { f = 1 } END { exit !f }' /proc/net/unix; do
    n=$((n + 1))
    [ $n -lt 500 ] && kill -0 $rp 2>/dev/null || { echo "the README's Go receiver did not listen" >&2; exit 1; }
    sleep 0.02
done
"$tmp/readme/send-bin"
wait $rp # its exit status: 0 only after a clean close (set -e)
[ "$(cat "$tmp/readme/out")" = "1: hello" ] || { echo "the README's Go receiver printed: $(cat "$tmp/readme/out")" >&2; exit 1; }
echo "  $(cat "$tmp/readme/out")"

echo "== the pkg-config route (bindings/c/install.sh, default build tags)"
if command -v pkg-config >/dev/null 2>&1; then
    TARGET_DIR=$lib "$repo/bindings/c/install.sh" "$tmp/prefix" >/dev/null
    # A build cache of its own: Go 1.19 reuses a cached cgo package whose
    # link flags came from an earlier pkg-config run (another, since removed,
    # prefix from a previous run of this script), and the link then fails.
    GOCACHE=$tmp/gocache PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig GOFLAGS= CGO_CFLAGS= CGO_LDFLAGS= \
        go build -o "$tmp/hello" ./examples/hello
    out=$(LD_LIBRARY_PATH=$tmp/prefix/lib "$tmp/hello")
    [ "$out" = "hello (type 1)" ] || { echo "hello said: $out" >&2; exit 1; }
    echo "  $out"
elif [ "${CI:-}" = true ]; then
    echo "ci.sh: pkg-config missing" >&2
    exit 1
else
    echo "  (pkg-config not installed: skipped)"
fi
echo "Go binding: ok"
