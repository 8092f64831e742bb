package memtube

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// payload i: i as u64 little-endian, then bytes (i*31 + j), 8..8+(i*7919)%500 long.
func payloadOf(i int) []byte {
	p := make([]byte, 8+(i*7919)%500)
	binary.LittleEndian.PutUint64(p, uint64(i))
	for j := 8; j < len(p); j++ {
		p[j] = byte(i*31 + j)
	}
	return p
}

// echoBySendRecv echoes on owned halves with SendRecv, forwarding each held
// message straight from the ring, until the peer closes; it returns how many
// messages it echoed.
func echoBySendRecv(tx *Sender, rx *Receiver) (int, error) {
	n := 0
	m, err := rx.RecvTimeout(10 * time.Second)
	for err == nil {
		m, err = tx.SendRecvTimeout(m.Bytes(), m.TypeID(), rx, 10*time.Second)
		if err == nil || Sent(err) {
			n++
		}
	}
	if errors.Is(err, ErrClosed) && (n == 0 || Sent(err)) {
		return n, nil
	}
	return n, err
}

// A lockstep exchange on a duplex connection's own handles against an echo
// that forwards held messages with SendRecv on split halves: every byte and
// type id comes back, and the returned Message is a view of the ring.
func TestSendRecvEcho(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true, Capacity: 4096})
	stx, srx, err := srv.Split()
	must(t, err)
	defer stx.Close()
	defer srx.Close()
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	go func() { n, err := echoBySendRecv(stx, srx); done <- res{n, err} }()

	tx, _ := cli.Sender()
	rx, _ := cli.Receiver()
	const n = 3000
	var prev Message
	for i := 0; i < n; i++ {
		p := payloadOf(i)
		var m Message
		var err error
		if i%2 == 0 {
			m, err = tx.SendRecv(ctxFor(t, 10*time.Second), p, uint32(i), rx)
		} else {
			m, err = tx.SendRecvTimeout(p, uint32(i), rx, 10*time.Second)
		}
		must(t, err)
		if m.TypeID() != uint32(i) || !bytes.Equal(m.Bytes(), p) {
			t.Fatalf("echo %d: type %d, %d bytes, want %d", i, m.TypeID(), m.Len(), len(p))
		}
		if i == 0 {
			addr := uintptr(unsafe.Pointer(&m.Bytes()[0]))
			if mappingOf(t, addr) == "" {
				t.Fatalf("the reply at %#x is not in a mapping", addr)
			}
			if addr >= uintptr(unsafe.Pointer(&p[0])) && addr < uintptr(unsafe.Pointer(&p[0]))+uintptr(len(p)) {
				t.Fatal("the reply is the request's own memory")
			}
		}
		if prev.Valid() {
			t.Fatalf("exchange %d: the message before is still valid", i)
		}
		prev = m
	}
	must(t, cli.Close())
	r := <-done
	must(t, r.err)
	if r.n != n {
		t.Fatalf("the echo echoed %d messages, want %d", r.n, n)
	}
}

