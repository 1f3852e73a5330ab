// Command scalebench measures wasmgate with server-sized guests, in
// separate processes so that each number is one `wasmgate run`'s own
// (BENCHMARKS.md, "Server scale"). It builds wasmgate and the guests it
// needs into a temporary directory, and uses loopback only.
//
//	go run ./internal/scalebench rss 150 300
//
// rss MIB...: for each size, runs testdata/guests/holdmem (a Go guest that
// allocates and touches MIB of live heap, then holds it) under `wasmgate
// run` and prints the process's RSS and peak RSS next to the guest's
// memory, and whether RSS ≤ 1.25 × guest memory + 64 MiB holds.
//
//	go run ./internal/scalebench conns 200 1000 10000
//
// conns N...: for each level, opens N concurrent connections to an echo
// server, sends 100 bytes on each and reads the echo, holding all of them
// open, then closes them. The server is testdata/sockguests/probe's
// echoserve under `wasmgate run --policy` (a 4 KiB read/write loop per
// connection: io.Copy would splice, which holds a pipe of 2 more host fds
// per connection), and the same loop built natively. Printed per level and
// server: the time to open and echo all, the server's CPU for it, its RSS
// and open fds with all connections held.
//
//	go run ./internal/scalebench seq 2000
//
// seq N: N sequential connections to each server (connect, 100 bytes
// echoed, close); time and server CPU per connection, and the guest's
// speed as a fraction of native.
//
//	go run ./internal/scalebench bulk 1024
//
// bulk MIB: MIB echoed through one connection to each server.
//
//	go run ./internal/scalebench all
//
// all: the issue-11 set with one pair of servers: conns 200 1000 10000,
// bulk 1024 and seq 2000. Every level prints time, server CPU and server
// RSS for both servers, then one line of guest/native ratios.
//
//	go run ./internal/scalebench soak 10m [IDLE]
//
// soak DURATION: the guest server alone for DURATION (30s to 1h) with IDLE
// (default 1000) connections held open and 4 workers churning connections;
// RSS, fds and the host's goroutines every 10 s, and a failure if they
// do not stay flat after the warm-up.
//
//	go run ./internal/scalebench decisioncost 16 [OTHER_WASMGATE]
//
// decisioncost ROUNDS: what one uncached policy decision adds to a
// connection through `wasmgate run` (issue 15's real run): the probe
// guest's 2000 sequential connections to the native echo server under
// allow-all, the built-in allowlist on the kernel and natively, a chain of
// three built-ins and a raw Go plugin, in paired rounds (see decision.go).
// OTHER_WASMGATE, a wasmgate binary built from another commit, adds its
// allow-all and allowlist runs to every round, for a before/after.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmgate/wasmgate/internal/procstat"
)

func main() {
	if len(os.Args) < 3 && (len(os.Args) < 2 || (os.Args[1] != "native-echo" && os.Args[1] != "all")) {
		fmt.Fprintln(os.Stderr, "usage: scalebench rss MIB... | conns N... | seq N | bulk MIB | all | soak DURATION [IDLE] | decisioncost ROUNDS [OTHER_WASMGATE]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "rss":
		err = rss(os.Args[2:])
	case "conns":
		err = conns(os.Args[2:])
	case "seq":
		err = seq(os.Args[2])
	case "bulk":
		err = bulk(os.Args[2])
	case "all":
		err = all()
	case "soak":
		err = soak(os.Args[2:])
	case "decisioncost":
		err = decisionCost(os.Args[2:])
	case "native-echo":
		if len(os.Args) > 2 {
			err = pinTo(os.Args[2])
		}
		if err == nil {
			err = nativeEcho()
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

// build builds the wasmgate command and the named guests (testdata/guests
// or testdata/sockguests) into dir.
func build(dir string, guests ...string) error {
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "wasmgate"), "./cmd/wasmgate")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build wasmgate: %v\n%s", err, b)
	}
	for _, g := range guests {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(g)+".wasm"), "./testdata/"+g)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", g, err, b)
		}
	}
	return nil
}

