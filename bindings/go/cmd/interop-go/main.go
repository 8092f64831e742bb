// Command interop-go is the Go twin of examples/interop.rs: a peer for
// cross-language tests that sends, receives, serves, calls, echoes or pings
// the same deterministic sequence of messages over a memtube connection,
// checking every byte, through the package's public API only. The command
// line, the sequence and the closing line are interop.rs's:
//
//	interop-go (--listen ADDR | --connect ADDR) ROLE [OPTIONS]
//	  ROLE:    --send N | --recv | --serve | --call N | --echo | --ping N | --dump
//	  OPTIONS: --size S (default 256, at least 8)  --capacity C (default 65536)
//	           --timeout SECS (default 10)  --unchecked  --spin
//
// Message i has type id i and a payload of 8 + (i*7919) % (S-7) bytes: i as
// u64 little-endian, then byte j (from 8) = (i*31 + j) % 256. A call's reply
// is the request reversed, type id i+1. Every role ends with
// "ok count=N bytes=B fnv=HEX secs=T" (--ping adds p50_ns= p99_ns= p999_ns=)
// or "error: ..." and exit status 1.
//
// --dump receives until the stream ends and prints every message, checking
// nothing: "msg TYPE HEX" ("-" for an empty payload), then "end closed", or
// "end KIND" and exit status 1 on any other error (KIND: the C status name in
// lower case without MEMTUBE_, e.g. "peer_gone"); see interop.rs.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"memtube"
)

type role int

const (
	none role = iota
	send
	recv
	serve
	call
	echo
	ping
	dump
)

type args struct {
	listen, connect   string
	role              role
	n                 uint64
	size              int
	capacity          uint32
	timeout           time.Duration
	unchecked, spin   bool
	hasListen, hasCon bool
}

func parse() (*args, error) {
	a := &args{size: 256, capacity: 1 << 16, timeout: 10 * time.Second}
	argv := os.Args[1:]
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		val := func() (string, error) {
			if i+1 >= len(argv) {
				return "", fmt.Errorf("%s needs a value", arg)
			}
			i++
			return argv[i], nil
		}
		var v string
		var err error
		switch arg {
		case "--listen", "--connect", "--send", "--call", "--ping", "--size", "--capacity", "--timeout":
			if v, err = val(); err != nil {
				return nil, err
			}
		}
		switch arg {
		case "--listen":
			a.listen, a.hasListen = v, true
		case "--connect":
			a.connect, a.hasCon = v, true
		case "--send", "--call", "--ping":
			if a.n, err = strconv.ParseUint(v, 10, 64); err != nil {
				return nil, err
			}
			a.role = map[string]role{"--send": send, "--call": call, "--ping": ping}[arg]
		case "--recv":
			a.role = recv
		case "--serve":
			a.role = serve
		case "--echo":
			a.role = echo
		case "--dump":
			a.role = dump
		case "--size":
			if a.size, err = strconv.Atoi(v); err != nil {
				return nil, err
			}
		case "--capacity":
			c, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, err
			}
			a.capacity = uint32(c)
		case "--timeout":
			t, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, err
			}
			a.timeout = time.Duration(t * float64(time.Second))
		case "--unchecked":
			a.unchecked = true
		case "--spin":
			a.spin = true
		default:
			return nil, fmt.Errorf("unknown argument %s", arg)
		}
	}
	if a.hasListen == a.hasCon {
		return nil, errors.New("give exactly one of --listen ADDR and --connect ADDR")
	}
	if a.size < 8 {
		return nil, errors.New("--size must be at least 8")
	}
	if a.role == none {
		return nil, errors.New("give a role: --send N, --recv, --serve, --call N, --echo, --ping N or --dump")
	}
	return a, nil
}

// message writes message i of the sequence (payloads of at most size bytes)
// into buf (len(buf) >= its length) and returns its length.
func messageLen(i uint64, size int) int { return 8 + int((i*7919)%uint64(size-7)) }

func message(i uint64, size int, buf []byte) []byte {
	n := messageLen(i, size)
	buf = buf[:n]
	binary.LittleEndian.PutUint64(buf, i)
	for j := 8; j < n; j++ {
		buf[j] = byte(i*31 + uint64(j))
	}
	return buf
}

type fnv uint64

