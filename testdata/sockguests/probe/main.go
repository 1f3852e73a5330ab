//go:build wasip1

// Command probe is the small Go test guest of the socket tests
// (host/sock_*_test.go): TCP, UDP and DNS through sdk/socket, without
// net/http (webprobe has that), because guest size dominates start-up time
// under -race. Arguments are commands separated by "--"; each one's output
// lines are prefixed with "[i] " (i from 0), a failing command prints
// "[i] error: ..." and the exit code is 1 if any command failed.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/sdk/socket"
)

func main() {
	var cmds [][]string
	cur := []string{}
	for _, a := range os.Args[1:] {
		if a == "--" {
			cmds = append(cmds, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, a)
	}
	cmds = append(cmds, cur)
	failed := false
	for i, c := range cmds {
		prefix = fmt.Sprintf("[%d] ", i)
		if err := run(c); err != nil {
			say("error: %v", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

var prefix string

func say(format string, args ...any) { fmt.Printf(prefix+format+"\n", args...) }

func run(c []string) error {
	if len(c) == 0 {
		return fmt.Errorf("empty command")
	}
	args := c[1:]
	switch c[0] {
	case "udpecho":
		return udpEcho(args[0])
	case "udpconn":
		return udpConn(args[0])
	case "udpserve":
		return udpServe(args[0], atoi(args[1]))
	case "lookup":
		addrs, err := new(socket.Resolver).LookupHost(context.Background(), args[0])
		if err != nil {
			return err
		}
		say("addrs %s", strings.Join(addrs, " "))
	case "golookup":
		addrs, err := socket.GoResolver().LookupHost(context.Background(), args[0])
		if err != nil {
			return err
		}
		say("addrs %s", strings.Join(addrs, " "))
	case "dial":
		c, err := socket.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		say("connected %s %s", c.LocalAddr(), c.RemoteAddr())
		c.Close()
	case "dialmany":
		return dialMany(args[0], atoi(args[1]))
	case "halfclose":
		return halfClose(args[0])
	case "connectloop":
		// connectloop ADDR N: N sequential connections, each a connect, a
		// 1-byte echo and a close; prints the mean and the median
		// nanoseconds per connection (host/sock_policy_bench_test.go).
		return connectLoop(args[0], atoi(args[1]))
	case "echoserve":
		// echoserve ADDR N [BUFSIZE]: N connections (-1: forever), each
		// echoed with io.Copy, or with an explicit BUFSIZE-byte loop.
		bufSize := 0
		if len(args) > 2 {
			bufSize = atoi(args[2])
		}
		return echoServe(args[0], atoi(args[1]), bufSize)
	case "echoonce":
		return echoOnce(args[0])
	case "sendpattern":
		return sendPattern(args[0], int64(atoi(args[1])))
	case "echoloop":
		// echoloop ADDR MAXFAIL: see echoLoop.
		return echoLoop(args[0], atoi(args[1]))
	case "servefile":
		return serveFile(args[0])
	case "writefile":
		// writefile PATH TEXT
		return os.WriteFile(args[0], []byte(args[1]), 0o644)
	default:
		return fmt.Errorf("unknown command %s", c[0])
	}
	return nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func udpEcho(server string) error {
	pc, err := socket.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer pc.Close()
	ua, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return err
	}
	if _, err := pc.WriteTo([]byte("ping"), ua); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		return err
	}
	say("got %q from %s local %s", buf[:n], from, pc.LocalAddr())
	return nil
}

func udpConn(server string) error {
	c, err := socket.Dial("udp", server)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	say("got %q remote %s", buf[:n], c.RemoteAddr())
	return nil
}

// udpServe echoes n datagrams (or stops after a 10 s silence), printing
// each sender.
func udpServe(addr string, n int) error {
	pc, err := socket.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	say("listening %s", pc.LocalAddr())
	buf := make([]byte, 1500)
	for i := 0; i < n; i++ {
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		say("from %s %q", from, buf[:m])
		if _, err := pc.WriteTo(buf[:m], from); err != nil {
			return err
		}
	}
	return nil
}

// echoServe listens on addr and echoes n connections until EOF each,
// concurrently (the benchmark's guest side).
func echoServe(addr string, n, bufSize int) error {
	ln, err := socket.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	say("listening %s", ln.Addr())
	var wg sync.WaitGroup
	emfile := 0
	for i := 0; n < 0 || i < n; i++ {
		c, err := ln.Accept()
		if errors.Is(err, syscall.EMFILE) {
			// At the fd or socket limit: back off and retry, as
			// net/http does; the first one is reported.
			if emfile++; emfile == 1 {
				say("accept: %v", err)
			}
			i--
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if bufSize <= 0 {
				io.Copy(c, c)
				return
			}
			buf := make([]byte, bufSize)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// dialMany opens n connections at once, sends a line on each and checks
// the echo.
func dialMany(addr string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make(chan net.Conn, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := socket.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			conns <- c
			msg := fmt.Sprintf("conn %d\n", i)
			if _, err := io.WriteString(c, msg); err != nil {
				errs <- err
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != msg {
				errs <- fmt.Errorf("conn %d: %q %v", i, line, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	close(conns)
	for c := range conns {
		c.Close()
	}
	for err := range errs {
		return err
	}
	say("ok %d", n)
	return nil
}

func connectLoop(addr string, n int) error {
	b := []byte{'x'}
	each := make([]time.Duration, 0, max(n, 0))
	start := time.Now()
	last := start
	for i := 0; i < n; i++ {
		c, err := socket.Dial("tcp", addr)
		if err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		c.Close()
		now := time.Now()
		each = append(each, now.Sub(last))
		last = now
	}
	// The mean, then the median connection: the median leaves out the
	// connections during which the guest's thread was descheduled.
	slices.Sort(each)
	median := time.Duration(0)
	if len(each) > 0 {
		median = each[len(each)/2]
	}
	say("ns/conn %d median %d", time.Since(start).Nanoseconds()/int64(max(n, 1)), median.Nanoseconds())
	return nil
}

func halfClose(addr string) error {
	c, err := socket.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "request"); err != nil {
		return err
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	say("reply %q", b)
	return nil
}

// echoOnce accepts one connection and echoes it with io.Copy(c, c) (the
// connection's WriteTo), then reports what io.Copy returned.
func echoOnce(addr string) error {
	ln, err := socket.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	say("listening %s", ln.Addr())
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := io.Copy(c, c)
	say("copied %d %v", n, err)
	return nil
}

var keep []*os.File

// serveFile takes one connection on the first preopened listener (fds
// from 3, as `wasmgate run --listen` hands them over), reads a line, writes
// it to DIR/got.txt and answers with the contents of DIR/in.txt.
func serveFile(dir string) error {
	var ln net.Listener
	for fd := uintptr(3); fd < 16 && ln == nil; fd++ {
		f := os.NewFile(fd, "preopen")
		keep = append(keep, f) // its finalizer would close the preopen
		if l, err := net.FileListener(f); err == nil {
			ln = l
		}
	}
	if ln == nil {
		return fmt.Errorf("no preopened listener")
	}
	defer ln.Close()
	say("listening %s", ln.Addr())
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if err := os.WriteFile(dir+"/got.txt", []byte(line), 0o644); err != nil {
		return err
	}
	in, err := os.ReadFile(dir + "/in.txt")
	if err != nil {
		return err
	}
	_, err = c.Write(in)
	return err
}

// pattern is an endless reader of byte(i % 251) at offset i: a prime
// period, so a lost, repeated or reordered chunk shows.
type pattern struct{ off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// sendPattern dials addr and sends n pattern bytes with io.Copy from a
// reader without WriteTo (so the connection's ReadFrom copies), then
// half-closes and reports what io.Copy returned.
func sendPattern(addr string, n int64) error {
	c, err := socket.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	sent, err := io.Copy(c, io.LimitReader(&pattern{}, n))
	say("sent %d %v", sent, err)
	return c.(interface{ CloseWrite() error }).CloseWrite()
}

// echoLoop keeps a connection to addr and sends "ping N\n" on it every
// 20 ms, printing "echo N" for each line that comes back as sent. A failed
// read or write prints "conn error: ..." and drops the connection; the next
// round dials again, printing "dial ok" or "dial error: ...". It returns
// when the server answers "stop" (nil), or after maxFail failed dials in
// a row.
func echoLoop(addr string, maxFail int) error {
	var (
		c     net.Conn
		r     *bufio.Reader
		fails int
	)
	for i := 0; ; i++ {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if c == nil {
			var err error
			c, err = socket.Dial("tcp", addr)
			if err != nil {
				say("dial error: %v", err)
				if fails++; fails >= maxFail {
					return fmt.Errorf("%d dials failed", fails)
				}
				continue
			}
			fails = 0
			say("dial ok")
			r = bufio.NewReader(c)
		}
		msg := fmt.Sprintf("ping %d\n", i)
		_, err := io.WriteString(c, msg)
		line := ""
		if err == nil {
			line, err = r.ReadString('\n')
		}
		switch {
		case line == "stop\n":
			c.Close()
			say("stopped")
			return nil
		case err == nil && line == msg:
			say("echo %d", i)
			continue
		case err == nil:
			err = fmt.Errorf("got %q for %q", line, msg)
		}
		say("conn error: %v", err)
		c.Close()
		c = nil
	}
}
