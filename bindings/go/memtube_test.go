package memtube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func TestVersion(t *testing.T) {
	if ABIVersion()>>16 != ABIMajor {
		t.Fatalf("ABI %x, package written for major %d", ABIVersion(), ABIMajor)
	}
	if Version() == "" {
		t.Fatal("empty version")
	}
	if StatusPeerGone.String() != "MEMTUBE_PEER_GONE" {
		t.Fatal(StatusPeerGone.String())
	}
}

func TestListenConnectOptions(t *testing.T) {
	a := addr(t)
	opts := &Options{Capacity: 4096, Duplex: true, HandshakeTimeout: 2 * time.Second}
	l, err := Listen(a, opts)
	must(t, err)
	defer l.Close()
	if l.Addr() != a || l.Fd() < 0 {
		t.Fatal("addr or fd")
	}
	_, err = Listen(a, nil)
	mustIs(t, err, ErrAddrInUse)

	// accept without a peer: the context's deadline, as a timeout
	t0 := time.Now()
	_, err = l.Accept(ctxFor(t, 120*time.Millisecond))
	mustIs(t, err, ErrTimeout, context.DeadlineExceeded)
	if el := time.Since(t0); el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("accept timed out after %v", el)
	}
	// and cancellation, noticed within the slice
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	t0 = time.Now()
	_, err = l.Accept(ctx)
	mustIs(t, err, ErrCanceled, context.Canceled)
	if el := time.Since(t0); el > 600*time.Millisecond {
		t.Fatalf("cancel noticed after %v", el)
	}

	// a connector whose duplex mode differs is refused; the listener goes on
	ch := make(chan error, 1)
	go func() {
		_, err := l.Accept(ctxFor(t, 5*time.Second))
		ch <- err
	}()
	_, err = Connect(ctxFor(t, 5*time.Second), a, &Options{Duplex: false})
	mustIs(t, err, ErrHandshake)
	mustIs(t, <-ch, ErrHandshake)

	go func() {
		c, err := l.Accept(ctxFor(t, 5*time.Second))
		if err == nil {
			defer c.Close()
			tx, _ := c.Sender()
			cap, _ := tx.Capacity()
			if cap != 4096 {
				err = fmt.Errorf("capacity %d", cap)
			}
		}
		ch <- err
	}()
	c, err := Connect(ctxFor(t, 5*time.Second), a, &Options{Duplex: true})
	must(t, err)
	defer c.Close()
	must(t, <-ch)
	tx, err := c.Sender()
	must(t, err)
	if n, _ := tx.Capacity(); n != 4096 {
		t.Fatalf("capacity %d (the listener's options decide)", n)
	}
	mp, err := tx.MaxPayload()
	must(t, err)
	if mp <= 0 || mp > 2048 {
		t.Fatalf("max payload %d", mp)
	}
	cred, err := c.PeerCred()
	must(t, err)
	if int(cred.PID) != os.Getpid() || int(cred.UID) != os.Getuid() {
		t.Fatalf("cred %+v", cred)
	}

	_, err = Connect(ctxFor(t, time.Second), addr(t), nil)
	mustIs(t, err, ErrNoListener)
	_, err = Listen(a+"x", &Options{Capacity: 1000})
	mustIs(t, err, ErrInvalidArgument)
	f := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	_, err = Listen(f, nil)
	mustIs(t, err, ErrNotASocket)
	_, err = Listen("@bad\x00addr", nil)
	mustIs(t, err, ErrInvalidArgument)
}

func TestPathListenerRemovesSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(p, nil)
	must(t, err)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	must(t, l.Close())
	must(t, l.Close()) // a second close is nil
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left: %v", err)
	}
	_, err = l.Accept(context.Background())
	mustIs(t, err, ErrClosed)

	// Close from another goroutine ends a blocked Accept
	l, err = Listen(addr(t), nil)
	must(t, err)
	res := make(chan error, 1)
	go func() { _, err := l.Accept(context.Background()); res <- err }()
	time.Sleep(30 * time.Millisecond)
	t0 := time.Now()
	must(t, l.Close())
	mustIs(t, <-res, ErrClosed)
	if el := time.Since(t0); el > 500*time.Millisecond {
		t.Fatalf("close took %v", el)
	}
}