func (f *fnv) update(p []byte) {
	h := uint64(*f)
	for _, b := range p {
		h ^= uint64(b)
		h *= 0x00000100000001b3
	}
	*f = fnv(h)
}

func open(a *args) (*memtube.Conn, error) {
	duplex := a.role == serve || a.role == call || a.role == echo || a.role == ping
	sends := a.role == send
	dir := memtube.ConnectorToListener
	if sends == a.hasListen {
		dir = memtube.ListenerToConnector
	}
	opts := &memtube.Options{Capacity: a.capacity, Duplex: duplex, Direction: dir, PureSpin: a.spin}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	if a.hasListen {
		l, err := memtube.Listen(a.listen, opts)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		fmt.Println("listening")
		os.Stdout.Sync()
		return l.Accept(ctx)
	}
	for {
		c, err := memtube.Connect(ctx, a.connect, opts)
		if errors.Is(err, memtube.ErrNoListener) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			// still nobody when the time is up: that, as the other
			// languages' peers say (not the context's timeout)
			if ctx.Err() == nil {
				continue
			}
		}
		return c, err
	}
}

type result struct {
	count, bytes uint64
	fnv          fnv
	start        time.Time
	started      bool
	extra        string
}

func (r *result) begin() {
	if !r.started {
		r.start, r.started = time.Now(), true
	}
}

func run(a *args) (*result, error) {
	conn, err := open(a)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r := &result{fnv: 0xcbf29ce484222325}
	want := make([]byte, a.size)
	switch a.role {
	case send:
		tx, err := conn.Sender()
		if err != nil {
			return nil, err
		}
		for i := uint64(0); i < a.n; i++ {
			// zero copy: the message is written in place in the ring
			g, err := tx.ReserveTimeout(messageLen(i, a.size), a.timeout)
			if err != nil {
				return nil, err
			}
			m := message(i, a.size, g.Bytes())
			r.fnv.update(m)
			if err := g.Commit(len(m), uint32(i)); err != nil {
				return nil, err
			}
			r.begin()
			r.bytes += uint64(len(m))
			r.count++
		}
	case recv:
		rx, err := conn.Receiver()
		if err != nil {
			return nil, err
		}
		for {
			m, err := rx.RecvTimeout(a.timeout)
			if errors.Is(err, memtube.ErrClosed) {
				break
			}
			if err != nil {
				return nil, err
			}
			r.begin()
			if a.unchecked {
				r.bytes += uint64(m.Len())
				r.count++
				continue
			}
			w := message(r.count, a.size, want)
			if m.TypeID() != uint32(r.count) || !bytes.Equal(m.Bytes(), w) {
				return nil, fmt.Errorf("message %d differs: type id %d, %d bytes (expected %d bytes)",
					r.count, m.TypeID(), m.Len(), len(w))
			}
			r.fnv.update(m.Bytes())
			r.bytes += uint64(m.Len())
			r.count++
		}
	case serve:
		bad := int64(-1)
		err := conn.Serve(context.Background(), func(ty uint32, req []byte, reply *memtube.Reply) uint32 {
			r.begin()
			w := message(r.count, a.size, want)
			if ty != uint32(r.count) || !bytes.Equal(req, w) {
				if bad < 0 {
					bad = int64(r.count)
				}
			}
			r.fnv.update(req)
			r.bytes += uint64(len(req))
			r.count++
			out := reply.Extend(len(req))
			for k := range req {
				out[k] = req[len(req)-1-k]
			}
			return ty + 1
		})
		if err != nil {
			return nil, err
		}
		if bad >= 0 {
			return nil, fmt.Errorf("request %d differs", bad)
		}
	case call:
		rev := make([]byte, a.size)
		for i := uint64(0); i < a.n; i++ {
			w := message(i, a.size, want)
			reply, err := conn.CallTimeout(uint32(i), w, a.timeout)
			if err != nil {
				return nil, err
			}
			r.begin()
			rv := rev[:len(w)]
			for k := range w {
				rv[k] = w[len(w)-1-k]
			}
			if reply.TypeID() != uint32(i)+1 || !bytes.Equal(reply.Bytes(), rv) {
				return nil, fmt.Errorf("reply %d differs", i)
			}
			r.fnv.update(w)
			r.bytes += uint64(len(w))
			r.count++
		}
	case echo:
		// the connection's own handles: one goroutine, one lock per call
		tx, _ := conn.Sender()
		rx, _ := conn.Receiver()
		m, err := rx.RecvTimeout(a.timeout)
		for err == nil {
			r.begin()
			// Send then receive, two cgo calls: measured 10-20 ns faster per
			// round trip here than one SendRecv (the send's return and the
			// receive's entry overlap the peer's work; a SendRecv puts its
			// whole wrapper on the critical path), so the latency path.
			// The held message goes straight from one ring into the other.
			if err = tx.SendTimeout(m.Bytes(), m.TypeID(), a.timeout); err != nil {
				return nil, err
			}
			r.bytes += uint64(m.Len())
			r.count++
			m, err = rx.RecvTimeout(a.timeout)
		}
		if !errors.Is(err, memtube.ErrClosed) {
			return nil, err
		}
	case ping:
		// the connection's own handles: one goroutine, one lock per call
		tx, _ := conn.Sender()
		rx, _ := conn.Receiver()
		warm := a.n / 10
		msg := make([]byte, a.size)
		samples := make([]int64, 0, a.n)
		// One clock read per round trip, as interop.rs (Instant::now): time.Now
		// reads two clocks (wall and monotonic, two vDSO calls on linux/amd64),
		// time.Since of a monotonic Time reads the monotonic one only.
		base := time.Now()
		prev := time.Since(base)
		for i := uint64(0); i < warm+a.n; i++ {
			binary.LittleEndian.PutUint64(msg, i)
			// send, then wait for the echo (two calls: see --echo)
			if err := tx.SendTimeout(msg, uint32(i), a.timeout); err != nil {
				return nil, err
			}
			m, err := rx.RecvTimeout(a.timeout)
			if err != nil {
				return nil, err
			}
			b := m.Bytes()
			if len(b) != a.size || m.TypeID() != uint32(i) || binary.LittleEndian.Uint64(b) != i {
				return nil, fmt.Errorf("echo %d differs", i)
			}
			// (the message is released by the next receive: no extra call)
			now := time.Since(base)
			if i >= warm {
				samples = append(samples, int64(now-prev))
				if !r.started {
					r.start, r.started = base.Add(prev), true
				}
				r.bytes += uint64(a.size)
				r.count++
			}
			prev = now
		}
		sort.Slice(samples, func(x, y int) bool { return samples[x] < samples[y] })
		q := func(p float64) int64 {
			if len(samples) == 0 {
				return 0
			}
			k := int(float64(len(samples)) * p)
			if k > len(samples)-1 {
				k = len(samples) - 1
			}
			return samples[k]
		}
		r.extra = fmt.Sprintf(" p50_ns=%d p99_ns=%d p999_ns=%d", q(0.5), q(0.99), q(0.999))
	}
	return r, nil
}

