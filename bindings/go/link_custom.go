//go:build memtube_nopkgconfig

package memtube

// With -tags memtube_nopkgconfig the compiler and linker flags come from the
// environment only, for example:
//
//	CGO_CFLAGS="-I$REPO/bindings/c/include"
//	CGO_LDFLAGS="$LIBDIR/libmemtube.a -lpthread -ldl -lm"

// #cgo LDFLAGS: -lpthread -ldl -lm
import "C"
