// Package memtube is the Go binding of memtube: lock-free single-producer
// single-consumer message rings in shared memory between two processes on
// one machine, over the library's C ABI (libmemtube, bindings/c).
//
// A listener accepts connections; a connection has a Sender, a Receiver or
// (duplex) both, and duplex connections also offer Call and Serve. Received
// messages are zero-copy views of the ring ([]byte over shared memory),
// valid until released; Sender.Reserve gives a writable view of the ring to
// fill in place before Commit.
//
// Blocking calls take a context.Context: its deadline becomes the timeout,
// and its cancellation is noticed within about 50 ms (the calls wait in C in
// slices of at most 50 ms and check the context in between). A goroutine
// blocked in a call holds an OS thread, as any cgo call does, but never a P:
// other goroutines keep running (README.md has the measurement).
//
// Every handle may be used by one goroutine at a time: a second goroutine
// that calls into a handle in use gets ErrBusy (never a data race). Close may
// be called from any goroutine: it makes a call blocked on the handle return
// ErrClosed within about 50 ms, then frees. Handles that are never closed are
// freed by a finalizer once unreachable (a safety net, not the release path).
//
// See README.md for lifetimes and limits.
package memtube

// #include "shim.h"
import "C"

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ABIVersion is the C ABI version of the library linked in (major<<16 | minor).
func ABIVersion() uint32 { return uint32(C.memtube_abi_version()) }

// Version is the library's release ("0.1.0").
func Version() string { return C.GoString(C.memtube_version()) }

// ABIMajor is the C ABI major version this package was written against.
const ABIMajor = C.MEMTUBE_ABI_VERSION_MAJOR

// Direction says which side of a one-way connection sends.
type Direction int32

const (
	// ConnectorToListener: the connecting process sends (the default).
	ConnectorToListener Direction = C.MEMTUBE_DIRECTION_CONNECTOR_TO_LISTENER
	// ListenerToConnector: the listening process sends.
	ListenerToConnector Direction = C.MEMTUBE_DIRECTION_LISTENER_TO_CONNECTOR
)

// UIDPolicy says who may connect.
type UIDPolicy int32

const (
	// SameUID: only processes of this effective uid (the default).
	SameUID UIDPolicy = C.MEMTUBE_UID_POLICY_SAME_UID
	// AnyUID: anyone who can reach the socket.
	AnyUID UIDPolicy = C.MEMTUBE_UID_POLICY_ANY
	// ListedUIDs: only the uids in Options.UIDs.
	ListedUIDs UIDPolicy = C.MEMTUBE_UID_POLICY_UIDS
)

// Options configure Listen, Connect and Listener.AcceptWith. The zero value
// (or a nil *Options) is the defaults: the connector sends, 64 KiB rings,
// one-way, isolation on, spin-then-sleep waiting, same uid only, 5 s
// handshake timeout. The listener's options decide the rings; Duplex and
// Direction must agree on both sides (ErrHandshake otherwise).
type Options struct {
	Capacity         uint32        // data-area bytes per ring: a power of two, 64..2^31 (0: 64 KiB); the largest message is about half
	MaxCapacity      uint32        // the largest ring a connector accepts from a listener (0: 64 MiB)
	Duplex           bool          // two rings, one each way: needed by Call and Serve
	Direction        Direction     // which side sends in a one-way connection
	NoIsolation      bool          // turn off kernel-enforced isolation (faster for round trips of a few hundred bytes)
	PureSpin         bool          // blocked calls spin, never sleep: lowest latency, burns a core each
	HugePages        bool          // back the rings with 2 MiB huge pages (ErrUnsupported when the kernel has none)
	Mlock            bool          // mlock this side's mappings
	UIDPolicy        UIDPolicy     // who may connect
	UIDs             []uint32      // with ListedUIDs
	HandshakeTimeout time.Duration // how long either side waits for the other's handshake message (0: 5 s)
}

