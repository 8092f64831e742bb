package memtube

// #include "shim.h"
import "C"

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// txState is the Go side of one C sender: the grant it has out.
type txState struct {
	tx  *C.memtube_sender
	gen uint64 // under the handle's lock: bumped at every reserve, so each Grant has its own
	// cur is the gen of the outstanding Grant, 0 when none. Atomic: Grant
	// views read it without the handle's lock, while Close (from any
	// goroutine) clears it under the lock.
	cur atomic.Uint64
}

// granted reports whether a Grant is outstanding.
func (t *txState) granted() bool { return t.cur.Load() != 0 }

// ungrant forgets the outstanding Grant (committed, aborted or gone).
func (t *txState) ungrant() { t.cur.Store(0) }

// utx is the C sender as the hot-path helpers take it.
func (t *txState) utx() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(t.tx))) }

// Sender is the writing end of a ring: borrowed from a Conn (Conn.Sender) or
// owned (Conn.Split). One goroutine at a time (ErrBusy otherwise).
type Sender struct {
	c     *core
	st    *txState
	conn  *Conn // a borrowed sender keeps its connection reachable
	owned bool
}

// bytesArg is p as a C pointer: nil for an empty slice.
//
// cgo pointer rules: the memory is Go memory holding no Go pointers, read by
// the library only during the call it is passed to.
func bytesArg(p []byte) unsafe.Pointer {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Pointer(&p[0])
}

// Send copies p into the ring as one message of type typeID and publishes
// it, waiting for room as long as ctx allows (ErrTimeout / ErrCanceled, with
// nothing sent). ErrTooLarge above MaxPayload; ErrClosed / ErrPeerGone when
// the peer closed or died; ErrBusy while a Grant is outstanding.
func (s *Sender) Send(ctx context.Context, p []byte, typeID uint32) error {
	w := waitCtx(ctx)
	return s.send(&w, p, typeID)
}

// SendTimeout is Send waiting at most d (negative: without limit) instead of
// as a context allows: no context to make per message on a hot path.
func (s *Sender) SendTimeout(p []byte, typeID uint32, d time.Duration) error {
	w := waitFor(d)
	return s.send(&w, p, typeID)
}

func (s *Sender) send(w *wait, p []byte, typeID uint32) error {
	const op = "send"
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	small := s.stage(p)
	for {
		ns, last, err := s.c.next(w, op)
		if err != nil {
			return err
		}
		var st C.int32_t
		if small {
			st = C.mt_send_small(s.st.utx(), C.size_t(len(p)), C.uint32_t(typeID), C.int64_t(ns), s.c.us())
		} else {
			st = C.mt_send(s.st.utx(), bytesArg(p), C.size_t(len(p)), C.uint32_t(typeID), C.int64_t(ns), s.c.us())
		}
		if st == C.MEMTUBE_OK {
			return nil
		}
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		return s.fail(op, st, w)
	}
}

// stage copies a payload of at most MT_SMALL_CAP bytes into the scratch
// block (C memory) and reports whether it did: mt_send_small then takes no
// pointer argument, so cgo checks none (passing p costs about 15 ns a call
// in that check, the copy 1-2 ns). Under the handle's lock. p may be the
// receiver's held message (ring memory): the copy is made before the call.
func (s *Sender) stage(p []byte) bool {
	if len(p) > C.MT_SMALL_CAP || len(p) == 0 {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&s.c.s.small[0])), len(p)), p)
	return true
}

// fail is the error of status st; a TIMEOUT at a context's deadline also
// matches context.DeadlineExceeded.
func (s *Sender) fail(op string, st C.int32_t, w *wait) error {
	err := s.c.fail(op, st)
	if st == C.MEMTUBE_TIMEOUT && w != nil {
		return w.timeoutError(err)
	}
	return err
}

// TrySend is Send without waiting: ErrFull when there is no room now.
func (s *Sender) TrySend(p []byte, typeID uint32) error {
	const op = "send"
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	var st C.int32_t
	if s.stage(p) {
		st = C.mt_send_small(s.st.utx(), C.size_t(len(p)), C.uint32_t(typeID), 0, s.c.us())
	} else {
		st = C.mt_send(s.st.utx(), bytesArg(p), C.size_t(len(p)), C.uint32_t(typeID), 0, s.c.us())
	}
	if st != C.MEMTUBE_OK {
		return s.c.fail(op, st)
	}
	return nil
}

