//go:build wasip1

// Command spliceprobe is the test guest of host/sock_splice_test.go: an
// echo server and a proxy whose io.Copy calls go through sdk/socket's
// host-side splice (or its fallback). Output lines: "listening ADDR", then
// one line per finished copy.
//
//	spliceprobe echo ADDR              one connection, io.Copy(c, c)
//	spliceprobe echolimit ADDR K       one connection, io.Copy(c, io.LimitReader(c, K)),
//	                                   then the rest is read and dropped
//	spliceprobe proxy ADDR UPSTREAM N  N connections (one at a time), each
//	                                   proxied to UPSTREAM both ways, with
//	                                   half-closes passed on
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: echo|echolimit|proxy ADDR [ARGS]")
	}
	ln, err := socket.Listen("tcp", args[1])
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("listening %s\n", ln.Addr())
	switch args[0] {
	case "echo":
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		n, err := io.Copy(c, c)
		fmt.Printf("copied %d %v\n", n, err)
	case "echolimit":
		k, _ := strconv.ParseInt(args[2], 10, 64)
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		lr := &io.LimitedReader{R: c, N: k}
		n, err := io.Copy(c, lr)
		fmt.Printf("copied %d %v left %d\n", n, err, lr.N)
		// Drain the rest, so that closing does not reset the
		// connection under the client's reads.
		io.Copy(io.Discard, c)
	case "proxy":
		n, _ := strconv.Atoi(args[3])
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			if err := proxy(i, c, args[2]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown command %s", args[0])
	}
	return nil
}

type closeWriter interface{ CloseWrite() error }

func proxy(i int, client net.Conn, upstream string) error {
	defer client.Close()
	up, err := socket.Dial("tcp", upstream)
	if err != nil {
		return err
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := io.Copy(up, client)
		fmt.Printf("conn %d up %d %v\n", i, n, err)
		up.(closeWriter).CloseWrite()
	}()
	n, err := io.Copy(client, up)
	fmt.Printf("conn %d down %d %v\n", i, n, err)
	client.(closeWriter).CloseWrite()
	wg.Wait()
	return nil
}
