package memtube

// #include "shim.h"
import "C"

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Listener accepts connections at an address. Close it when done (its
// socket file, for a path, is removed); a forgotten listener is closed by a
// finalizer once unreachable.
type Listener struct {
	c    *core
	l    *C.memtube_listener
	addr string
	opts Options
}

// Listen listens at addr: a filesystem path (a socket file, created mode
// 0600) or "@name" (a Linux abstract name, no file). opts nil: defaults. The
// listener's options decide the rings of the connections it accepts.
// ErrAddrInUse when a live listener owns the address, ErrNotASocket when
// something else is at the path.
func Listen(addr string, opts *Options) (*Listener, error) {
	op := "listen " + addr
	if strings.IndexByte(addr, 0) >= 0 {
		return nil, newError(op, StatusInvalidArgument, "the address contains a NUL byte")
	}
	co, err := cOptions(op, opts, 0, nil)
	if err != nil {
		return nil, err
	}
	defer C.memtube_options_free(co)
	c, err := newCore()
	if err != nil {
		return nil, err
	}
	ca := C.CString(addr)
	defer C.free(unsafe.Pointer(ca))
	var l *C.memtube_listener
	// cgo pointer rules: &l is Go memory holding no Go pointer (the library
	// writes a C pointer into it during the call).
	if st := C.mt_listen(ca, co, &l, c.s); st != C.MEMTUBE_OK {
		err := fromScratch(op, st, c.s)
		C.free(unsafe.Pointer(c.s))
		return nil, err
	}
	ln := &Listener{c: c, l: l, addr: addr}
	if opts != nil {
		ln.opts = *opts
		ln.opts.UIDs = append([]uint32(nil), opts.UIDs...)
	}
	runtime.SetFinalizer(ln, (*Listener).Close)
	return ln, nil
}

// Addr is the address the listener was given.
func (l *Listener) Addr() string { return l.addr }

// Fd is the listening socket's descriptor, to poll it (readable: a peer is
// waiting). The listener owns it: do not close it, and keep the listener
// reachable while you use it (runtime.KeepAlive(l) after the last use), or
// its finalizer may close it, as with os.File.Fd. -1 once closed.
func (l *Listener) Fd() int {
	if err := l.c.enter("fd"); err != nil {
		return -1
	}
	defer l.c.mu.Unlock()
	return int(C.memtube_listener_fd(l.l))
}

// Accept waits for one peer and makes the connection, with the listener's
// options. The context bounds the wait for a peer (its deadline, or its
// cancellation noticed within about 50 ms: ErrTimeout / ErrCanceled, which
// also match context.DeadlineExceeded / context.Canceled). A refused peer
// (ErrPermissionDenied, ErrHandshake, ...) does not stop the listener.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	return l.AcceptWith(ctx, nil)
}

// AcceptWith is Accept with options for this one connection instead of the
// listener's (opts nil: the listener's).
func (l *Listener) AcceptWith(ctx context.Context, opts *Options) (*Conn, error) {
	const op = "accept"
	if opts == nil {
		opts = &l.opts
	}
	if err := l.c.enter(op); err != nil {
		return nil, err
	}
	defer l.c.mu.Unlock()
	// Every connection gets its own cancel token: Close and the context of
	// Call use it to stop a call that cannot wait in slices.
	tok := C.memtube_cancel_token_new()
	if tok == nil {
		return nil, newError(op, StatusOS, "out of memory")
	}
	co, err := cOptions(op, opts, 0, tok)
	if err != nil {
		C.memtube_cancel_token_free(tok)
		return nil, err
	}
	defer C.memtube_options_free(co)
	w := waitCtx(ctx)
	for {
		ns, last, err := l.c.next(&w, op)
		if err != nil {
			C.memtube_cancel_token_free(tok)
			return nil, err
		}
		// cgo pointer rules: &c is Go memory holding no Go pointer (the
		// library writes a C pointer into it during the call).
		var c *C.memtube_connection
		st := C.mt_accept(l.l, co, C.int64_t(ns), &c, l.c.s)
		if st == C.MEMTUBE_OK {
			return newConn(c, tok, opts.Duplex)
		}
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		C.memtube_cancel_token_free(tok)
		err = l.c.fail(op, st)
		if st == C.MEMTUBE_TIMEOUT {
			err = w.timeoutError(err)
		}
		return nil, err
	}
}