// SendStaged copies p into the ring without publishing it (never waits:
// ErrFull when there is no room). Staged messages become visible together at
// the next Publish, publishing Send or Commit, or Close.
func (s *Sender) SendStaged(p []byte, typeID uint32) error {
	const op = "send staged"
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	if st := C.mt_send_staged(s.st.tx, bytesArg(p), C.size_t(len(p)), C.uint32_t(typeID), s.c.s); st != C.MEMTUBE_OK {
		return s.c.fail(op, st)
	}
	return nil
}

// Publish makes the staged messages visible (one store and one wake-up check
// for the batch).
func (s *Sender) Publish() error {
	const op = "publish"
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	if st := C.mt_publish(s.st.tx, s.c.s); st != C.MEMTUBE_OK {
		return s.c.fail(op, st)
	}
	return nil
}

// Grant is n writable bytes reserved in the ring (zero copy): write them
// through Bytes, then Commit (publishes) or Abort (sends nothing). While it is
// outstanding every other writing call on its Sender returns ErrBusy.
type Grant struct {
	s    *Sender
	gen  uint64
	data *byte
	n    int
}

// Reserve reserves n bytes in place, waiting for room as ctx allows.
func (s *Sender) Reserve(ctx context.Context, n int) (Grant, error) {
	w := waitCtx(ctx)
	return s.reserve(&w, n)
}

// ReserveTimeout is Reserve waiting at most d (negative: without limit).
func (s *Sender) ReserveTimeout(n int, d time.Duration) (Grant, error) {
	w := waitFor(d)
	return s.reserve(&w, n)
}

// TryReserve is Reserve without waiting: ErrFull when there is no room now.
func (s *Sender) TryReserve(n int) (Grant, error) { return s.reserve(nil, n) }

func (s *Sender) reserve(w *wait, n int) (Grant, error) {
	const op = "reserve"
	if n < 0 {
		return Grant{}, newError(op, StatusInvalidArgument, "negative length")
	}
	if err := s.c.enter(op); err != nil {
		return Grant{}, err
	}
	defer s.c.mu.Unlock()
	for {
		var ns int64
		last := true
		if w != nil {
			var err error
			if ns, last, err = s.c.next(w, op); err != nil {
				return Grant{}, err
			}
		}
		st := C.mt_reserve(s.st.utx(), C.size_t(n), C.int64_t(ns), s.c.us())
		if st == C.MEMTUBE_OK {
			s.st.gen++
			s.st.cur.Store(s.st.gen)
			return Grant{s: s, gen: s.st.gen, data: (*byte)(unsafe.Pointer(s.c.s.grant.data)), n: int(s.c.s.grant.len)}, nil
		}
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		return Grant{}, s.fail(op, st, w)
	}
}

// live reports whether g is still its sender's outstanding grant.
// (Atomic state, as Message.live: a Close by another goroutine may end the
// grant at any moment, but reading this never races.)
func (g *Grant) live() bool { return g.s != nil && g.s.st.cur.Load() == g.gen }

// Bytes is the reserved memory, in the ring: valid until Commit, Abort or the
// close of the Sender (or its connection); nil after. A slice kept past that
// points into ring memory that is no longer yours (see README.md, Lifetimes).
func (g *Grant) Bytes() []byte {
	if !g.live() {
		return nil
	}
	// SAFETY (raw pointer): the library reserved n writable bytes at data
	// for this grant, and they stay mapped and ours until commit, abort or
	// the free of the sender, which all bump gen (checked by live).
	return unsafe.Slice(g.data, g.n)
}

// Len is the reserved length.
func (g *Grant) Len() int { return g.n }

// Commit publishes the first used bytes as one message of type typeID.
// ErrInvalidArgument when used exceeds Len (the grant stays outstanding) or
// the grant is no longer outstanding.
func (g *Grant) Commit(used int, typeID uint32) error {
	const op = "commit"
	if g.s == nil {
		return newError(op, StatusInvalidArgument, "no grant")
	}
	s := g.s
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	if !g.live() {
		return newError(op, StatusInvalidArgument, "the grant is no longer outstanding")
	}
	if used < 0 {
		return newError(op, StatusInvalidArgument, "negative length")
	}
	if st := C.mt_commit(s.st.utx(), C.size_t(used), C.uint32_t(typeID), s.c.us()); st != C.MEMTUBE_OK {
		return s.c.fail(op, st)
	}
	s.st.ungrant()
	return nil
}

