package memtube

// #include "shim.h"
import "C"

import (
	"context"
	"math"
	"runtime/cgo"
	"sync/atomic"
	"time"
	"unsafe"
)

// Call sends a request (type typeID, body req) on a duplex connection and
// waits for the reply, a Message held by the connection's receiver (valid
// until released, the next Call, Serve or receive on the connection, or its
// close). The context's deadline bounds the whole call (ErrTimeout, also
// matching context.DeadlineExceeded); a reply that comes later is skipped by
// the next Call.
//
// Cancellation: a call waits in C in one piece (it cannot be resumed once
// its request is out), so cancelling ctx stops it through the connection's
// cancel token, and a token once cancelled stays so: the connection's later
// blocking calls return ErrCanceled (what needs no wait still works; close
// it). A cancellation that comes as the reply does is reported too
// (ErrCanceled, the reply released): the token is cancelled either way.
// Prefer a deadline to stop a Call that may hang. With a cancellable
// ctx each Call also starts a goroutine that watches it.
//
// ErrTooLarge above MaxRequest; ErrReplyTooLarge when the server's reply did
// not fit; ErrNoSuchHandle on a one-way connection; ErrProtocol when the
// server broke the protocol (its handler panicked, for a Go server).
func (c *Conn) Call(ctx context.Context, typeID uint32, req []byte) (Message, error) {
	w := waitCtx(ctx)
	return c.call(&w, typeID, req)
}

// CallTimeout is Call bounded by d (negative: without limit) instead of a
// context: no watcher goroutine, and nothing can cancel it but Close.
func (c *Conn) CallTimeout(typeID uint32, req []byte, d time.Duration) (Message, error) {
	w := waitFor(d)
	return c.call(&w, typeID, req)
}

func (c *Conn) call(w *wait, typeID uint32, req []byte) (Message, error) {
	const op = "call"
	if err := c.c.enter(op); err != nil {
		return Message{}, err
	}
	defer c.c.mu.Unlock()
	if c.rx == nil || c.tx == nil {
		return Message{}, newError(op, StatusNoSuchHandle, "call needs a duplex connection")
	}
	if w.lazy == 0 { // (a lazy wait has not started: nothing to check yet)
		if _, _, err := c.c.next(w, op); err != nil {
			return Message{}, err
		}
	}
	if c.rx.held() && overlaps(req, c.rx.data, c.rx.n) {
		// The call releases the held message before it reads req: a
		// request made of that message's bytes (a reply passed on) is
		// copied first, while they are still ours.
		req = append([]byte(nil), req...)
	}
	c.rx.drop() // the call releases the message held first, whatever it returns
	stop := watch(w.ctx, c.tok)
	st := C.mt_call(c.conn, C.uint32_t(typeID), bytesArg(req), C.size_t(len(req)), C.int64_t(timeoutOf(w)), c.c.s)
	if stop() {
		// The context's cancellation cancelled the token, for good: even
		// when the reply came first, the call reports the cancellation
		// (later blocking calls would fail anyway) and gives the reply back.
		c.c.canceled = true
		if st == C.MEMTUBE_OK {
			C.mt_release(c.rx.urx(), c.c.us())
			return Message{}, ctxError(op, w.ctx)
		}
	}
	if st == C.MEMTUBE_OK {
		r := &Receiver{c: c.c, st: c.rx, conn: c}
		return r.hold(), nil
	}
	if st == C.MEMTUBE_CANCELLED && atomic.LoadInt32(&c.c.closing) == 0 && w.ctx != nil && w.ctx.Err() != nil {
		return Message{}, ctxError(op, w.ctx)
	}
	err := c.c.fail(op, st)
	if st == C.MEMTUBE_TIMEOUT {
		err = w.timeoutError(err)
	}
	return Message{}, err
}

// overlaps reports whether p shares a byte with the n bytes at data.
func overlaps(p []byte, data uintptr, n int) bool {
	if len(p) == 0 || n == 0 {
		return false
	}
	// (Addresses compared as numbers only: no pointer is made from them.)
	a := uintptr(unsafe.Pointer(&p[0]))
	return a < data+uintptr(n) && data < a+uintptr(len(p))
}

// Handler answers one request: typeID and body req (in place in the ring,
// valid only during the call: copy what you keep), and an empty reply to
// fill. It returns the reply's type id (math.MaxUint32 is reserved: the
// caller then gets ErrProtocol). It must not use the connection being served
// (such calls return ErrBusy, Close included). A panic in the handler is recovered at the C
// boundary, the caller gets ErrProtocol, and Serve re-panics with the same
// value in the serving goroutine.
type Handler func(typeID uint32, req []byte, reply *Reply) uint32

// Reply is the reply a Handler fills; valid only during the handler's call.
// It is built in Go memory and handed to the library once, when the handler
// returns: no slice of it points into the library's memory.
type Reply struct {
	buf    []byte
	ext    []extent // the slices Extend gave, copied into buf at the handler's return
	active bool     // false outside the handler's call
}

// extent is a slice Extend gave, for bytes at of the reply.
type extent struct {
	at int
	p  []byte
}