// Close stops listening (a path's socket file is removed). Connections
// accepted live on. A second Close returns nil.
func (l *Listener) Close() error {
	if !l.c.beginClose() {
		return nil
	}
	C.memtube_listener_free(l.l)
	l.l = nil
	l.c.endClose()
	runtime.SetFinalizer(l, nil)
	return nil
}

// Connect connects to the listener at addr. opts nil: defaults; Duplex and
// Direction must match the listener's. The context bounds the whole connect
// (its deadline is the connect and handshake timeout, its cancellation stops
// it). ErrNoListener when nobody listens there (at once: retry if the
// listener may not be up yet).
func Connect(ctx context.Context, addr string, opts *Options) (*Conn, error) {
	op := "connect " + addr
	if strings.IndexByte(addr, 0) >= 0 {
		return nil, newError(op, StatusInvalidArgument, "the address contains a NUL byte")
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxError(op, ctx)
	}
	tok := C.memtube_cancel_token_new()
	if tok == nil {
		return nil, newError(op, StatusOS, "out of memory")
	}
	var ct time.Duration
	if d, ok := ctx.Deadline(); ok {
		if ct = time.Until(d); ct <= 0 {
			ct = 1
		}
		if opts == nil {
			opts = &Options{}
		}
		if opts.HandshakeTimeout == 0 || opts.HandshakeTimeout > ct {
			o := *opts
			o.HandshakeTimeout = ct
			opts = &o
		}
	}
	co, err := cOptions(op, opts, ct, tok)
	if err != nil {
		C.memtube_cancel_token_free(tok)
		return nil, err
	}
	defer C.memtube_options_free(co)
	s := C.mt_scratch_new()
	if s == nil {
		C.memtube_cancel_token_free(tok)
		return nil, newError(op, StatusOS, "out of memory")
	}
	defer C.free(unsafe.Pointer(s))
	ca := C.CString(addr)
	defer C.free(unsafe.Pointer(ca))
	stop := watch(ctx, tok)
	// cgo pointer rules: as in Accept (&c only receives a C pointer).
	var c *C.memtube_connection
	st := C.mt_connect(ca, co, &c, s)
	if stop() {
		// The context ended: the token is cancelled for good, so a
		// connection made anyway could not block any more. Give it back.
		if st == C.MEMTUBE_OK {
			C.memtube_connection_free(c)
		}
		C.memtube_cancel_token_free(tok)
		return nil, ctxError(op, ctx)
	}
	if st != C.MEMTUBE_OK {
		C.memtube_cancel_token_free(tok)
		if st == C.MEMTUBE_TIMEOUT && ctx.Err() != nil {
			return nil, ctxError(op, ctx)
		}
		err := fromScratch(op, st, s)
		if d, ok := ctx.Deadline(); ok && st == C.MEMTUBE_TIMEOUT && time.Until(d) < 10*time.Millisecond {
			// The library's clock (poll's milliseconds) may end the wait
			// just before the context's: still the context's deadline.
			if e, ok := err.(*Error); ok {
				e.ctx = context.DeadlineExceeded
			}
		}
		return nil, err
	}
	return newConn(c, tok, opts != nil && opts.Duplex)
}