func TestOneWaySendReserveStaged(t *testing.T) {
	srv, cli := pair(t, &Options{Capacity: 1 << 14})
	tx, err := cli.Sender()
	must(t, err)
	rx, err := srv.Receiver()
	must(t, err)
	_, err = cli.Receiver()
	mustIs(t, err, ErrNoSuchHandle)
	_, err = srv.Sender()
	mustIs(t, err, ErrNoSuchHandle)

	must(t, tx.Send(context.Background(), []byte("copied"), 1))
	must(t, tx.TrySend(nil, 2)) // zero length
	g, err := tx.Reserve(context.Background(), 100)
	must(t, err)
	if g.Len() < 100 || len(g.Bytes()) != g.Len() {
		t.Fatalf("grant %d", g.Len())
	}
	copy(g.Bytes(), "in place")
	mustIs(t, tx.TrySend([]byte("x"), 9), ErrBusy) // one grant at a time
	mustIs(t, g.Commit(g.Len()+1, 3), ErrInvalidArgument)
	must(t, g.Commit(8, 3))
	if g.Bytes() != nil {
		t.Fatal("a committed grant still has bytes")
	}
	mustIs(t, g.Commit(8, 3), ErrInvalidArgument)
	g, err = tx.TryReserve(10)
	must(t, err)
	copy(g.Bytes(), "aborted")
	must(t, g.Abort())
	must(t, g.Abort()) // nothing outstanding: nil
	_, err = tx.TryReserve(-1)
	mustIs(t, err, ErrInvalidArgument)

	// staged: invisible until published
	must(t, tx.SendStaged([]byte("s1"), 4))
	must(t, tx.SendStaged([]byte("s2"), 5))

	want := []struct {
		b  string
		ty uint32
	}{{"copied", 1}, {"", 2}, {"in place", 3}}
	for _, w := range want {
		m, err := rx.Recv(ctxFor(t, 5*time.Second))
		must(t, err)
		if string(m.Bytes()) != w.b || m.TypeID() != w.ty || m.Len() != len(w.b) {
			t.Fatalf("got %q/%d, want %q/%d", m.Bytes(), m.TypeID(), w.b, w.ty)
		}
	}
	_, err = rx.TryRecv()
	mustIs(t, err, ErrEmpty)
	must(t, tx.Publish())
	for _, w := range []string{"s1", "s2"} {
		m, err := rx.TryRecv()
		must(t, err)
		if string(m.Bytes()) != w {
			t.Fatalf("staged %q", m.Bytes())
		}
	}
	mp, _ := tx.MaxPayload()
	mustIs(t, tx.TrySend(make([]byte, mp+1), 0), ErrTooLarge)
	must(t, tx.TrySend(make([]byte, mp), 0))
	m, err := rx.TryRecv()
	must(t, err)
	if m.Len() != mp {
		t.Fatal("max payload message")
	}

	// full: the ring takes only so much
	n := 0
	for {
		err := tx.TrySend(make([]byte, 1000), 0)
		if err != nil {
			mustIs(t, err, ErrFull)
			break
		}
		n++
	}
	if n < 8 || n > 16 {
		t.Fatalf("%d messages of 1000 B in a 16 KiB ring", n)
	}
	t0 := time.Now()
	err = tx.Send(ctxFor(t, 100*time.Millisecond), make([]byte, 1000), 0)
	mustIs(t, err, ErrTimeout, context.DeadlineExceeded)
	if time.Since(t0) < 90*time.Millisecond {
		t.Fatal("send timed out early")
	}
	mustIs(t, tx.SendTimeout(make([]byte, 1000), 0, 20*time.Millisecond), ErrTimeout)
	for i := 0; i < n; i++ {
		m, err := rx.RecvTimeout(time.Second)
		must(t, err)
		if m.Len() != 1000 {
			t.Fatal("len")
		}
	}
	_, err = rx.RecvTimeout(30 * time.Millisecond)
	mustIs(t, err, ErrTimeout)

	// the peer closes: every message first, then ErrClosed
	must(t, tx.TrySend([]byte("last"), 7))
	must(t, cli.Close())
	m, err = rx.Recv(ctxFor(t, 5*time.Second))
	must(t, err)
	if string(m.Bytes()) != "last" {
		t.Fatal("last message")
	}
	_, err = rx.Recv(ctxFor(t, 5*time.Second))
	mustIs(t, err, ErrClosed)
	if st, err := srv.PeerState(true); err != nil || st != PeerClosed {
		t.Fatalf("peer state %v %v", st, err)
	}
	// the closed side's handles fail cleanly
	mustIs(t, tx.TrySend([]byte("x"), 0), ErrClosed)
	must(t, cli.Close())
}