func rss(sizes []string) error {
	dir, err := os.MkdirTemp("", "scalebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := build(dir, "guests/holdmem"); err != nil {
		return err
	}
	fmt.Printf("%-10s %-14s %-10s %-10s %-14s %s\n", "live heap", "guest memory", "host RSS", "peak RSS", "1.25×mem+64", "rule")
	// A first run fills the compilation cache, as a user's first run
	// does; the measured runs load from it.
	if err := rssOne(dir, "1", false); err != nil {
		return err
	}
	for _, s := range sizes {
		if err := rssOne(dir, s, true); err != nil {
			return err
		}
	}
	return nil
}

// rssOne runs holdmem MIB hold and measures wasmgate while the guest holds
// the memory, and prints a row if print.
func rssOne(dir, mib string, print bool) error {
	cmd := exec.Command(filepath.Join(dir, "wasmgate"), "run", filepath.Join(dir, "holdmem.wasm"), mib, "hold")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("holdmem %s: %v", mib, err)
	}
	// "held N MiB, sys S MiB": the guest's linear memory is at least S
	// (the Go runtime's memory, taken from linear memory) plus its static
	// data; S is used, which makes the rule stricter.
	var n, sys int
	if _, err := fmt.Sscanf(line, "held %d MiB, sys %d MiB", &n, &sys); err != nil {
		return fmt.Errorf("holdmem said %q", line)
	}
	rss, hwm, err := procstat.Memory(cmd.Process.Pid)
	if err != nil {
		return err
	}
	limit := 1.25*float64(sys) + 64
	ok := "holds"
	if float64(rss)/1024 > limit {
		ok = "FAILS"
	}
	if !print {
		return nil
	}
	fmt.Printf("%-10s %-14s %-10s %-10s %-14s %s\n", mib+" MiB", fmt.Sprintf("%d MiB", sys), fmt.Sprintf("%d MiB", rss/1024), fmt.Sprintf("%d MiB", hwm/1024), fmt.Sprintf("%.0f MiB", limit), ok)
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(devNull{}) }()
	return nil
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// nativeEcho is the native server of conns: the echoserve loop of
// testdata/sockguests/probe with a 4 KiB buffer, one goroutine per
// connection, on a loopback port it prints.
func nativeEcho() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("[0] listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
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
}

// server is a running echo server process.
type server struct {
	name string
	cmd  *exec.Cmd
	addr string
}

// startServer starts cmd and waits for its "[0] listening ADDR" line.
func startServer(name string, cmd *exec.Cmd) (*server, error) {
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := bufio.NewReader(out)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s: no listening line: %v", name, err)
		}
		if a, ok := strings.CutPrefix(strings.TrimSpace(l), "[0] listening "); ok {
			go io.Copy(io.Discard, r)
			return &server{name: name, cmd: cmd, addr: a}, nil
		}
	}
}

func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// cpu is the server process's user+system CPU time so far.
func (s *server) cpu() time.Duration { return procstat.CPU(s.cmd.Process.Pid) }

func (s *server) fds() int {
	des, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	return len(des)
}

// level opens n connections at once to s, echoes 100 bytes on each and
// reports; all are closed before it returns.
func level(s *server, n int) (elapsed, cpu time.Duration, rssKB, fds int, err error) {
	msg := bytes.Repeat([]byte("x"), 100)
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	cpu0 := s.cpu()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 30 * time.Second}
			c, err := d.Dial("tcp", s.addr)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(buf, msg) {
				errs <- errors.New("wrong echo")
			}
		}()
	}
	wg.Wait()
	elapsed = time.Since(start)
	cpu = s.cpu() - cpu0
	close(errs)
	nerr := 0
	for e := range errs {
		if nerr == 0 {
			err = e
		}
		nerr++
	}
	if err != nil {
		err = fmt.Errorf("%d of %d connections failed, first: %w", nerr, n, err)
	}
	rssKB, _, _ = procstat.Memory(s.cmd.Process.Pid)
	fds = s.fds()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	// Let the server see the closes before the next level.
	time.Sleep(time.Second)
	return elapsed, cpu, rssKB, fds, err
}

