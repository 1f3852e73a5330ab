package socket_test

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

// An HTTP client whose connections are real sockets of the host. Build
// with GOOS=wasip1 GOARCH=wasm and run under `wasmgate run --policy ...`.
func Example() {
	client := &http.Client{Transport: &http.Transport{
		DialContext: new(socket.Dialer).DialContext,
	}}
	resp, err := client.Get("http://api.example.test/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // a policy denial reads "... permission denied"
		return
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
}

// A server on a socket the host opened before the program started
// (`wasmgate run --policy policy.toml --listen 127.0.0.1:8080 app.wasm`):
// the listener is the first fd after the preopened directories (here fd 4:
// stdio, then the virtual /etc that a guest with a network gets).
func ExampleFileListener() {
	ln, err := socket.FileListener(os.NewFile(4, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.RemoteAddr)
	}))
}

// A server that listens itself; the policy decides tcp.bind and
// tcp.listen, and then tcp.accept for each client.
func ExampleListen() {
	ln, err := socket.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer ln.Close()
	fmt.Println("listening on", ln.Addr())
}
