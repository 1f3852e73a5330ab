//go:build wasip1

// Command addrprobe is the test guest of host/sock_addr_test.go: the
// addresses of accepted connections, which sdk/socket asks of the host on
// first use. Arguments are listeners: "fd:N" (a preopened socket) or an
// address to listen on. For each listener in turn it accepts three
// connections:
//
//	a: prints its addresses, closes it, prints them again (still known);
//	b: closes it before asking (the addresses are then unknown: zero);
//	c: asks for the peer from several goroutines at once while a Read is
//	   blocked, then echoes one line (the connection still works).
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

func main() {
	var lns []net.Listener
	for _, a := range os.Args[1:] {
		var ln net.Listener
		var err error
		if n, ok := strings.CutPrefix(a, "fd:"); ok {
			fd, _ := strconv.Atoi(n)
			ln, err = socket.FileListener(os.NewFile(uintptr(fd), "preopen"))
		} else {
			ln, err = socket.Listen("tcp", a)
		}
		check(err)
		lns = append(lns, ln)
	}
	for i, ln := range lns {
		fmt.Printf("listening[%d] %s\n", i, ln.Addr())
	}
	for i, ln := range lns {
		a, err := ln.Accept()
		check(err)
		fmt.Printf("[%d] a open %s %s\n", i, a.LocalAddr(), a.RemoteAddr())
		check(a.Close())
		fmt.Printf("[%d] a closed %s %s\n", i, a.LocalAddr(), a.RemoteAddr())

		b, err := ln.Accept()
		check(err)
		check(b.Close())
		fmt.Printf("[%d] b closed %s %s\n", i, b.RemoteAddr(), b.LocalAddr())

		c, err := ln.Accept()
		check(err)
		r := bufio.NewReader(c)
		line := make(chan string)
		go func() {
			s, _ := r.ReadString('\n')
			line <- s
		}()
		var wg sync.WaitGroup
		peers := make([]string, 8)
		for j := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				peers[j] = c.RemoteAddr().String()
			}()
		}
		wg.Wait()
		same := true
		for _, p := range peers {
			same = same && p == peers[0]
		}
		fmt.Printf("[%d] c peer %s same %v local %s\n", i, peers[0], same, c.LocalAddr())
		_, err = c.Write([]byte(<-line))
		check(err)
		check(c.Close())
	}
	fmt.Println("done")
}

func check(err error) {
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}
