package memtube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

var addrSeq int64

// addr is a fresh abstract address for one test.
func addr(t *testing.T) string {
	return fmt.Sprintf("@memtube-go-%d-%d", os.Getpid(), atomic.AddInt64(&addrSeq, 1))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pair makes a connection in this process: the listener's side and the
// connector's side, with the same options on both.
func pair(t *testing.T, opts *Options) (server, client *Conn) {
	t.Helper()
	a := addr(t)
	l, err := Listen(a, opts)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept(ctxFor(t, 10*time.Second))
		ch <- res{c, err}
	}()
	client, err = Connect(ctxFor(t, 10*time.Second), a, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close(); client.Close() })
	return r.c, client
}

// mustIs fails unless errors.Is(err, target) for every target.
func mustIs(t *testing.T, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q (%T) is not %v", err, err, target)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}
