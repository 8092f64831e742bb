package memtube

// #include "shim.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Status is a status code of the C ABI (enum memtube_status). Its numbers are
// stable; String gives the C name ("MEMTUBE_FULL").
type Status int32

// The statuses of the C ABI (docs/c-abi.md).
const (
	StatusOK               Status = C.MEMTUBE_OK
	StatusEmpty            Status = C.MEMTUBE_EMPTY
	StatusFull             Status = C.MEMTUBE_FULL
	StatusTimeout          Status = C.MEMTUBE_TIMEOUT
	StatusClosed           Status = C.MEMTUBE_CLOSED
	StatusPeerGone         Status = C.MEMTUBE_PEER_GONE
	StatusCanceled         Status = C.MEMTUBE_CANCELLED
	StatusTooLarge         Status = C.MEMTUBE_TOO_LARGE
	StatusReplyTooLarge    Status = C.MEMTUBE_REPLY_TOO_LARGE
	StatusCorrupt          Status = C.MEMTUBE_CORRUPT
	StatusHandshake        Status = C.MEMTUBE_HANDSHAKE
	StatusProtocol         Status = C.MEMTUBE_PROTOCOL
	StatusPermissionDenied Status = C.MEMTUBE_PERMISSION_DENIED
	StatusAddrInUse        Status = C.MEMTUBE_ADDR_IN_USE
	StatusNoListener       Status = C.MEMTUBE_NO_LISTENER
	StatusNotASocket       Status = C.MEMTUBE_NOT_A_SOCKET
	StatusNoSuchHandle     Status = C.MEMTUBE_NO_SUCH_HANDLE
	StatusUnsupported      Status = C.MEMTUBE_UNSUPPORTED
	StatusOS               Status = C.MEMTUBE_OS
	StatusInvalidArgument  Status = C.MEMTUBE_INVALID_ARGUMENT
	StatusBusy             Status = C.MEMTUBE_BUSY
	StatusBadRegion        Status = C.MEMTUBE_BAD_REGION
	StatusRoleTaken        Status = C.MEMTUBE_ROLE_TAKEN
	StatusPanic            Status = C.MEMTUBE_PANIC
)

// String is the status's C name, from the library.
func (s Status) String() string { return C.GoString(C.memtube_status_name(C.int32_t(s))) }

// The error kinds. Every error this package returns matches exactly one of
// them with errors.Is (and, for timeouts and cancellations through a
// context, also context.DeadlineExceeded or context.Canceled).
var (
	ErrEmpty            = errors.New("memtube: nothing to receive now")
	ErrFull             = errors.New("memtube: no room in the ring now")
	ErrTimeout          = errors.New("memtube: timed out")
	ErrClosed           = errors.New("memtube: closed")
	ErrPeerGone         = errors.New("memtube: peer gone")
	ErrCanceled         = errors.New("memtube: canceled")
	ErrTooLarge         = errors.New("memtube: message too large")
	ErrReplyTooLarge    = errors.New("memtube: reply too large")
	ErrCorrupt          = errors.New("memtube: corrupt ring")
	ErrHandshake        = errors.New("memtube: handshake refused")
	ErrProtocol         = errors.New("memtube: call/serve protocol broken")
	ErrPermissionDenied = errors.New("memtube: permission denied")
	ErrAddrInUse        = errors.New("memtube: address in use")
	ErrNoListener       = errors.New("memtube: no listener")
	ErrNotASocket       = errors.New("memtube: not a socket")
	ErrNoSuchHandle     = errors.New("memtube: no such handle")
	ErrUnsupported      = errors.New("memtube: unsupported")
	ErrOS               = errors.New("memtube: system call failed")
	ErrInvalidArgument  = errors.New("memtube: invalid argument")
	ErrBusy             = errors.New("memtube: busy")
	ErrBadRegion        = errors.New("memtube: bad region")
	ErrRoleTaken        = errors.New("memtube: role taken")
	ErrPanic            = errors.New("memtube: internal bug (caught)")
)

var kinds = map[Status]error{
	StatusEmpty: ErrEmpty, StatusFull: ErrFull, StatusTimeout: ErrTimeout,
	StatusClosed: ErrClosed, StatusPeerGone: ErrPeerGone, StatusCanceled: ErrCanceled,
	StatusTooLarge: ErrTooLarge, StatusReplyTooLarge: ErrReplyTooLarge,
	StatusCorrupt: ErrCorrupt, StatusHandshake: ErrHandshake, StatusProtocol: ErrProtocol,
	StatusPermissionDenied: ErrPermissionDenied, StatusAddrInUse: ErrAddrInUse,
	StatusNoListener: ErrNoListener, StatusNotASocket: ErrNotASocket,
	StatusNoSuchHandle: ErrNoSuchHandle, StatusUnsupported: ErrUnsupported, StatusOS: ErrOS,
	StatusInvalidArgument: ErrInvalidArgument, StatusBusy: ErrBusy,
	StatusBadRegion: ErrBadRegion, StatusRoleTaken: ErrRoleTaken, StatusPanic: ErrPanic,
}

// Error is what every failing call returns: the operation, the status, the
// library's message and, for StatusOS (and a few others), the errno.
// Match it with errors.Is against the Err* values; errors.As gives the
// fields.
type Error struct {
	Op      string        // "recv", "connect @name", ...
	Status  Status        // the C status
	Message string        // the library's explanation (may be empty)
	Errno   syscall.Errno // the OS error behind it, or 0
	Sent    bool          // SendRecv only: the message went out and the receive failed (see Sent)
	ctx     error         // context.DeadlineExceeded / context.Canceled when a context ended the call
}

func (e *Error) Error() string {
	s := "memtube: " + e.Op + ": "
	if k := kinds[e.Status]; k != nil {
		s += k.Error()[len("memtube: "):]
	} else {
		s += e.Status.String()
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Errno != 0 && e.Status == StatusOS {
		s += fmt.Sprintf(" (%v)", e.Errno)
	}
	if e.Sent {
		s += " (after the message was sent)"
	}
	return s
}

// Unwrap gives the kind (ErrTimeout, ErrPeerGone, ...).
func (e *Error) Unwrap() error { return kinds[e.Status] }

// Is also matches the context error that ended the call, and the errno.
func (e *Error) Is(target error) bool {
	if e.ctx != nil && target == e.ctx {
		return true
	}
	if e.Errno != 0 && target == e.Errno {
		return true
	}
	return false
}

// Timeout reports whether the call timed out (the net.Error convention).
func (e *Error) Timeout() bool { return e.Status == StatusTimeout }

// fromScratch builds the error of status st from the scratch block the shim
// filled on the same OS thread as the failing call.
func fromScratch(op string, st C.int32_t, s *C.mt_scratch) error {
	e := &Error{Op: op, Status: Status(st)}
	if s != nil {
		e.Message = C.GoString(&s.err[0])
		e.Errno = syscall.Errno(s.os_errno)
	}
	return e
}

// newError is an error raised on the Go side (no C message).
func newError(op string, st Status, msg string) error {
	return &Error{Op: op, Status: st, Message: msg}
}

// ctxError is the error of a call that a context ended.
func ctxError(op string, ctx context.Context) error {
	err := ctx.Err()
	st := StatusCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		st = StatusTimeout
	}
	return &Error{Op: op, Status: st, Message: err.Error(), ctx: err}
}
