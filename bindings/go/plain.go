package memtube

// #include "shim.h"
import "C"

import "time"

// plainSleep blocks the calling goroutine in a plain cgo call (nanosleep) for
// d: what the scheduler test compares a blocked Recv with.
func plainSleep(d time.Duration) { C.mt_plain_sleep(C.int64_t(d)) }

// plainNoop is an empty cgo call (no arguments): what the benchmarks compare
// a transition into memtube with.
func plainNoop() { C.mt_plain_noop() }

// plainNoopPtr is an empty cgo call with a pointer argument, which cgo checks
// for Go pointers (GODEBUG=cgocheck): the cost of passing a payload.
func plainNoopPtr(p []byte) { C.mt_plain_noop_ptr(bytesArg(p)) }
