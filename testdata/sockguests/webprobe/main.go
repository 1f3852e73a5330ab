//go:build wasip1

// Command webprobe is the net/http test guest of the socket tests
// (host/sock_*_test.go):
//
//	webprobe get URL...          GET each URL with an http.Client dialing through sdk/socket
//	webprobe serve N LISTENER... answer N requests in total on the listeners, exit;
//	                             a LISTENER is fd:N (a preopened socket) or an address to listen on
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: webprobe get|serve|serve-fd ARGS...")
	}
	switch os.Args[1] {
	case "get":
		failed := false
		for i, u := range os.Args[2:] {
			if err := get(i, u); err != nil {
				fmt.Printf("[%d] error: %v\n", i, err)
				failed = true
			}
		}
		if failed {
			os.Exit(1)
		}
	case "serve":
		var lns []net.Listener
		for _, spec := range os.Args[3:] {
			var ln net.Listener
			var err error
			if fd, ok := strings.CutPrefix(spec, "fd:"); ok {
				ln, err = socket.FileListener(os.NewFile(uintptr(atoi(fd)), "listener"))
			} else {
				ln, err = socket.Listen("tcp", spec)
			}
			check(err)
			lns = append(lns, ln)
		}
		serve(lns, atoi(os.Args[2]))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	check(err)
	return n
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Println("error:", msg)
	os.Exit(1)
}

func get(i int, url string) error {
	client := &http.Client{
		Transport: &http.Transport{DialContext: (&socket.Dialer{}).DialContext},
		Timeout:   20 * time.Second,
	}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	fmt.Printf("[%d] status %d body %q\n", i, resp.StatusCode, body)
	return nil
}

// serve answers n HTTP requests in total, printing each listener's address
// first ("listening[i] ADDR") so the test knows where to connect.
func serve(lns []net.Listener, n int) {
	for i, ln := range lns {
		fmt.Printf("listening[%d] %s\n", i, ln.Addr())
	}
	var mu sync.Mutex
	done := make(chan struct{})
	count := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s", r.URL.Path, r.RemoteAddr)
		mu.Lock()
		count++
		if count == n {
			close(done)
		}
		mu.Unlock()
	})}
	for _, ln := range lns {
		go srv.Serve(ln)
	}
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	fmt.Println("served", n)
}