// Write appends p to the reply (io.Writer).
func (r *Reply) Write(p []byte) (int, error) {
	if !r.active {
		return 0, newError("reply write", StatusInvalidArgument, "the reply is used outside its handler")
	}
	r.buf = append(r.buf, p...)
	return len(p), nil
}

// Extend appends n zero bytes to the reply and returns them to fill in
// place, until the handler returns: later Writes and Extends do not move
// them (a header may be filled in once the body is written). Their content
// when the handler returns is what is sent. Nil for a negative n, or
// outside the handler.
func (r *Reply) Extend(n int) []byte {
	if !r.active || n < 0 {
		return nil
	}
	p := make([]byte, n)
	r.ext = append(r.ext, extent{len(r.buf), p})
	r.buf = append(r.buf, p...) // (room, filled from p at the handler's return)
	return p
}

// serving is what the C handler trampoline finds through its cgo.Handle.
type serving struct {
	h        Handler
	buf      []byte   // the reply's buffer, reused from one request to the next
	ext      []extent // its Extend slices, likewise
	panicked bool
	panicVal interface{}
}

//export goMemtubeHandle
func goMemtubeHandle(h C.uintptr_t, typeID C.uint32_t, req *C.uint8_t, n C.size_t, reply *C.memtube_reply) (ret C.uint32_t) {
	sv := cgo.Handle(h).Value().(*serving)
	if sv.panicked {
		return C.uint32_t(math.MaxUint32)
	}
	rep := &Reply{buf: sv.buf[:0], ext: sv.ext[:0], active: true}
	// No Go panic may unwind into the library's frames: recover here.
	defer func() {
		rep.active = false
		if p := recover(); p != nil {
			sv.panicked = true
			sv.panicVal = p
			ret = C.uint32_t(math.MaxUint32)
			return
		}
		for i, e := range rep.ext {
			copy(rep.buf[e.at:], e.p)
			rep.ext[i] = extent{} // (no slice kept alive by the reuse)
		}
		sv.buf, sv.ext = rep.buf, rep.ext
		if len(rep.buf) == 0 {
			return
		}
		// The reply goes to the library in one copy (cgo pointer rules:
		// rep.buf is Go memory holding no Go pointers, read during the call
		// only).
		if st := C.memtube_reply_write(reply, unsafe.Pointer(&rep.buf[0]), C.size_t(len(rep.buf))); st != C.MEMTUBE_OK {
			ret = C.uint32_t(math.MaxUint32) // out of memory: the caller gets ErrProtocol
		}
	}()
	body := []byte{}
	if n > 0 {
		// SAFETY (raw pointer): the library passes the request's n bytes,
		// in place in the ring, valid during this call (the documented
		// lifetime of req).
		body = unsafe.Slice((*byte)(unsafe.Pointer(req)), int(n))
	}
	return C.uint32_t(sv.h(uint32(typeID), body, rep))
}

// ServeOne waits for one request as ctx allows, answers it with h, and
// sends the reply. ErrClosed when the peer closed; ErrReplyTooLarge when the
// reply did not fit (not sent; serving may go on).
func (c *Conn) ServeOne(ctx context.Context, h Handler) error {
	return c.serve(ctx, h, true)
}

// Serve answers requests with h until the peer closes (then it returns nil),
// ctx ends, or an error. A reply too large for the ring is not sent (the
// caller gets ErrReplyTooLarge) and serving goes on.
func (c *Conn) Serve(ctx context.Context, h Handler) error {
	return c.serve(ctx, h, false)
}

func (c *Conn) serve(ctx context.Context, h Handler, one bool) error {
	const op = "serve"
	if h == nil {
		return newError(op, StatusInvalidArgument, "nil handler")
	}
	if err := c.c.enter(op); err != nil {
		return err
	}
	defer c.c.mu.Unlock()
	if c.rx == nil || c.tx == nil {
		return newError(op, StatusNoSuchHandle, "serve needs a duplex connection")
	}
	sv := &serving{h: h}
	hd := cgo.NewHandle(sv)
	defer hd.Delete()
	w := waitCtx(ctx)
	for {
		ns, last, err := c.c.next(&w, op)
		if err != nil {
			return err
		}
		c.rx.drop() // the call releases a held message first (before the handler runs)
		st := C.mt_serve_one(c.conn, C.int64_t(ns), C.uintptr_t(hd), c.c.key(), c.c.s)
		if sv.panicked {
			// The handler's panic, re-raised in the serving goroutine
			// (the deferred Unlock and Delete run on the way out).
			panic(sv.panicVal)
		}
		switch {
		case st == C.MEMTUBE_OK:
			if one {
				return nil
			}
		case st == C.MEMTUBE_REPLY_TOO_LARGE && !one:
		case st == C.MEMTUBE_TIMEOUT && !last:
		case st == C.MEMTUBE_CLOSED && !one:
			return nil
		default:
			err := c.c.fail(op, st)
			if st == C.MEMTUBE_TIMEOUT {
				err = w.timeoutError(err)
			}
			return err
		}
	}
}
