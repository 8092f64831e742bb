// Command hello is the README's example: a listener and a connector (here
// two goroutines; normally two processes) send one message, zero copy.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"memtube"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := memtube.Listen("@memtube-go-hello", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() { // the sender: normally another process
		c, err := memtube.Connect(ctx, "@memtube-go-hello", nil)
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		tx, _ := c.Sender()
		tx.Send(ctx, []byte("hello"), 1)
	}()
	// --- the README's ten lines: receive one message ---
	conn, err := l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	rx, _ := conn.Receiver()
	msg, err := rx.Recv(ctx) // a view of the ring: no copy
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (type %d)\n", msg.Bytes(), msg.TypeID())
	msg.Release() // msg.Bytes() is nil from here on
}