// mappingOf is the /proc/self/maps line of the mapping holding p.
func mappingOf(t *testing.T, p uintptr) string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		r := strings.SplitN(strings.Fields(line)[0], "-", 2)
		lo, _ := strconv.ParseUint(r[0], 16, 64)
		hi, _ := strconv.ParseUint(r[1], 16, 64)
		if uint64(p) >= lo && uint64(p) < hi {
			return line
		}
	}
	return ""
}

func TestZeroCopyViews(t *testing.T) {
	srv, cli := pair(t, nil)
	tx, _ := cli.Sender()
	rx, _ := srv.Receiver()
	g, err := tx.Reserve(context.Background(), 64)
	must(t, err)
	gp := uintptr(unsafe.Pointer(&g.Bytes()[0]))
	copy(g.Bytes(), "zero copy")
	must(t, g.Commit(9, 1))
	must(t, tx.TrySend([]byte("second"), 2))

	m, err := rx.Recv(context.Background())
	must(t, err)
	a, b := m.Bytes(), m.Bytes()
	if &a[0] != &b[0] {
		t.Fatal("two views of one message do not share memory")
	}
	p := uintptr(unsafe.Pointer(&a[0]))
	// the view lies in the shared ring mapping (a memfd), not in Go's heap;
	// so does the grant the sender wrote into
	for _, q := range []uintptr{p, gp} {
		if mp := mappingOf(t, q); !strings.Contains(mp, "memfd:") {
			t.Fatalf("%#x is not in a shared ring mapping: %q", q, mp)
		}
	}
	if !m.Valid() || string(a) != "zero copy" {
		t.Fatal("view")
	}
	must(t, m.Release())
	if m.Bytes() != nil || m.Valid() {
		t.Fatal("a released message still gives its bytes")
	}
	if m.Len() != 9 || m.TypeID() != 1 {
		t.Fatal("len and type id stay readable")
	}
	must(t, m.Release()) // a second release is harmless
	m2, err := rx.Recv(context.Background())
	must(t, err)
	m3 := m2
	// the next receive releases the one before
	must(t, tx.TrySend([]byte("third"), 3))
	m4, err := rx.Recv(context.Background())
	must(t, err)
	if m2.Bytes() != nil || m3.Bytes() != nil || string(m4.Bytes()) != "third" {
		t.Fatal("the next receive did not release the message before")
	}
	st, err := rx.Stats()
	must(t, err)
	if st.MessagesCommitted != 3 || st.BytesCommitted != 20 {
		t.Fatalf("stats %+v", st)
	}
	must(t, srv.Close())
	if m4.Bytes() != nil {
		t.Fatal("a message outlived its connection's close")
	}
}

func TestRecvCopy(t *testing.T) {
	srv, cli := pair(t, nil)
	tx, _ := cli.Sender()
	rx, _ := srv.Receiver()
	must(t, tx.TrySend([]byte("hello, world"), 5))
	buf := make([]byte, 4)
	n, _, err := rx.RecvCopy(context.Background(), buf)
	mustIs(t, err, ErrTooLarge)
	if n != 12 {
		t.Fatalf("needs %d", n)
	}
	buf = make([]byte, n)
	n, ty, err := rx.RecvCopy(context.Background(), buf)
	must(t, err)
	if string(buf[:n]) != "hello, world" || ty != 5 {
		t.Fatal("copy")
	}
	_, err = rx.TryRecv()
	mustIs(t, err, ErrEmpty)
}

