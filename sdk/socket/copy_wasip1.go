//go:build wasip1

package socket

import (
	"errors"
	"io"
	"sync"
)

// Copying to and from connections (io.Copy, net/http bodies, proxies).
//
// On Linux, io.Copy between two *net.TCPConn splices in the kernel. On
// wasmgate, a copy between two connections of this package asks the host
// to do the same (splice_wasip1.go). Otherwise wasip1 has no splice:
// net.TCPConn's ReadFrom and WriteTo fall back
// to io.Copy, which allocates a fresh 32 KiB buffer for every call, i.e.
// for every proxied or echoed connection, and then moves the data 32 KiB
// per host call. Both cost more in a wasm guest than natively: the garbage
// drives the collector in a connection-heavy server, and every host call
// is a round trip through the guest's runtime, the host and the kernel
// (measured: a bulk echo uses ~half the CPU per byte with 256 KiB reads as
// with 32 KiB ones; BenchmarkSockEchoThroughput in host/).
//
// tcpConn's ReadFrom and WriteTo therefore copy through pooled buffers:
// copySmall bytes to start with, which is what io.Copy would hold, and
// copyLarge bytes once reads fill the small buffer, i.e. while the stream
// keeps up with the copy. A read that returns no more than a small buffer's
// worth gives the large buffer back, so an idle or slow connection never
// pins one.
const (
	copySmall = 32 << 10
	copyLarge = 256 << 10
)

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, copySmall); return &b }}
	largeBufs = sync.Pool{New: func() any { b := make([]byte, copyLarge); return &b }}
)

// errInvalidWrite is io.Copy's error for a Write that reports an
// impossible count.
var errInvalidWrite = errors.New("invalid write result")

// ReadFrom copies from r to the connection until r reports io.EOF (which
// is not an error) or an error occurs, as io.Copy does. When r is another
// connection of this package (or an *io.LimitedReader of one, whose N is
// honoured and updated, as net.TCPConn does), the host splices the bytes
// from socket to socket (splice_wasip1.go); otherwise, or on a host
// without that extension, it copies through pooled buffers.
func (c *tcpConn) ReadFrom(r io.Reader) (int64, error) {
	src, limit := r, int64(-1)
	lr, isLimited := r.(*io.LimitedReader)
	if isLimited {
		src, limit = lr.R, lr.N
		if limit <= 0 {
			return 0, nil
		}
	}
	if sc, ok := src.(*tcpConn); ok {
		n, handled, err := spliceCopy(c, sc, limit, "readfrom")
		if isLimited {
			lr.N -= n
		}
		if handled {
			return n, err
		}
	}
	return pooledCopy(c.TCPConn, r)
}

// WriteTo copies from the connection to w until the peer closes its side
// (io.EOF, not an error) or an error occurs, as io.Copy does. When w is
// another connection of this package the host splices (see ReadFrom);
// otherwise it copies through pooled buffers.
func (c *tcpConn) WriteTo(w io.Writer) (int64, error) {
	if dc, ok := w.(*tcpConn); ok {
		if n, handled, err := spliceCopy(dc, c, -1, "writeto"); handled {
			return n, err
		}
	}
	return pooledCopy(w, c) // c's Read takes turns with other goroutines
}

// pooledCopy is io.Copy's loop with pooled, adaptively sized buffers (see
// above). It must not call io.Copy, which could come back to ReadFrom or
// WriteTo.
func pooledCopy(dst io.Writer, src io.Reader) (written int64, err error) {
	small := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(small)
	var large *[]byte
	defer func() {
		if large != nil {
			largeBufs.Put(large)
		}
	}()
	buf := *small
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			if nw < 0 || nw > nr {
				nw = 0
				if werr == nil {
					werr = errInvalidWrite
				}
			}
			written += int64(nw)
			if werr != nil {
				return written, werr
			}
			if nw != nr {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
		switch {
		case large == nil && nr == len(buf):
			large = largeBufs.Get().(*[]byte)
			buf = *large
		case large != nil && nr <= copySmall:
			largeBufs.Put(large)
			large = nil
			buf = *small
		}
	}
}
