package memtube

// #include "shim.h"
import "C"

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
	"unsafe"
)

// SendRecv sends p as one message of type typeID on s (as Send), then
// receives the next message on r (as Recv), in one call into the library
// (memtube_sendrecv, MPI's Sendrecv): a lockstep exchange, or an echo, for
// one cgo transition per round trip instead of two. s and r may be a
// duplex connection's own handles (Conn.Sender and Conn.Receiver) or two
// owned halves (Split), of one connection or of two. Both are used by this
// goroutine for the call: ErrBusy when another goroutine is in either (with
// nothing sent), ErrClosed when either is closed.
//
// p may be the bytes of the message r holds (an echo forwards what it got
// straight from the ring): that message is released only after the send,
// when the receive starts. The returned Message is held by r, as Recv's.
// (Payloads up to 256 bytes are first copied to C memory of the handle's:
// cheaper than cgo's check of a pointer argument.)
//
// The context bounds the whole exchange, waiting in slices of at most 50 ms
// as Recv does (a send that had to wait for room may let the call end up
// to one slice after the deadline). When the call fails, Sent(err) says
// which step failed:
//   - false: nothing was sent and nothing received; the message r held is
//     still held and valid (ErrTooLarge; ErrTimeout, or ErrFull without
//     waiting, when the ring stayed full; ErrClosed; ErrBusy; ...);
//   - true: p went out and the receive failed (ErrTimeout, ErrCanceled,
//     ErrClosed when the peer closed after it, ...); the message r held was
//     released. Continue with r.Recv: calling SendRecv again would send p a
//     second time.
func (s *Sender) SendRecv(ctx context.Context, p []byte, typeID uint32, r *Receiver) (Message, error) {
	w := waitCtx(ctx)
	return s.sendRecv(&w, p, typeID, r)
}

// SendRecvTimeout is SendRecv waiting at most d (negative: without limit; 0:
// neither step waits) instead of as a context allows: no context to make
// per exchange on a hot path.
func (s *Sender) SendRecvTimeout(p []byte, typeID uint32, r *Receiver, d time.Duration) (Message, error) {
	w := waitFor(d)
	return s.sendRecv(&w, p, typeID, r)
}

// Sent reports whether err, from SendRecv or SendRecvTimeout, came after the
// message went out (the receive failed: continue with Recv, never send the
// message again). False for nil and for every other error.
func Sent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Sent
}

// sendRecv is one function on purpose: splitting the loop into a helper
// cost 13 ns per exchange (go test -bench NoWait: 301 -> 275 ns per two
// exchanges when merged), more than its defers lose by not being open-coded.
func (s *Sender) sendRecv(w *wait, p []byte, typeID uint32, r *Receiver) (Message, error) {
	const op = "sendrecv"
	if r == nil {
		return Message{}, newError(op, StatusInvalidArgument, "no receiver")
	}
	if err := s.c.enter(op); err != nil {
		return Message{}, err
	}
	defer s.c.mu.Unlock()
	// A connection's borrowed sender and receiver share its core: one lock.
	// Two cores are both tried (never waited for), so two goroutines
	// crossing pairs get ErrBusy, never a deadlock.
	two := r.c != s.c
	if two {
		if err := r.c.enter(op); err != nil {
			return Message{}, err
		}
		defer r.c.mu.Unlock()
	}
	// A small payload goes to C through the scratch block (C memory): a
	// call with no pointer argument skips cgo's pointer check, which costs
	// more than this copy (README.md, Performance).
	small := len(p) <= C.MT_SMALL_CAP
	if small {
		// SAFETY (raw pointer): r.c.s is the receiver's live scratch block
		// (freed only by a close, which waits for the lock this goroutine
		// holds); small holds MT_SMALL_CAP >= len(p) bytes. p may be the
		// held message's bytes: copied before anything releases it.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&r.c.s.small[0])), len(p)), p)
	}
	for {
		ns, last, err := s.c.next(w, op)
		if err == nil && two && atomic.LoadInt32(&r.c.closing) != 0 {
			err = newError(op, StatusClosed, "closed while waiting")
		}
		if err != nil {
			return Message{}, err
		}
		// The error text, the message and the step that failed go to the
		// receiver's scratch block (this goroutine holds both handles).
		var st C.int32_t
		if small {
			st = C.mt_sendrecv_small(s.st.utx(), C.size_t(len(p)), C.uint32_t(typeID), r.st.urx(), C.int64_t(ns), r.c.us())
		} else {
			st = C.mt_sendrecv(s.st.utx(), bytesArg(p), C.size_t(len(p)), C.uint32_t(typeID),
				r.st.urx(), C.int64_t(ns), r.c.us())
		}
		if st == C.MEMTUBE_OK {
			return r.hold(), nil
		}
		if r.c.s.sent {
			// Out: the held message was released when the receive began.
			r.st.drop()
			if st == C.MEMTUBE_TIMEOUT && !last {
				return r.recvAfterSend(w, op, s.c)
			}
			return Message{}, sentError(r.recvError(op, st, w))
		}
		// Nothing went out; the held message is still held.
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		return Message{}, r.recvError(op, st, w)
	}
}

// recvAfterSend finishes a SendRecv whose message went out and whose
// receive ran out of its first slice: plain receives from here (the message
// must not go out twice), while also watching the sender's Close (other:
// its core, which the caller holds). Every error it returns is Sent.
func (r *Receiver) recvAfterSend(w *wait, op string, other *core) (Message, error) {
	for {
		ns, last, err := r.c.next(w, op)
		if err == nil && other != r.c && atomic.LoadInt32(&other.closing) != 0 {
			err = newError(op, StatusClosed, "closed while waiting")
		}
		if err != nil {
			return Message{}, sentError(err)
		}
		st := C.mt_recv(r.st.urx(), C.int64_t(ns), r.c.us())
		if st == C.MEMTUBE_OK {
			return r.hold(), nil
		}
		r.st.drop()
		if st == C.MEMTUBE_TIMEOUT && !last {
			continue
		}
		return Message{}, sentError(r.recvError(op, st, w))
	}
}

// recvError is the error of status st from r's scratch block; a TIMEOUT at
// a context's deadline also matches context.DeadlineExceeded.
func (r *Receiver) recvError(op string, st C.int32_t, w *wait) error {
	err := r.c.fail(op, st)
	if st == C.MEMTUBE_TIMEOUT {
		err = w.timeoutError(err)
	}
	return err
}

// sentError marks err as coming after the send (see Sent).
func sentError(err error) error {
	if e, ok := err.(*Error); ok {
		e.Sent = true
	}
	return err
}