func TestCallServe(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true, Capacity: 1 << 13})
	type out struct {
		err error
		p   interface{}
	}
	done := make(chan out, 1)
	var busy error
	go func() {
		var o out
		defer func() { o.p = recover(); done <- o }()
		o.err = srv.Serve(context.Background(), func(ty uint32, req []byte, r *Reply) uint32 {
			switch string(req) {
			case "panic":
				panic("handler panic")
			case "big":
				r.Extend(1 << 13) // larger than the ring takes
				return 0
			case "busy":
				_, busy = srv.MaxRequest()
				return 0
			}
			for i := len(req) - 1; i >= 0; i-- {
				r.Write(req[i : i+1])
			}
			return ty + 1
		})
	}()
	for i := 0; i < 200; i++ {
		req := []byte(fmt.Sprintf("request %d", i))
		rep, err := cli.Call(ctxFor(t, 5*time.Second), uint32(i), req)
		must(t, err)
		rev := make([]byte, len(req))
		for k := range req {
			rev[k] = req[len(req)-1-k]
		}
		if !bytes.Equal(rep.Bytes(), rev) || rep.TypeID() != uint32(i)+1 {
			t.Fatalf("reply %q", rep.Bytes())
		}
	}
	rep, err := cli.CallTimeout(1, []byte("x"), time.Second)
	must(t, err)
	_, err = cli.CallTimeout(1, []byte("big"), 5*time.Second)
	mustIs(t, err, ErrReplyTooLarge)
	if rep.Bytes() != nil {
		t.Fatal("the next call did not release the reply before")
	}
	_, err = cli.CallTimeout(1, []byte("busy"), 5*time.Second)
	must(t, err)
	mustIs(t, busy, ErrBusy) // a handler cannot use the connection it serves
	mr, err := cli.MaxRequest()
	must(t, err)
	_, err = cli.CallTimeout(1, make([]byte, mr+1), time.Second)
	mustIs(t, err, ErrTooLarge)
	_, err = cli.CallTimeout(1, []byte("panic"), 5*time.Second)
	mustIs(t, err, ErrProtocol)
	o := <-done
	if o.p != "handler panic" {
		t.Fatalf("Serve did not re-raise the handler's panic: %v, %v", o.p, o.err)
	}

	// one-way connections have no call/serve
	s1, c1 := pair(t, nil)
	_, err = c1.Call(context.Background(), 0, nil)
	mustIs(t, err, ErrNoSuchHandle)
	mustIs(t, s1.ServeOne(context.Background(), func(uint32, []byte, *Reply) uint32 { return 0 }), ErrNoSuchHandle)
}

func TestServeOneAndClose(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true})
	mustIs(t, srv.ServeOne(ctxFor(t, 60*time.Millisecond), func(uint32, []byte, *Reply) uint32 { return 0 }),
		ErrTimeout, context.DeadlineExceeded)
	go func() {
		rep, err := cli.Call(context.Background(), 7, []byte("ab"))
		if err == nil && string(rep.Bytes()) == "ab!" {
			cli.Close()
		}
	}()
	var kept *Reply
	must(t, srv.ServeOne(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 {
		r.Write(req)
		copy(r.Extend(1), "!")
		kept = r
		return ty
	}))
	if _, err := kept.Write([]byte("late")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal("a reply used after its handler")
	}
	// the client closes after its reply: Serve returns nil
	must(t, srv.Serve(ctxFor(t, 5*time.Second), func(uint32, []byte, *Reply) uint32 { return 0 }))
}

func TestCancelAndClose(t *testing.T) {
	srv, cli := pair(t, nil)
	rx, _ := srv.Receiver()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	_, err := rx.Recv(ctx)
	mustIs(t, err, ErrCanceled, context.Canceled)
	if el := time.Since(t0); el > 100*time.Millisecond+300*time.Millisecond {
		t.Fatalf("cancellation noticed after %v", el)
	}
	// a second goroutine meets Busy, never a race
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		close(started)
		_, err := rx.Recv(context.Background())
		res <- err
	}()
	<-started
	time.Sleep(50 * time.Millisecond)
	_, err = rx.TryRecv()
	mustIs(t, err, ErrBusy)
	// Close from another goroutine ends the blocked Recv
	t0 = time.Now()
	must(t, srv.Close())
	mustIs(t, <-res, ErrClosed)
	if el := time.Since(t0); el > 500*time.Millisecond {
		t.Fatalf("close took %v", el)
	}
	_, err = rx.TryRecv()
	mustIs(t, err, ErrClosed)
	mustIs(t, rx.Close(), ErrInvalidArgument) // borrowed
	_ = cli
}

