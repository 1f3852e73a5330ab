//go:build wasip1

// Command guest is the demo guest: it fetches each URL given as an argument
// through real sockets (sdk/socket) and prints what happened.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

func main() {
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: new(socket.Dialer).DialContext},
	}
	failed := 0
	for _, url := range os.Args[1:] {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Printf("guest: GET %s: %v\n", url, err)
			failed++
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("guest: GET %s: %s %q\n", url, resp.Status, body)
	}
	os.Exit(failed)
}