// cOptions builds C options from o (nil: defaults) with the given connect
// timeout (0: default) and cancel token (nil: none). The caller frees the
// result with C.memtube_options_free.
func cOptions(op string, o *Options, connectTimeout time.Duration, tok *C.memtube_cancel_token) (*C.memtube_options, error) {
	if o == nil {
		o = &Options{}
	}
	co := C.memtube_options_new()
	if co == nil {
		return nil, newError(op, StatusOS, "out of memory")
	}
	s := C.mt_scratch_new()
	if s == nil {
		C.memtube_options_free(co)
		return nil, newError(op, StatusOS, "out of memory")
	}
	defer C.free(unsafe.Pointer(s))
	var uids *C.uint32_t
	if len(o.UIDs) > 0 {
		// cgo pointer rules: &o.UIDs[0] points to Go memory holding no Go
		// pointers, and the library only reads it during the call (it copies).
		uids = (*C.uint32_t)(unsafe.Pointer(&o.UIDs[0]))
	}
	ct := int64(connectTimeout) // 0 keeps the library's default
	st := C.mt_options(co, C.uint32_t(o.Capacity), C.uint32_t(o.MaxCapacity), C._Bool(o.Duplex),
		C._Bool(!o.NoIsolation), C._Bool(o.PureSpin), C._Bool(o.HugePages), C._Bool(o.Mlock),
		C.int32_t(o.Direction), C.int64_t(ct), C.int64_t(o.HandshakeTimeout),
		C.int32_t(o.UIDPolicy), uids, C.size_t(len(o.UIDs)), tok, s)
	if st != C.MEMTUBE_OK {
		err := fromScratch(op+": options", st, s)
		C.memtube_options_free(co)
		return nil, err
	}
	return co, nil
}

// slice is the longest a blocking call stays in C before it looks at its
// context and at Close again.
const slice = 50 * time.Millisecond

// core is what every Go handle has: the lock that keeps one goroutine at a
// time in the C handle (the C handles are Send, not Sync), the closed state,
// and the C scratch block the shim reports through.
type core struct {
	mu      sync.Mutex
	closing int32 // atomic: Close was called; blocking loops stop at their next slice
	closed  bool  // under mu: the C handle is gone
	// canceled (under mu): a Call's context cancelled the connection's
	// cancel token, which stays cancelled.
	canceled bool
	s        *C.mt_scratch // under mu; C memory, freed with the handle
}

// us is the scratch block as the hot-path helpers take it (C memory, so
// no cgo pointer check is needed).
func (c *core) us() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(c.s))) }

// key identifies the handle to the shim (a number, never used as a pointer).
func (c *core) key() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(c))) }

func newCore() (*core, error) {
	s := C.mt_scratch_new()
	if s == nil {
		return nil, newError("new handle", StatusOS, "out of memory")
	}
	return &core{s: s}, nil
}

// enter takes the handle for one call: ErrBusy when another goroutine is in
// it, ErrClosed once closed. The caller must call c.mu.Unlock after.
func (c *core) enter(op string) error {
	if !c.mu.TryLock() {
		return newError(op, StatusBusy, "another goroutine is using this handle (one at a time)")
	}
	if c.closed {
		c.mu.Unlock()
		return newError(op, StatusClosed, "use of a closed handle")
	}
	return nil
}