func TestCallCancel(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true})
	_ = srv // never serves
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	_, err := cli.Call(ctx, 1, []byte("x"))
	mustIs(t, err, ErrCanceled, context.Canceled)
	if el := time.Since(t0); el > 500*time.Millisecond {
		t.Fatalf("cancel noticed after %v", el)
	}
	// documented: the connection's token stays cancelled
	_, err = cli.CallTimeout(1, []byte("x"), time.Second)
	mustIs(t, err, ErrCanceled)
	_, err = cli.CallTimeout(1, []byte("x"), 50*time.Millisecond)
	mustIs(t, err, ErrCanceled)

	// a duration bounds a call too (0: only a reply there at once)
	s4, c4 := pair(t, &Options{Duplex: true})
	_ = s4
	t0 = time.Now()
	_, err = c4.CallTimeout(1, []byte("x"), 0)
	mustIs(t, err, ErrTimeout)
	_, err = c4.CallTimeout(1, []byte("x"), 30*time.Millisecond)
	mustIs(t, err, ErrTimeout)
	_, err = c4.CallTimeout(1, []byte("x"), 80*time.Millisecond)
	mustIs(t, err, ErrTimeout)
	if el := time.Since(t0); el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("timed calls took %v", el)
	}

	// a deadline is a timeout, and the connection stays usable
	s2, c2 := pair(t, &Options{Duplex: true})
	_, err = c2.Call(ctxFor(t, 80*time.Millisecond), 1, []byte("x"))
	mustIs(t, err, ErrTimeout, context.DeadlineExceeded)
	go s2.Serve(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 { r.Write(req); return ty })
	rep, err := c2.CallTimeout(2, []byte("y"), 5*time.Second)
	must(t, err)
	if string(rep.Bytes()) != "y" || rep.TypeID() != 2 {
		t.Fatal("the late reply of the timed-out call was not skipped")
	}
	// Close from another goroutine stops a Call blocked without a deadline
	s3, c3 := pair(t, &Options{Duplex: true})
	_ = s3
	res := make(chan error, 1)
	go func() { _, err := c3.Call(context.Background(), 1, nil); res <- err }()
	time.Sleep(50 * time.Millisecond)
	t0 = time.Now()
	must(t, c3.Close())
	mustIs(t, <-res, ErrClosed)
	if el := time.Since(t0); el > 500*time.Millisecond {
		t.Fatalf("close took %v", el)
	}
}

