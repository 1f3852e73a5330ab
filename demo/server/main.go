// Command server is the demo's loopback HTTP server: it serves the same
// handler on 127.0.0.1 and 127.0.0.2 at one port, prints the port, and logs
// every connection and request it sees on stderr, so the demo shows that a
// denied connection never arrives.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
)

func main() {
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	port := l1.Addr().(*net.TCPAddr).Port
	l2, err := net.Listen("tcp", "127.0.0.2:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(os.Stderr, "server: %s %s from %s (Host: %s)\n", r.Method, r.URL.Path, r.RemoteAddr, r.Host)
		fmt.Fprintf(w, "hello from %s", r.Host)
	})
	// The log is read after the guest has finished; a print at accept
	// time shows connections that never made a request too.
	logConn := func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			fmt.Fprintf(os.Stderr, "server: %s accepted a connection from %s\n", c.LocalAddr(), c.RemoteAddr())
		}
	}
	fmt.Println(port)
	var wg sync.WaitGroup
	for _, l := range []net.Listener{l1, l2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := &http.Server{Handler: h, ConnState: logConn}
			fmt.Fprintln(os.Stderr, "server:", srv.Serve(l))
		}()
	}
	wg.Wait()
}
