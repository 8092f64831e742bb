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

// rxState is the Go side of one C receiver: the message it holds.
type rxState struct {
	rx  *C.memtube_receiver
	gen uint64 // under the handle's lock: bumped at every hold, so each Message has its own
	// cur is the gen of the message held in the ring (or call reply), 0
	// when none. Atomic: Message views read it without the handle's lock,
	// while Close (from any goroutine) clears it under the lock.
	cur  atomic.Uint64
	data uintptr // under the lock: the held message's bytes (Call checks its request against them)
	n    int
}

// held reports whether a message is held.
func (r *rxState) held() bool { return r.cur.Load() != 0 }

// drop forgets the held message (the C side released it or is gone).
func (r *rxState) drop() {
	if r.cur.Load() != 0 {
		r.cur.Store(0)
	}
}

// urx is the C receiver as the hot-path helpers take it.
func (r *rxState) urx() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(r.rx))) }

// Receiver is the reading end of a ring: borrowed from a Conn
// (Conn.Receiver) or owned (Conn.Split). One goroutine at a time (ErrBusy
// otherwise). It holds at most one Message: the next receive releases the
// one before.
type Receiver struct {
	c     *core
	st    *rxState
	conn  *Conn // a borrowed receiver keeps its connection reachable
	owned bool
}

// Message is a received message (or a Call's reply), in place in the ring:
// no copy was made. Its bytes are valid until it is released: by Release,
// by the next receive (Recv, TryRecv, RecvCopy, Call, Serve) on the same
// receiver, or by the close of the receiver or its connection. After that,
// Bytes returns nil; Len and TypeID stay readable. A slice obtained from
// Bytes before must not be used after (see README.md, Lifetimes); copy what
// must outlive the message.
type Message struct {
	r      *Receiver
	gen    uint64
	data   *byte
	n      int
	typeID uint32
}

// live reports whether m is still its receiver's held message.
//
// A Close by another goroutine may end the message at any moment: a view
// taken before must not be read after (as the mapping of a file closed by
// another goroutine); live never races in Go's sense (atomic state).
func (m *Message) live() bool { return m.r != nil && m.r.st.cur.Load() == m.gen }

// Bytes is the payload, in the ring (read-only by contract: the sender may
// reuse the space once it is released, and a hostile sender may change the
// bytes while you read them, never the length). Nil once released.
func (m *Message) Bytes() []byte {
	if !m.live() {
		return nil
	}
	if m.n == 0 {
		return []byte{}
	}
	// SAFETY (raw pointer): the library described n readable bytes at data
	// for this message; they stay mapped and unreleased until release, the
	// next receive or the free of the receiver, which all bump gen (live).
	return unsafe.Slice(m.data, m.n)
}

// Len is the payload's length.
func (m *Message) Len() int { return m.n }

// TypeID is the type id the sender gave the message.
func (m *Message) TypeID() uint32 { return m.typeID }

// Valid reports whether the message is still held (Bytes is non-nil).
func (m *Message) Valid() bool { return m.live() }

// Release gives the message's ring space back to the sender; its Bytes die.
// Nil also when it was released already.
func (m *Message) Release() error {
	if m.r == nil {
		return nil
	}
	r := m.r
	if err := r.c.enter("release"); err != nil {
		if !m.live() { // (released, or its receiver closed)
			return nil
		}
		return err
	}
	defer r.c.mu.Unlock()
	if !m.live() {
		return nil
	}
	return r.releaseLocked()
}

func (r *Receiver) releaseLocked() error {
	if st := C.mt_release(r.st.urx(), r.c.us()); st != C.MEMTUBE_OK {
		return r.c.fail("release", st)
	}
	r.st.drop()
	return nil
}

// Release releases the held message, if any.
func (r *Receiver) Release() error {
	if err := r.c.enter("release"); err != nil {
		return err
	}
	defer r.c.mu.Unlock()
	return r.releaseLocked()
}

// held records the message the shim wrote into the scratch block.
func (r *Receiver) hold() Message {
	st := r.st
	st.gen++
	st.cur.Store(st.gen)
	m := &r.c.s.msg
	st.data, st.n = uintptr(unsafe.Pointer(m.data)), int(m.len)
	return Message{r: r, gen: st.gen, data: (*byte)(unsafe.Pointer(m.data)), n: int(m.len), typeID: uint32(m.type_id)}
}

// Recv receives the next message, in place (the one held before is released
// first), waiting as long as ctx allows: ErrTimeout / ErrCanceled (also
// matching context.DeadlineExceeded / context.Canceled) with nothing
// received. ErrClosed once the peer closed and every message it sent was
// received, ErrPeerGone once it died (after every message it committed).
// With Options.PureSpin the wait spins; otherwise it spins briefly, then
// sleeps in the kernel. Either way it holds an OS thread (as any cgo call
// does), not a P: other goroutines run.
func (r *Receiver) Recv(ctx context.Context) (Message, error) {
	w := waitCtx(ctx)
	return r.recv(&w)
}