// runDump is --dump: every message as "msg TYPE HEX" until an error ends
// the stream (ErrClosed: the peer's clean close); that error.
func runDump(a *args) error {
	conn, err := open(a)
	if err != nil {
		return err
	}
	defer conn.Close()
	rx, err := conn.Receiver()
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for {
		m, err := rx.RecvTimeout(a.timeout)
		if err != nil {
			return err
		}
		p := "-"
		if m.Len() > 0 {
			p = hex.EncodeToString(m.Bytes())
		}
		fmt.Fprintf(out, "msg %d %s\n", m.TypeID(), p)
	}
}

// kind is the error kind --dump prints: the C status name in lower case
// without MEMTUBE_ ("closed", "peer_gone", ...).
func kind(err error) string {
	var e *memtube.Error
	if !errors.As(err, &e) {
		return "os"
	}
	return strings.ToLower(strings.TrimPrefix(e.Status.String(), "MEMTUBE_"))
}

func main() {
	a, err := parse()
	if err == nil && a.role == dump {
		end := kind(runDump(a))
		fmt.Printf("end %s\n", end)
		if end != "closed" {
			os.Exit(1)
		}
		return
	}
	var r *result
	if err == nil {
		r, err = run(a)
	}
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	secs := 0.0
	if r.started {
		secs = time.Since(r.start).Seconds()
	}
	f := uint64(r.fnv)
	if a.unchecked || a.role == echo || a.role == ping {
		f = 0
	}
	fmt.Printf("ok count=%d bytes=%d fnv=%016x secs=%.6f%s\n", r.count, r.bytes, f, secs, r.extra)
}
