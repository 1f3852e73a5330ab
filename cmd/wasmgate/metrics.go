package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wasmgate/wasmgate/metrics"
)

// serveMetrics serves m at http://addr/metrics until the returned function
// is called. A host-less addr (":9090") listens on 127.0.0.1: metrics name
// the guest's destinations, so they are not for the whole network unless
// asked for. The address actually bound (port 0 picks one) is printed on
// stderr.
func serveMetrics(addr string, m *metrics.Metrics, stderr io.Writer) (stop func(), err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	fmt.Fprintf(stderr, "wasmgate: metrics at http://%s/metrics\n", l.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