// Conn is a connection: a Sender, a Receiver or (duplex) both, plus Call and
// Serve on duplex connections. One goroutine at a time (ErrBusy otherwise),
// its Sender and Receiver included since they are the connection's; Split it
// to use both directions from two goroutines. Close it when done (the peer
// then gets ErrClosed after the last message); a forgotten connection is
// closed by a finalizer once unreachable (nothing of it, a Message or Grant
// included, is referenced any more).
type Conn struct {
	c      *core
	conn   *C.memtube_connection
	tokMu  sync.Mutex              // guards tok, which Close reads without c.c.mu
	tok    *C.memtube_cancel_token // this connection's: cancelled by Close (and a Call's context)
	tx     *txState
	rx     *rxState
	duplex bool
}

func newConn(c *C.memtube_connection, tok *C.memtube_cancel_token, duplex bool) (*Conn, error) {
	cr, err := newCore()
	if err != nil {
		C.memtube_connection_free(c)
		C.memtube_cancel_token_free(tok)
		return nil, err
	}
	var tx *C.memtube_sender
	var rx *C.memtube_receiver
	C.mt_conn_handles(c, &tx, &rx)
	conn := &Conn{c: cr, conn: c, tok: tok, duplex: duplex}
	if tx != nil {
		conn.tx = &txState{tx: tx}
	}
	if rx != nil {
		conn.rx = &rxState{rx: rx}
	}
	runtime.SetFinalizer(conn, (*Conn).Close)
	return conn, nil
}

// Sender is the connection's sending side, borrowed: it shares the
// connection's lock and lifetime (do not Close it; close the connection).
// ErrNoSuchHandle when this side of a one-way connection only receives.
func (c *Conn) Sender() (*Sender, error) {
	if c.tx == nil {
		return nil, newError("sender", StatusNoSuchHandle, "this side of the one-way connection only receives")
	}
	return &Sender{c: c.c, st: c.tx, conn: c}, nil
}

// Receiver is the connection's receiving side, borrowed (see Sender).
// ErrNoSuchHandle when this side of a one-way connection only sends.
func (c *Conn) Receiver() (*Receiver, error) {
	if c.rx == nil {
		return nil, newError("receiver", StatusNoSuchHandle, "this side of the one-way connection only sends")
	}
	return &Receiver{c: c.c, st: c.rx, conn: c}, nil
}

// Split consumes the connection and returns its sides as owned handles that
// separate goroutines may use at the same time (nil for a side this end does
// not have). Call and Serve are no longer available; the Sender and Receiver
// borrowed before are closed; a Message held is released. ErrBusy (nothing
// consumed) while a Grant is outstanding.
func (c *Conn) Split() (*Sender, *Receiver, error) {
	const op = "split"
	if err := c.c.enter(op); err != nil {
		return nil, nil, err
	}
	if c.tx != nil && c.tx.granted() {
		c.c.mu.Unlock()
		return nil, nil, newError(op, StatusBusy, "a grant is outstanding: commit or abort it first")
	}
	if c.rx != nil && c.rx.held() {
		C.mt_release(c.rx.urx(), c.c.us())
		c.rx.drop()
	}
	// cgo pointer rules: as in Accept (both only receive C pointers).
	var ctx0 *C.memtube_sender
	var crx *C.memtube_receiver
	st := C.mt_split(c.conn, &ctx0, &crx, c.c.s)
	var err error
	if st != C.MEMTUBE_OK {
		err = c.c.fail(op, st)
	}
	// The connection is gone, even on failure (the C ABI frees it).
	c.conn = nil
	c.closeLocked()
	if err != nil {
		if ctx0 != nil {
			C.memtube_sender_free(ctx0)
		}
		if crx != nil {
			C.memtube_receiver_free(crx)
		}
		return nil, nil, err
	}
	var tx *Sender
	var rx *Receiver
	if ctx0 != nil {
		cr, e := newCore()
		if e != nil {
			C.memtube_sender_free(ctx0)
			err = e
		} else {
			tx = &Sender{c: cr, st: &txState{tx: ctx0}, owned: true}
			runtime.SetFinalizer(tx, (*Sender).Close)
		}
	}
	if crx != nil {
		cr, e := newCore()
		if e != nil {
			C.memtube_receiver_free(crx)
			err = e
		} else {
			rx = &Receiver{c: cr, st: &rxState{rx: crx}, owned: true}
			runtime.SetFinalizer(rx, (*Receiver).Close)
		}
	}
	return tx, rx, err
}

