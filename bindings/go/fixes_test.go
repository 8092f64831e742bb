package memtube

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// serveInBackground serves on srv with h until srv's peer closes or the
// test ends; the returned channel gets Serve's result.
func serveInBackground(t *testing.T, srv *Conn, h Handler) <-chan error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctxFor(t, 20*time.Second), h) }()
	return done
}

// A slice from Reply.Extend filled after a later Write (a header patched
// once the body is written) ends up in the reply: the reply is Go memory,
// never the library's buffer, which moves as it grows.
func TestReplyExtendThenWrite(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true, Capacity: 1 << 16})
	body := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	serveInBackground(t, srv, func(ty uint32, req []byte, r *Reply) uint32 {
		hdr := r.Extend(8)
		for i := 0; i < 4; i++ { // grows the reply several times
			r.Write(body[:len(body)/4])
		}
		mid := r.Extend(4)
		r.Write(req)
		binary.LittleEndian.PutUint64(hdr, uint64(len(body)))
		copy(mid, "MID!")
		return ty
	})
	for i := 0; i < 20; i++ {
		rep, err := cli.Call(ctxFor(t, 5*time.Second), 3, []byte("tail"))
		must(t, err)
		b := rep.Bytes()
		want := append(append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(body))), body...), "MID!"...), "tail"...)
		if !bytes.Equal(b, want) {
			t.Fatalf("reply %d: %d bytes, header %x, want %d bytes, header %x", i, len(b), b[:8], len(want), want[:8])
		}
	}
}

// Conn.Close from inside a handler serving the connection returns ErrBusy
// (it would wait for its own goroutine); from another goroutine it waits
// for the handler and closes.
func TestCloseInsideHandler(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true})
	watchdog := time.AfterFunc(10*time.Second, func() { panic("Conn.Close from inside the handler deadlocked") })
	defer watchdog.Stop()
	called := make(chan error, 1)
	call := func(ty uint32) {
		go func() { _, err := cli.CallTimeout(ty, []byte("x"), 5*time.Second); called <- err }()
	}
	call(1)
	var inner error
	must(t, srv.ServeOne(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 {
		inner = srv.Close()
		return ty
	}))
	mustIs(t, inner, ErrBusy)
	must(t, <-called)
	if _, err := srv.MaxRequest(); err != nil {
		t.Fatalf("the refused Close closed the connection: %v", err)
	}

	// Another goroutine's Close during a handler waits for it.
	entered, release := make(chan struct{}), make(chan struct{})
	call(2)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 {
			close(entered)
			<-release
			return ty
		})
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned during another goroutine's handler: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	must(t, <-closed)
	mustIs(t, <-served, ErrClosed)
	<-called // (the reply may or may not have gone out before the close)
}

// Message and Grant views read their state while another goroutine closes
// the connection: no data race (go test -race), and dead once closed.
func TestViewsRaceWithClose(t *testing.T) {
	for round := 0; round < 20; round++ {
		srv, cli := pair(t, &Options{Duplex: true})
		ctx := tx(t, cli)
		must(t, ctx.Send(context.Background(), []byte("hello"), 1))
		rx, _ := srv.Receiver()
		m, err := rx.Recv(ctxFor(t, 5*time.Second))
		must(t, err)
		stx := tx(t, srv)
		g, err := stx.Reserve(context.Background(), 16)
		must(t, err)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// (lengths only: reading the bytes while Close unmaps them
				// is the caller's race, documented)
				_ = m.Valid()
				_ = len(m.Bytes())
				_ = len(g.Bytes())
				_ = m.Release() // ErrBusy or nil: never a race
			}
		}()
		time.Sleep(time.Millisecond)
		must(t, srv.Close())
		close(stop)
		wg.Wait()
		if m.Valid() || m.Bytes() != nil || g.Bytes() != nil {
			t.Fatal("a view outlived the close of its connection")
		}
	}
}