func TestSplitTwoGoroutines(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true})
	stx, _ := srv.Sender()
	g, err := stx.TryReserve(8)
	must(t, err)
	_, _, err = srv.Split()
	mustIs(t, err, ErrBusy)
	must(t, g.Abort())
	brx, _ := srv.Receiver()
	tx, rx, err := srv.Split()
	must(t, err)
	defer tx.Close()
	defer rx.Close()
	_, err = brx.TryRecv()
	mustIs(t, err, ErrClosed) // the borrowed handles died with the split
	_, err = srv.Call(context.Background(), 0, nil)
	mustIs(t, err, ErrClosed)

	ctx0, ctx1 := cli.Sender()
	_ = ctx1
	ctxRx, _ := cli.Receiver()
	const n = 2000
	// the split halves work at the same time: echo in two goroutines
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			m, err := rx.RecvTimeout(5 * time.Second)
			if err != nil {
				errs <- err
				return
			}
			if err := tx.SendTimeout(m.Bytes(), m.TypeID(), 5*time.Second); err != nil {
				errs <- err
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		must(t, ctx0.SendTimeout([]byte(strconv.Itoa(i)), uint32(i), 5*time.Second))
		m, err := ctxRx.RecvTimeout(5 * time.Second)
		must(t, err)
		if string(m.Bytes()) != strconv.Itoa(i) || m.TypeID() != uint32(i) {
			t.Fatalf("echo %d", i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// an owned receiver's Close ends a Recv blocked on it (another goroutine)
	res := make(chan error, 1)
	go func() { _, err := rx.Recv(context.Background()); res <- err }()
	time.Sleep(30 * time.Millisecond)
	must(t, rx.Close())
	mustIs(t, <-res, ErrClosed)
	must(t, rx.Close())
	// the peer sees the ring closed
	mustIs(t, ctx0.SendTimeout([]byte("x"), 0, time.Second), ErrClosed)
}

func TestLivenessAndStats(t *testing.T) {
	srv, cli := pair(t, nil)
	tx, _ := cli.Sender()
	rx, _ := srv.Receiver()
	for _, h := range []func(bool) (PeerState, error){tx.PeerState, rx.PeerState, srv.PeerState, cli.PeerState} {
		st, err := h(true)
		must(t, err)
		if st != PeerAlive {
			t.Fatalf("state %v", st)
		}
	}
	for i := 0; i < 10; i++ {
		must(t, tx.TrySend([]byte("0123456789"), 0))
	}
	st, err := tx.Stats()
	must(t, err)
	if st.MessagesCommitted != 10 || st.BytesCommitted != 100 {
		t.Fatalf("stats %+v", st)
	}
	must(t, tx.SetLinePadding(false))
	must(t, tx.SetNontemporalThreshold(math.MaxUint32))
	must(t, srv.Close())
	// the receiver closed: the sender learns it
	var ps PeerState
	for i := 0; i < 100; i++ {
		if ps, _ = tx.PeerState(true); ps != PeerAlive {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ps != PeerClosed {
		t.Fatalf("peer state after close: %v", ps)
	}
}

func TestTimeoutVariants(t *testing.T) {
	srv, cli := pair(t, &Options{Capacity: 4096})
	tx, _ := cli.Sender()
	rx, _ := srv.Receiver()
	_, err := rx.RecvTimeout(0)
	mustIs(t, err, ErrEmpty) // 0 does not wait
	for err == nil || errors.Is(err, ErrEmpty) {
		err = tx.SendTimeout(make([]byte, 500), 0, 0)
	}
	mustIs(t, err, ErrFull)
	// longer than one slice: the clock is read after the first
	t0 := time.Now()
	mustIs(t, tx.SendTimeout(make([]byte, 500), 0, 130*time.Millisecond), ErrTimeout)
	if el := time.Since(t0); el < 120*time.Millisecond || el > 2*time.Second {
		t.Fatalf("a 130 ms send timeout took %v", el)
	}
	for {
		if _, err := rx.TryRecv(); err != nil {
			mustIs(t, err, ErrEmpty)
			break
		}
	}
	time.AfterFunc(120*time.Millisecond, func() { tx.TrySend([]byte("late"), 9) })
	m, err := rx.RecvTimeout(-1) // no limit
	must(t, err)
	if string(m.Bytes()) != "late" {
		t.Fatal("late message")
	}
}

func TestAcceptWithAndConnectContext(t *testing.T) {
	a := addr(t)
	l, err := Listen(a, &Options{Capacity: 1 << 12})
	must(t, err)
	defer l.Close()

	// nobody accepts: Connect waits in the handshake until its context ends
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	_, err = Connect(ctx, a, nil)
	mustIs(t, err, ErrCanceled, context.Canceled)
	if el := time.Since(t0); el > 600*time.Millisecond {
		t.Fatalf("connect cancelled after %v", el)
	}
	t0 = time.Now()
	_, err = Connect(ctxFor(t, 100*time.Millisecond), a, nil)
	mustIs(t, err, ErrTimeout, context.DeadlineExceeded)
	if el := time.Since(t0); el > 2*time.Second {
		t.Fatalf("connect timed out after %v", el)
	}
	// (drain the two abandoned attempts from the backlog)
	for i := 0; i < 2; i++ {
		if c, err := l.Accept(ctxFor(t, 100*time.Millisecond)); err == nil {
			c.Close()
		}
	}

	// per-connection options: another capacity for this one
	ch := make(chan error, 1)
	go func() {
		c, err := Connect(ctxFor(t, 5*time.Second), a, nil)
		if err == nil {
			tx, _ := c.Sender()
			var n int
			if n, err = tx.Capacity(); err == nil && n != 1<<14 {
				err = fmt.Errorf("capacity %d", n)
			}
			c.Close()
		}
		ch <- err
	}()
	c, err := l.AcceptWith(ctxFor(t, 5*time.Second), &Options{Capacity: 1 << 14})
	must(t, err)
	must(t, <-ch)
	c.Close()

	// a uid policy that lets nobody in: the peer is refused, the listener goes on
	l2, err := Listen(addr(t), &Options{UIDPolicy: ListedUIDs})
	must(t, err)
	defer l2.Close()
	go func() {
		_, err := Connect(ctxFor(t, 5*time.Second), l2.Addr(), nil)
		ch <- err
	}()
	_, err = l2.Accept(ctxFor(t, 5*time.Second))
	mustIs(t, err, ErrPermissionDenied)
	if err := <-ch; err == nil {
		t.Fatal("a refused connector connected")
	}
	l3, err := Listen(addr(t), &Options{UIDPolicy: ListedUIDs, UIDs: []uint32{uint32(os.Getuid())}})
	must(t, err)
	defer l3.Close()
	go func() {
		c, err := Connect(ctxFor(t, 5*time.Second), l3.Addr(), nil)
		if err == nil {
			c.Close()
		}
		ch <- err
	}()
	c, err = l3.Accept(ctxFor(t, 5*time.Second))
	must(t, err)
	c.Close()
	must(t, <-ch)
}