// Abort drops the grant: nothing is sent. Nil also when it is no longer
// outstanding.
func (g *Grant) Abort() error {
	const op = "abort"
	if g.s == nil {
		return nil
	}
	s := g.s
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	if !g.live() {
		return nil
	}
	if st := C.mt_abort(s.st.tx, s.c.s); st != C.MEMTUBE_OK {
		return s.c.fail(op, st)
	}
	s.st.ungrant()
	return nil
}

func (s *Sender) query(op string, what C.int, probe bool) error {
	if err := s.c.enter(op); err != nil {
		return err
	}
	if st := C.mt_sender_query(s.st.tx, what, C._Bool(probe), s.c.s); st != C.MEMTUBE_OK {
		err := s.c.fail(op, st)
		s.c.mu.Unlock()
		return err
	}
	return nil // locked: the caller reads s.c.s and unlocks
}

// MaxPayload is the largest message this sender's ring takes.
func (s *Sender) MaxPayload() (int, error) {
	if err := s.query("max payload", C.MT_Q_MAX_PAYLOAD, false); err != nil {
		return 0, err
	}
	defer s.c.mu.Unlock()
	return int(s.c.s.u32), nil
}

// Capacity is the data-area bytes of this sender's ring.
func (s *Sender) Capacity() (int, error) {
	if err := s.query("capacity", C.MT_Q_CAPACITY, false); err != nil {
		return 0, err
	}
	defer s.c.mu.Unlock()
	return int(s.c.s.u32), nil
}

// Stats are the ring's counters (may be slightly stale).
func (s *Sender) Stats() (Stats, error) {
	if err := s.query("stats", C.MT_Q_STATS, false); err != nil {
		return Stats{}, err
	}
	defer s.c.mu.Unlock()
	return statsOf(&s.c.s.stats), nil
}

// PeerState is the peer's state: with probe one system call asks now,
// without it the cached state (may be stale).
func (s *Sender) PeerState(probe bool) (PeerState, error) {
	if err := s.query("peer state", C.MT_Q_PEER_STATE, probe); err != nil {
		return 0, err
	}
	defer s.c.mu.Unlock()
	return PeerState(s.c.s.state), nil
}

func (s *Sender) set(op string, what C.int, v uint32) error {
	if err := s.c.enter(op); err != nil {
		return err
	}
	defer s.c.mu.Unlock()
	if st := C.mt_sender_set(s.st.tx, what, C.uint32_t(v), s.c.s); st != C.MEMTUBE_OK {
		return s.c.fail(op, st)
	}
	return nil
}

// SetNontemporalThreshold: copying sends of at least bytes bytes use
// non-temporal stores (x86-64; the default depends on the processor: 16 KiB
// on AMD, off elsewhere; math.MaxUint32 turns it off). The library's rule
// for 2 KiB sends that follow each other back to back within a few tens of
// nanoseconds rarely applies through cgo; set a threshold to choose.
func (s *Sender) SetNontemporalThreshold(bytes uint32) error {
	return s.set("set nontemporal threshold", C.MT_S_NONTEMPORAL, bytes)
}

// SetLinePadding pads small published messages to the end of their cache
// line (on by default in duplex connections and with isolation).
func (s *Sender) SetLinePadding(on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	return s.set("set line padding", C.MT_S_LINE_PADDING, v)
}

// Close frees an owned sender (from Split): staged messages are published,
// then the ring closes cleanly (the peer gets ErrClosed after the last
// message); an outstanding Grant is dropped. Any goroutine may call it. A
// borrowed sender is the connection's: closing it is ErrInvalidArgument.
// A second Close returns nil.
func (s *Sender) Close() error {
	if !s.owned {
		return newError("close", StatusInvalidArgument, "a borrowed sender: close its connection")
	}
	if !s.c.beginClose() {
		return nil
	}
	C.memtube_sender_free(s.st.tx)
	s.st.tx = nil
	s.st.ungrant()
	s.c.endClose()
	runtime.SetFinalizer(s, nil)
	return nil
}