func tx(t *testing.T, c *Conn) *Sender {
	t.Helper()
	s, err := c.Sender()
	must(t, err)
	return s
}

// A Call whose request is the reply it holds (released by the call before
// the request is read) sends the reply's bytes, copied first.
func TestCallRequestFromHeldReply(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true, Capacity: 256})
	serveInBackground(t, srv, func(ty uint32, req []byte, r *Reply) uint32 {
		r.Write(req)
		return ty + 1
	})
	want := []byte("forty bytes of request, passed on again")
	rep, err := cli.Call(ctxFor(t, 5*time.Second), 0, want)
	must(t, err)
	for i := 0; i < 100; i++ {
		if !overlaps(rep.Bytes(), cli.rx.data, cli.rx.n) {
			t.Fatal("the held reply is not where the receiver says")
		}
		rep, err = cli.Call(ctxFor(t, 5*time.Second), rep.TypeID(), rep.Bytes())
		must(t, err)
		if !bytes.Equal(rep.Bytes(), want) || rep.TypeID() != uint32(i)+2 {
			t.Fatalf("round %d: %q type %d", i, rep.Bytes(), rep.TypeID())
		}
	}
	b := make([]byte, 10)
	base := uintptr(unsafe.Pointer(&b[0]))
	for _, c := range []struct {
		p    []byte
		d    uintptr
		n    int
		want bool
	}{{b, base + 10, 5, false}, {b, base + 9, 5, true}, {b[5:], base, 5, false}, {b[4:], base, 5, true}, {b[:0], base, 5, false}, {b, base, 0, false}} {
		if got := overlaps(c.p, c.d, c.n); got != c.want {
			t.Fatalf("overlaps(%d bytes at +%d, +%d..%d) = %v", len(c.p), uintptr(unsafe.Pointer(&b[0]))-base, c.d-base, c.n, got)
		}
	}
}

// During a handler the connection's earlier Call reply is dead: the library
// released it when the serve began.
func TestServeReleasesHeldReplyFirst(t *testing.T) {
	a, b := pair(t, &Options{Duplex: true})
	bserved := make(chan error, 1)
	go func() {
		bserved <- b.ServeOne(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 { r.Write(req); return ty })
	}()
	rep, err := a.Call(ctxFor(t, 5*time.Second), 1, []byte("first"))
	must(t, err)
	must(t, <-bserved)
	called := make(chan error, 1)
	go func() { _, err := b.Call(ctxFor(t, 5*time.Second), 2, []byte("second")); called <- err }()
	var valid bool
	var view []byte
	must(t, a.ServeOne(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 {
		valid, view = rep.Valid(), rep.Bytes()
		return ty
	}))
	must(t, <-called)
	if valid || view != nil {
		t.Fatal("the reply held before ServeOne was still valid in its handler (released by the library)")
	}
}

// A Call whose context is cancelled as its reply comes either succeeds and
// leaves the connection usable, or returns ErrCanceled: never a success
// that left the connection's cancel token cancelled behind it.
func TestCallCancelledAsReplyComes(t *testing.T) {
	succeeded, cancelled := 0, 0
	for i := 0; i < 100; i++ {
		srv, cli := pair(t, &Options{Duplex: true})
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() {
			served <- srv.ServeOne(ctxFor(t, 5*time.Second), func(ty uint32, req []byte, r *Reply) uint32 {
				cancel() // the reply goes out right after
				return ty
			})
		}()
		_, err := cli.Call(ctx, 1, []byte("x"))
		must(t, <-served)
		if err != nil {
			mustIs(t, err, ErrCanceled, context.Canceled)
			cancelled++
		} else {
			succeeded++
			// the connection must still wait: a blocking receive times out
			rx, _ := cli.Receiver()
			_, err := rx.RecvTimeout(time.Millisecond)
			mustIs(t, err, ErrTimeout)
		}
		srv.Close()
		cli.Close()
	}
	t.Logf("%d calls succeeded, %d were cancelled", succeeded, cancelled)
}