// echoServers builds and starts the two echo servers of conns, seq, bulk
// and soak: the guest under `wasmgate run --policy` (default allow; with
// extra run flags) and the native one. stop stops both and removes the
// build directory.
func echoServers(runFlags ...string) (guest, native *server, stop func(), err error) {
	dir, err := os.MkdirTemp("", "scalebench")
	if err != nil {
		return nil, nil, nil, err
	}
	stop = func() {
		if guest != nil {
			guest.stop()
		}
		if native != nil {
			native.stop()
		}
		os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if err := build(dir, "sockguests/probe"); err != nil {
		return nil, nil, nil, err
	}
	policy := filepath.Join(dir, "policy.toml")
	// Loopback only: the client dials 127.0.0.1, the guest only listens.
	if err := os.WriteFile(policy, []byte("default = \"allow\"\n"), 0o644); err != nil {
		return nil, nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	args := append([]string{"run", "--policy", policy}, runFlags...)
	args = append(args, filepath.Join(dir, "probe.wasm"), "echoserve", "127.0.0.1:0", "-1", "4096")
	if guest, err = startServer("guest", exec.Command(filepath.Join(dir, "wasmgate"), args...)); err != nil {
		return nil, nil, nil, err
	}
	if native, err = startServer("native", exec.Command(self, "native-echo")); err != nil {
		return nil, nil, nil, err
	}
	return guest, native, stop, nil
}

func conns(levels []string) error {
	guest, native, stop, err := echoServers()
	if err != nil {
		return err
	}
	defer stop()
	return connsOn(guest, native, levels)
}

func connsOn(guest, native *server, levels []string) error {
	fmt.Printf("%-7s %-7s %-10s %-10s %-9s %-7s\n", "conns", "server", "time", "CPU", "RSS", "fds")
	for _, l := range levels {
		n, err := strconv.Atoi(l)
		if err != nil {
			return err
		}
		var r [2]result
		for i, s := range []*server{guest, native} {
			el, cpu, rss, fds, err := level(s, n)
			if err != nil {
				return fmt.Errorf("%s, %d connections: %v", s.name, n, err)
			}
			r[i] = result{el, cpu, rss}
			fmt.Printf("%-7d %-7s %-10s %-10s %-9s %-7d\n", n, s.name, el.Round(time.Millisecond), cpu, fmt.Sprintf("%d MiB", rss/1024), fds)
		}
		fmt.Printf("%-7d %s\n", n, ratios(r))
	}
	return nil
}

// result is one server's figures for one level.
type result struct {
	time, cpu time.Duration
	rssKB     int
}

// ratios formats the guest's figures as multiples of native's.
func ratios(r [2]result) string {
	div := func(a, b float64) float64 { return a / max(b, 1) }
	return fmt.Sprintf("guest/native: time %.2f×, CPU %.2f×, RSS %.2f×",
		div(float64(r[0].time), float64(r[1].time)), div(float64(r[0].cpu), float64(r[1].cpu)),
		div(float64(r[0].rssKB), float64(r[1].rssKB)))
}

// all runs the issue-11 levels against one pair of servers.
func all() error {
	guest, native, stop, err := echoServers()
	if err != nil {
		return err
	}
	defer stop()
	if err := connsOn(guest, native, []string{"200", "1000", "10000"}); err != nil {
		return err
	}
	fmt.Println()
	if err := bulkOn(guest, native, 1024); err != nil {
		return err
	}
	fmt.Println()
	return seqOn(guest, native, 2000)
}
