//go:build !memtube_nopkgconfig

package memtube

// Default linking: pkg-config finds memtube.h and libmemtube, as installed by
// bindings/c/install.sh (see README.md). Build with -tags memtube_nopkgconfig
// to give the flags yourself through CGO_CFLAGS and CGO_LDFLAGS instead (what
// build-peer.sh and ci.sh do, linking libmemtube.a statically).

// #cgo pkg-config: memtube
import "C"
