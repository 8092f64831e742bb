package memtube

// #include "shim.h"
import "C"

import "time"

// plainSleep blocks the calling goroutine in a plain cgo call (nanosleep) for
// d: what the scheduler test compares a blocked Recv with.
func plainSleep(d time.Duration) { C.mt_plain_sleep(C.int64_t(d)) }