// RecvTimeout is Recv waiting at most d (negative: without limit) instead of
// as a context allows: no context to make per message on a hot path.
func (r *Receiver) RecvTimeout(d time.Duration) (Message, error) {
	w := waitFor(d)
	return r.recv(&w)
}

func (r *Receiver) recv(w *wait) (Message, error) {
	const op = "recv"
	if err := r.c.enter(op); err != nil {
		return Message{}, err
	}
	defer r.c.mu.Unlock()
	for {
		ns, last, err := r.c.next(w, op)
		if err != nil {
			return Message{}, err
		}
		st := C.mt_recv(r.st.urx(), C.int64_t(ns), r.c.us())
		if st == C.MEMTUBE_OK {
			return r.hold(), nil
		}
		// The held message was released by the call, whatever it returned.
		r.st.drop()
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		err = r.c.fail(op, st)
		if st == C.MEMTUBE_TIMEOUT {
			err = w.timeoutError(err)
		}
		return Message{}, err
	}
}

// TryRecv is Recv without waiting: ErrEmpty when nothing is there now.
func (r *Receiver) TryRecv() (Message, error) {
	const op = "recv"
	if err := r.c.enter(op); err != nil {
		return Message{}, err
	}
	defer r.c.mu.Unlock()
	st := C.mt_recv(r.st.urx(), 0, r.c.us())
	if st == C.MEMTUBE_OK {
		return r.hold(), nil
	}
	r.st.drop()
	return Message{}, r.c.fail(op, st)
}

// RecvCopy receives the next message into buf and releases it: each byte is
// read from the ring once, for a receiver that does not trust its sender.
// It returns the payload's length and type id. ErrTooLarge when buf is
// shorter than the payload: nothing is copied, n is the room needed, and the
// message stays in the ring for the next receive. Waits as Recv.
func (r *Receiver) RecvCopy(ctx context.Context, buf []byte) (n int, typeID uint32, err error) {
	const op = "recv copy"
	if err := r.c.enter(op); err != nil {
		return 0, 0, err
	}
	defer r.c.mu.Unlock()
	var p *C.uint8_t
	if len(buf) > 0 {
		// cgo pointer rules: buf is Go memory without Go pointers, written
		// by the library during the call only.
		p = (*C.uint8_t)(unsafe.Pointer(&buf[0]))
	}
	w := waitCtx(ctx)
	for {
		ns, last, err := r.c.next(&w, op)
		if err != nil {
			return 0, 0, err
		}
		st := C.mt_recv_copy(r.st.rx, C.int64_t(ns), p, C.size_t(len(buf)), r.c.s)
		r.st.drop()
		if st == C.MEMTUBE_OK {
			return int(r.c.s.msg.len), uint32(r.c.s.msg.type_id), nil
		}
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		err = r.c.fail(op, st)
		if st == C.MEMTUBE_TOO_LARGE {
			return int(r.c.s.msg.len), uint32(r.c.s.msg.type_id), err
		}
		if st == C.MEMTUBE_TIMEOUT {
			err = w.timeoutError(err)
		}
		return 0, 0, err
	}
}

func (r *Receiver) query(op string, what C.int, probe bool) error {
	if err := r.c.enter(op); err != nil {
		return err
	}
	if st := C.mt_receiver_query(r.st.rx, what, C._Bool(probe), r.c.s); st != C.MEMTUBE_OK {
		err := r.c.fail(op, st)
		r.c.mu.Unlock()
		return err
	}
	return nil // locked: the caller reads r.c.s and unlocks
}

// MaxPayload is the largest payload this receiver's ring carries.
func (r *Receiver) MaxPayload() (int, error) {
	if err := r.query("max payload", C.MT_Q_MAX_PAYLOAD, false); err != nil {
		return 0, err
	}
	defer r.c.mu.Unlock()
	return int(r.c.s.u32), nil
}

// Stats are the ring's counters (may be slightly stale).
func (r *Receiver) Stats() (Stats, error) {
	if err := r.query("stats", C.MT_Q_STATS, false); err != nil {
		return Stats{}, err
	}
	defer r.c.mu.Unlock()
	return statsOf(&r.c.s.stats), nil
}

// PeerState is the peer's state: with probe one system call asks now,
// without it the cached state (may be stale).
func (r *Receiver) PeerState(probe bool) (PeerState, error) {
	if err := r.query("peer state", C.MT_Q_PEER_STATE, probe); err != nil {
		return 0, err
	}
	defer r.c.mu.Unlock()
	return PeerState(r.c.s.state), nil
}

// Close frees an owned receiver (from Split): a held message is released
// and the ring closes (the peer's sender gets ErrClosed). Any goroutine may
// call it: a Recv blocked on it returns ErrClosed within about 50 ms first.
// A borrowed receiver is the connection's: closing it is ErrInvalidArgument.
// A second Close returns nil.
func (r *Receiver) Close() error {
	if !r.owned {
		return newError("close", StatusInvalidArgument, "a borrowed receiver: close its connection")
	}
	if !r.c.beginClose() {
		return nil
	}
	C.memtube_receiver_free(r.st.rx)
	r.st.rx = nil
	r.st.drop()
	r.c.endClose()
	runtime.SetFinalizer(r, nil)
	return nil
}