// A send that fails sends nothing and leaves the held message held and
// valid: ErrTooLarge at once, a timeout on a full ring. Then a receive that
// fails after the send: Sent, the held message released, and Recv (not a
// second SendRecv) gets the reply: the peer saw the message exactly once.
func TestSendRecvFailures(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true, Capacity: 256})
	stx, _ := srv.Sender()
	srx, _ := srv.Receiver()
	tx, _ := cli.Sender()
	rx, _ := cli.Receiver()

	must(t, stx.TrySend([]byte("keep"), 9))
	held, err := rx.RecvTimeout(time.Second)
	must(t, err)
	max, err := tx.MaxPayload()
	must(t, err)
	check := func(what string) {
		t.Helper()
		if !held.Valid() || string(held.Bytes()) != "keep" || held.TypeID() != 9 {
			t.Fatalf("%s: the held message is no longer held (%q)", what, held.Bytes())
		}
	}

	_, err = tx.SendRecvTimeout(make([]byte, max+1), 1, rx, time.Second)
	mustIs(t, err, ErrTooLarge)
	if Sent(err) {
		t.Fatal("too large: Sent")
	}
	check("too large")

	// fill the client's sending ring, the server reads nothing
	filled := 0
	for ; tx.TrySend([]byte{byte(filled)}, 100) == nil; filled++ {
	}
	if filled == 0 {
		t.Fatal("no room at all")
	}
	_, err = tx.SendRecvTimeout([]byte("x"), 2, rx, 20*time.Millisecond)
	mustIs(t, err, ErrTimeout)
	if Sent(err) {
		t.Fatal("full ring: Sent")
	}
	check("full ring, timeout")
	_, err = tx.SendRecvTimeout([]byte("x"), 2, rx, 0)
	if err == nil || Sent(err) {
		t.Fatalf("full ring, no wait: %v", err)
	}
	check("full ring, no wait")
	// a context deadline longer than a slice: still nothing sent
	_, err = tx.SendRecv(ctxFor(t, 120*time.Millisecond), []byte("x"), 2, rx)
	mustIs(t, err, ErrTimeout, context.DeadlineExceeded)
	if Sent(err) {
		t.Fatal("full ring, context: Sent")
	}
	check("full ring, context")
	for i := 0; i < filled; i++ {
		m, err := srx.TryRecv()
		must(t, err)
		if m.TypeID() != 100 {
			t.Fatalf("message %d on the server has type %d: a failed SendRecv sent it", i, m.TypeID())
		}
	}
	_, err = srx.TryRecv()
	mustIs(t, err, ErrEmpty)

	// the held message forwarded, the receive times out after more than one
	// slice (the wait goes on with plain receives: never a second send)
	start := time.Now()
	_, err = tx.SendRecv(ctxFor(t, 130*time.Millisecond), held.Bytes(), 10, rx)
	mustIs(t, err, ErrTimeout, context.DeadlineExceeded)
	if !Sent(err) {
		t.Fatalf("nothing to receive: not Sent (%v)", err)
	}
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("gave up after %v", d)
	}
	if held.Valid() {
		t.Fatal("the forwarded message is still held after the receive began")
	}
	m, err := srx.TryRecv()
	must(t, err)
	if string(m.Bytes()) != "keep" || m.TypeID() != 10 {
		t.Fatalf("the server got %q type %d", m.Bytes(), m.TypeID())
	}
	_, err = srx.TryRecv()
	mustIs(t, err, ErrEmpty) // exactly once
	// the same with a duration longer than a slice
	_, err = tx.SendRecvTimeout([]byte("y"), 11, rx, 80*time.Millisecond)
	mustIs(t, err, ErrTimeout)
	if !Sent(err) {
		t.Fatal("duration: not Sent")
	}
	m, err = srx.TryRecv()
	must(t, err)
	if string(m.Bytes()) != "y" || m.TypeID() != 11 {
		t.Fatalf("the server got %q type %d", m.Bytes(), m.TypeID())
	}
	_, err = srx.TryRecv()
	mustIs(t, err, ErrEmpty)
	// continue with a plain receive: the reply comes
	must(t, stx.TrySend([]byte("reply"), 12))
	m, err = rx.RecvTimeout(time.Second)
	must(t, err)
	if string(m.Bytes()) != "reply" {
		t.Fatalf("reply %q", m.Bytes())
	}

	// a reply that comes after a few slices is received, the request went
	// out once
	late := make(chan error, 1)
	go func() {
		time.Sleep(150 * time.Millisecond)
		late <- stx.TrySend([]byte("late"), 13)
	}()
	m, err = tx.SendRecv(ctxFor(t, 5*time.Second), []byte("z"), 14, rx)
	must(t, err)
	if string(m.Bytes()) != "late" {
		t.Fatalf("late reply %q", m.Bytes())
	}
	must(t, <-late) // (the server's handles are free again)
	got, err := srx.TryRecv()
	must(t, err)
	if string(got.Bytes()) != "z" {
		t.Fatalf("the server got %q", got.Bytes())
	}
	_, err = srx.TryRecv()
	mustIs(t, err, ErrEmpty)

	// a cancellation after the send: ErrCanceled, Sent
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(80*time.Millisecond, cancel)
	_, err = tx.SendRecv(ctx, []byte("c"), 15, rx)
	mustIs(t, err, ErrCanceled, context.Canceled)
	if !Sent(err) {
		t.Fatal("canceled: not Sent")
	}
	got, err = srx.TryRecv()
	must(t, err)
	if string(got.Bytes()) != "c" {
		t.Fatalf("the server got %q", got.Bytes())
	}
	if Sent(nil) || Sent(errors.New("x")) {
		t.Fatal("Sent of a foreign error")
	}
}