// beginClose marks the handle closing (blocked calls return at their next
// slice) and waits for the goroutine inside it to leave. It returns false,
// unlocked, when the handle was closed already.
func (c *core) beginClose() bool {
	atomic.StoreInt32(&c.closing, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	return true
}

// endClose records that the C handle is gone and frees the scratch block.
func (c *core) endClose() {
	c.closed = true
	C.free(unsafe.Pointer(c.s))
	c.s = nil
	c.mu.Unlock()
}

// wait is how long a blocking call may wait: until ctx ends (ctx non-nil)
// and/or until deadline (has). A wait made from a duration (waitFor) reads
// the clock only when its first slice ran out: the fast path, where the
// first slice succeeds, costs no clock reading.
type wait struct {
	ctx      context.Context
	deadline time.Time
	has      bool
	dur      time.Duration // with lazy: the whole wait
	lazy     int8          // 1: before the first slice, 2: after it, deadline not yet read; 0: has says
}

// waitCtx waits as ctx allows.
func waitCtx(ctx context.Context) wait {
	d, ok := ctx.Deadline()
	return wait{ctx: ctx, deadline: d, has: ok}
}

// waitFor waits at most d (negative: without limit).
func waitFor(d time.Duration) wait {
	if d < 0 {
		return wait{}
	}
	return wait{dur: d, lazy: 1}
}

// timeoutError is the error of a wait that reached its deadline.
func (w *wait) timeoutError(err error) error {
	if w.ctx != nil {
		if e, ok := err.(*Error); ok {
			e.ctx = context.DeadlineExceeded
		}
	}
	return err
}

// next is the timeout for the next slice of a blocking call, or the error
// that ends it (context done, deadline passed, handle closing). last reports
// whether this slice ends at the deadline (so a TIMEOUT from C is final).
func (c *core) next(w *wait, op string) (ns int64, last bool, err error) {
	if atomic.LoadInt32(&c.closing) != 0 {
		return 0, false, newError(op, StatusClosed, "closed while waiting")
	}
	if w.ctx != nil {
		if done := w.ctx.Done(); done != nil {
			select {
			case <-done:
				return 0, false, ctxError(op, w.ctx)
			default:
			}
		}
	}
	ns = int64(slice)
	switch w.lazy {
	case 1:
		if w.dur <= slice {
			w.lazy = 0 // (this slice is the whole wait: last)
			return int64(w.dur), true, nil
		}
		w.lazy = 2
		return ns, false, nil
	case 2:
		// The first slice, a whole slice long, ran out: the rest of the
		// wait follows from the clock.
		w.lazy = 0
		w.deadline, w.has = time.Now().Add(w.dur-slice), true
	}
	if w.has {
		r := time.Until(w.deadline)
		if r <= 0 {
			return 0, false, w.timeoutError(newError(op, StatusTimeout, "the deadline passed"))
		}
		if int64(r) <= ns {
			return int64(r), true, nil
		}
	}
	return ns, false, nil
}

// fail is the error of status st from a call on this handle: a
// cancellation caused by Close (through the token) reads as ErrClosed.
func (c *core) fail(op string, st C.int32_t) error {
	if st == C.MEMTUBE_CANCELLED && atomic.LoadInt32(&c.closing) != 0 {
		return newError(op, StatusClosed, "closed by another goroutine while waiting")
	}
	if st == C.MEMTUBE_CANCELLED && c.canceled {
		return newError(op, StatusCanceled, "the connection's cancel token was cancelled by an earlier Call's context and stays so: close the connection")
	}
	return fromScratch(op, st, c.s)
}

// timeoutOf is the whole remaining time of ctx as a C timeout
// (MEMTUBE_FOREVER without a deadline), for the calls that cannot wait in
// slices (Connect, Call).
func timeoutOf(w *wait) int64 {
	if w.lazy != 0 {
		return int64(w.dur)
	}
	if w.has {
		r := time.Until(w.deadline)
		if r <= 0 {
			return 1 // as short as possible; 0 would mean "do not wait" with its own status
		}
		return int64(r)
	}
	return C.MEMTUBE_FOREVER
}

// watch calls C.memtube_cancel_token_cancel(tok) if ctx ends before stop is
// called; stop returns whether it did. Without a Done channel it costs nothing.
func watch(ctx context.Context, tok *C.memtube_cancel_token) (stop func() bool) {
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	if done == nil || tok == nil {
		return func() bool { return false }
	}
	quit := make(chan struct{})
	fired := make(chan bool, 1)
	go func() {
		select {
		case <-done:
			// A deadline is the C call's own timeout: only a cancellation
			// needs the token (which stays cancelled).
			if ctx.Err() != context.Canceled {
				fired <- false
				return
			}
			// tok is live: the caller frees it only after stop returned.
			C.memtube_cancel_token_cancel(tok)
			fired <- true
		case <-quit:
			fired <- false
		}
	}()
	return func() bool {
		close(quit)
		return <-fired
	}
}

// PeerState is what a handle knows of its peer.
type PeerState int32

const (
	PeerAlive  PeerState = C.MEMTUBE_PEER_STATE_ALIVE  // alive as of the last probe
	PeerClosed PeerState = C.MEMTUBE_PEER_STATE_CLOSED // closed cleanly
	PeerGone   PeerState = C.MEMTUBE_PEER_STATE_GONE   // died (or closed its socket without a clean close)
)

func (p PeerState) String() string {
	switch p {
	case PeerAlive:
		return "alive"
	case PeerClosed:
		return "closed"
	case PeerGone:
		return "gone"
	}
	return "unknown"
}

// Stats are a ring's counters, read while the ring runs: they may be slightly
// inconsistent or lag by one batch.
type Stats struct {
	MessagesCommitted uint64 // messages the producer published
	BytesCommitted    uint64 // payload bytes the producer published
	FullEvents        uint64 // times a reservation found the ring full on its first try
	ProducerWakes     uint64 // wake calls the producer made
	MessagesReleased  uint64 // messages the consumer released
	BytesReleased     uint64 // payload bytes the consumer released
	ConsumerWakes     uint64 // wake calls the consumer made
}

func statsOf(s *C.memtube_stats) Stats {
	return Stats{uint64(s.messages_committed), uint64(s.bytes_committed), uint64(s.full_events),
		uint64(s.producer_wakes), uint64(s.messages_released), uint64(s.bytes_released),
		uint64(s.consumer_wakes)}
}

// PeerCred is the peer's process credentials when it connected.
type PeerCred struct {
	PID int32
	UID uint32
	GID uint32
}
