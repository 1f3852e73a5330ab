// Command httpserve is a net/http server for benchmarks (internal/httpbench):
// 1 KiB at "/", 1 MiB at "/big". The same source builds for wasip1, where
// it listens through sdk/socket.Listen, and natively, where it uses
// net.Listen, so that the two differ only in where they run. It prints
// "listening ADDR" once it accepts connections. Under wasmgate, "fd:N"
// serves on the preopened listening socket N (`wasmgate run --listen`).
//
//	httpserve 127.0.0.1:0
//	httpserve fd:4
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	var ln net.Listener
	var err error
	if fd, ok := strings.CutPrefix(addr, "fd:"); ok && runtime.GOOS == "wasip1" {
		var n int
		if n, err = strconv.Atoi(fd); err == nil {
			ln, err = socket.FileListener(os.NewFile(uintptr(n), "listener"))
		}
	} else if runtime.GOOS == "wasip1" {
		ln, err = socket.Listen("tcp", addr)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	small := bytes.Repeat([]byte("x"), 1<<10)
	big := bytes.Repeat([]byte("y"), 1<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(small)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(big)
	})
	fmt.Printf("listening %s\n", ln.Addr())
	err = http.Serve(ln, mux)
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