// closeLocked frees what is left of the connection; c.c.mu is held and is
// released.
func (c *Conn) closeLocked() {
	if c.conn != nil {
		C.memtube_connection_free(c.conn)
		c.conn = nil
	}
	c.tokMu.Lock()
	if c.tok != nil {
		C.memtube_cancel_token_free(c.tok)
		c.tok = nil
	}
	c.tokMu.Unlock()
	if c.rx != nil {
		c.rx.drop()
	}
	if c.tx != nil {
		c.tx.ungrant()
	}
	c.c.endClose()
	runtime.SetFinalizer(c, nil)
}

// Close closes the connection: staged messages are published, the rings
// close cleanly (the peer gets ErrClosed after the last message), a held
// Message and an outstanding Grant die with it. Any goroutine may call it: a
// call blocked on the connection returns ErrClosed
// within about 50 ms first. A second Close returns nil.
//
// ErrBusy from inside a Handler serving this connection (the goroutine
// that would have to wait is this one): return from the handler, end
// Serve (its context), then close.
func (c *Conn) Close() error {
	if !c.c.mu.TryLock() {
		if C.mt_serving_here(c.c.key()) {
			return newError("close", StatusBusy, "Close from inside a handler serving this connection: return from it and close after Serve")
		}
		// A goroutine is inside. A sliced wait sees c.c.closing at its next
		// slice; a Call waits in one piece and is stopped by the token.
		atomic.StoreInt32(&c.c.closing, 1)
		c.cancelToken()
		c.c.mu.Lock()
	}
	atomic.StoreInt32(&c.c.closing, 1)
	if c.c.closed {
		c.c.mu.Unlock()
		return nil
	}
	c.closeLocked()
	return nil
}

// cancelToken cancels the connection's token if it is still there.
func (c *Conn) cancelToken() {
	c.tokMu.Lock()
	if c.tok != nil {
		C.memtube_cancel_token_cancel(c.tok)
	}
	c.tokMu.Unlock()
}

// PeerCred is the peer's pid, uid and gid when it connected.
func (c *Conn) PeerCred() (PeerCred, error) {
	if err := c.c.enter("peer cred"); err != nil {
		return PeerCred{}, err
	}
	defer c.c.mu.Unlock()
	if st := C.mt_conn_peer_cred(c.conn, c.c.s); st != C.MEMTUBE_OK {
		return PeerCred{}, c.c.fail("peer cred", st)
	}
	return PeerCred{int32(c.c.s.cred.pid), uint32(c.c.s.cred.uid), uint32(c.c.s.cred.gid)}, nil
}

// PeerState is the peer's state: with probe, one system call asks now;
// without, the state cached by the last probe (may be stale).
func (c *Conn) PeerState(probe bool) (PeerState, error) {
	if err := c.c.enter("peer state"); err != nil {
		return 0, err
	}
	defer c.c.mu.Unlock()
	if st := C.mt_conn_peer_state(c.conn, C._Bool(probe), c.c.s); st != C.MEMTUBE_OK {
		return 0, c.c.fail("peer state", st)
	}
	return PeerState(c.c.s.state), nil
}

// MaxRequest is the largest request body Call sends.
func (c *Conn) MaxRequest() (int, error) {
	if err := c.c.enter("max request"); err != nil {
		return 0, err
	}
	defer c.c.mu.Unlock()
	if st := C.mt_max_request(c.conn, c.c.s); st != C.MEMTUBE_OK {
		return 0, c.c.fail("max request", st)
	}
	return int(c.c.s.u32), nil
}
