package memtube

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
	"time"
)

// The round-trip benchmarks ping the Rust interop peer's --echo --spin (in
// its own process; on CPU $MEMTUBE_ECHO_CPU when set, with taskset) with
// 32-byte messages, PureSpin, as `interop --ping` does:
//
//	taskset -c 0 go test -run XXX -bench RoundTrip -cpuprofile cpu.out
//
// They measure, never assert, speed.
func benchEcho(b *testing.B) (*Sender, *Receiver) {
	bin := os.Getenv("MEMTUBE_INTEROP")
	if bin == "" {
		b.Skip("set MEMTUBE_INTEROP to the Rust interop peer")
	}
	a := addr(nil)
	args := []string{bin, "--listen", a, "--echo", "--spin", "--size", "32", "--timeout", "60"}
	if cpu := os.Getenv("MEMTUBE_ECHO_CPU"); cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c *Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err = Connect(ctx, a, &Options{Duplex: true, PureSpin: true}); err == nil {
			break
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	tx, rx, err := c.Split()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tx.Close(); rx.Close() })
	return tx, rx
}

func BenchmarkRoundTripSendRecv(b *testing.B) {
	tx, rx := benchEcho(b)
	msg := make([]byte, 32)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		m, err := tx.SendRecvTimeout(msg, uint32(i), rx, 10*time.Second)
		if err != nil || m.Len() != 32 {
			b.Fatal(i, err)
		}
	}
}

func BenchmarkRoundTripSendThenRecv(b *testing.B) {
	tx, rx := benchEcho(b)
	msg := make([]byte, 32)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		if err := tx.SendTimeout(msg, uint32(i), 10*time.Second); err != nil {
			b.Fatal(err)
		}
		m, err := rx.RecvTimeout(10 * time.Second)
		if err != nil || m.Len() != 32 {
			b.Fatal(i, err)
		}
	}
}

// The cost of one cgo transition here, alone and with a checked pointer.
func BenchmarkCgoNoop(b *testing.B) {
	for i := 0; i < b.N; i++ {
		plainNoop()
	}
}

func BenchmarkCgoNoopPtr(b *testing.B) {
	p := make([]byte, 32)
	for i := 0; i < b.N; i++ {
		plainNoopPtr(p)
	}
}

// The cost of one exchange on this thread without any wait (the binding, one
// or two cgo transitions, the library's send and receive, cache-hot): two
// connected ends in one goroutine, each exchange finding the other end's
// message already there. One op is two exchanges (one on each end).
func benchNoWait(b *testing.B, exchange func(tx *Sender, p []byte, i int, rx *Receiver) (Message, error)) {
	a := addr(nil)
	opts := &Options{Duplex: true, PureSpin: true}
	l, err := Listen(a, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept(context.Background())
		if err != nil {
			b.Error(err)
		}
		ch <- c
	}()
	cli, err := Connect(context.Background(), a, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	srv := <-ch
	if srv == nil {
		b.FailNow()
	}
	defer srv.Close()
	atx, _ := cli.Sender()
	arx, _ := cli.Receiver()
	btx, _ := srv.Sender()
	brx, _ := srv.Receiver()
	msg := make([]byte, 32)
	if err := atx.TrySend(msg, 0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		if m, err := exchange(btx, msg, i, brx); err != nil || m.Len() != 32 {
			b.Fatal(err)
		}
		if m, err := exchange(atx, msg, i, arx); err != nil || m.Len() != 32 {
			b.Fatal(err)
		}
	}
}

func BenchmarkNoWaitSendRecv(b *testing.B) {
	benchNoWait(b, func(tx *Sender, p []byte, i int, rx *Receiver) (Message, error) {
		return tx.SendRecvTimeout(p, uint32(i), rx, 10*time.Second)
	})
}

func BenchmarkNoWaitSendThenRecv(b *testing.B) {
	benchNoWait(b, func(tx *Sender, p []byte, i int, rx *Receiver) (Message, error) {
		if err := tx.SendTimeout(p, uint32(i), 10*time.Second); err != nil {
			return Message{}, err
		}
		return rx.RecvTimeout(10 * time.Second)
	})
}