// Misuse: a nil or closed receiver or sender, a handle in use by another
// goroutine (ErrBusy, nothing sent), an outstanding grant, Close while
// waiting.
func TestSendRecvMisuse(t *testing.T) {
	srv, cli := pair(t, &Options{Duplex: true})
	stx, srx, err := srv.Split()
	must(t, err)
	defer stx.Close()
	defer srx.Close()
	tx, rx, err := cli.Split()
	must(t, err)
	defer tx.Close()
	nothingSent := func(what string) {
		t.Helper()
		if _, err := srx.TryRecv(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("%s: the server got something (%v)", what, err)
		}
	}

	_, err = tx.SendRecvTimeout([]byte("x"), 1, nil, time.Second)
	mustIs(t, err, ErrInvalidArgument)

	// another goroutine blocked in rx: Busy, nothing sent
	res := make(chan error, 1)
	go func() { _, err := rx.RecvTimeout(300 * time.Millisecond); res <- err }()
	time.Sleep(50 * time.Millisecond)
	_, err = tx.SendRecvTimeout([]byte("x"), 1, rx, time.Second)
	mustIs(t, err, ErrBusy)
	if Sent(err) {
		t.Fatal("busy: Sent")
	}
	mustIs(t, <-res, ErrTimeout)
	nothingSent("busy receiver")

	// another goroutine in tx (a grant outstanding is ErrBusy too)
	g, err := tx.TryReserve(8)
	must(t, err)
	_, err = tx.SendRecvTimeout([]byte("x"), 1, rx, time.Second)
	mustIs(t, err, ErrBusy)
	must(t, g.Abort())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// tx is in use while this SendRecv waits for a reply
		m, err := tx.SendRecvTimeout([]byte("w"), 2, rx, 300*time.Millisecond)
		if !errors.Is(err, ErrTimeout) || !Sent(err) {
			res <- errors.New("waiting SendRecv: " + err.Error() + string(m.Bytes()))
			return
		}
		res <- nil
	}()
	time.Sleep(50 * time.Millisecond)
	mustIs(t, tx.TrySend([]byte("v"), 3), ErrBusy)
	_, err = rx.TryRecv()
	mustIs(t, err, ErrBusy)
	_, err = tx.SendRecvTimeout([]byte("v"), 3, rx, 0)
	mustIs(t, err, ErrBusy)
	wg.Wait()
	must(t, <-res)
	m, err := srx.TryRecv()
	must(t, err)
	if string(m.Bytes()) != "w" {
		t.Fatalf("the server got %q", m.Bytes())
	}
	nothingSent("busy sender")

	// Close from another goroutine ends a SendRecv waiting for its reply
	go func() {
		_, err := tx.SendRecv(context.Background(), []byte("q"), 4, rx)
		if !Sent(err) {
			err = errors.New("not Sent: " + err.Error())
		} else if errors.Is(err, ErrClosed) {
			err = nil
		}
		res <- err
	}()
	time.Sleep(50 * time.Millisecond)
	must(t, rx.Close())
	select {
	case err := <-res:
		must(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the SendRecv")
	}
	_, err = srx.TryRecv()
	must(t, err)

	// a closed receiver, then a closed sender: ErrClosed, nothing sent
	_, err = tx.SendRecvTimeout([]byte("x"), 1, rx, time.Second)
	mustIs(t, err, ErrClosed)
	if Sent(err) {
		t.Fatal("closed receiver: Sent")
	}
	nothingSent("closed receiver")
	must(t, tx.Close())
	_, err = tx.SendRecvTimeout([]byte("x"), 1, srx, time.Second)
	mustIs(t, err, ErrClosed)

	// a connection's own handles die with it
	srv2, cli2 := pair(t, &Options{Duplex: true})
	_ = srv2
	btx, _ := cli2.Sender()
	brx, _ := cli2.Receiver()
	must(t, cli2.Close())
	_, err = btx.SendRecvTimeout([]byte("x"), 1, brx, time.Second)
	mustIs(t, err, ErrClosed)
}
