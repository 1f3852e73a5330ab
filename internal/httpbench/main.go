// Command httpbench loads a net/http server guest and the same source
// built natively with wrk on loopback (BENCHMARKS.md, "HTTP server
// guests"). The server is testdata/guests/httpserve (1 KiB at "/", 1 MiB
// at "/big"): built for wasip1 and run by `wasmgate run --policy` with an
// allow-all policy, and built natively, run once with the default
// GOMAXPROCS and once with GOMAXPROCS=1 (a wasip1 program has one thread).
// The server "guest-listen" (not run by default) is the guest serving on a
// `--listen` socket instead of its own sdk/socket.Listen.
//
//	go run ./internal/httpbench [-d 10s] [-runs 2] [-servers guest,native,native1] [WORKLOAD...]
//
// Workloads (all by default): ka50 (keep-alive, 50 connections), ka1000
// (keep-alive, 1000 connections), close50 (a new connection per request,
// 50 at a time), big50 (keep-alive, 50 connections, 1 MiB bodies). Each
// runs `wrk -t2 -cN -dD --timeout 60s --latency` (the timeout is long so
// that slow responses are counted, not dropped) against a fresh server.
// Printed per run: req/s, p50, p99 and the slowest response, wrk's socket
// errors, the server's CPU per request (user+system from /proc), its peak
// RSS, and the listen queue drops and overflows of the whole system
// (TcpExtListenDrops and TcpExtListenOverflows from /proc/net/netstat,
// before and after; other processes' drops count too). wrk is installed
// with apt-get when missing. Loopback only.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wasmgate/wasmgate/internal/procstat"
)

type workload struct {
	name  string
	conns int
	path  string
	args  []string
}

var workloads = []workload{
	{"ka50", 50, "/", nil},
	{"ka1000", 1000, "/", nil},
	{"close50", 50, "/", []string{"-H", "Connection: close"}},
	{"big50", 50, "/big", nil},
}

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of one wrk run")
	runs := flag.Int("runs", 2, "runs of each workload on each server")
	servers := flag.String("servers", "guest,native,native1", "servers to load: guest, guest-listen, native, native1 (GOMAXPROCS=1)")
	flag.Parse()
	if err := run(*dur, *runs, strings.Split(*servers, ","), flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, runs int, servers, names []string) error {
	var ws []workload
	for _, w := range workloads {
		if len(names) == 0 || contains(names, w.name) {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return fmt.Errorf("no workload among %q", names)
	}
	if err := ensureWrk(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "httpbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		return err
	}
	policy := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(policy, []byte("default = \"allow\"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("load average before: %s", loadavg())
	fmt.Printf("%-8s %-12s %3s %9s %9s %9s %9s %7s %10s %9s %s\n",
		"workload", "server", "run", "req/s", "p50", "p99", "max", "errors", "CPU/req", "peak RSS", "listen drops/overflows")
	for _, w := range ws {
		for r := 1; r <= runs; r++ {
			for _, s := range servers {
				var cmd *exec.Cmd
				switch s {
				case "guest":
					cmd = exec.Command(filepath.Join(dir, "wasmgate"), "run", "--policy", policy,
						filepath.Join(dir, "httpserve.wasm"), "127.0.0.1:0")
				case "guest-listen":
					addr, err := freePort()
					if err != nil {
						return err
					}
					cmd = exec.Command(filepath.Join(dir, "wasmgate"), "run", "--policy", policy, "--listen", addr,
						filepath.Join(dir, "httpserve.wasm"), "fd:4")
				case "native":
					cmd = exec.Command(filepath.Join(dir, "httpserve"), "127.0.0.1:0")
				case "native1":
					cmd = exec.Command(filepath.Join(dir, "httpserve"), "127.0.0.1:0")
					cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
				default:
					return fmt.Errorf("unknown server %q", s)
				}
				if err := one(w, r, s, cmd, dur); err != nil {
					return err
				}
			}
		}
	}
	fmt.Printf("load average after: %s", loadavg())
	return nil
}

// freePort returns a loopback address with a port free right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// ensureWrk installs Debian's wrk when it is not on PATH.
func ensureWrk() error {
	if _, err := exec.LookPath("wrk"); err == nil {
		return nil
	}
	fmt.Println("installing wrk (apt-get install -y wrk)")
	var sudo []string
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "wrk"}} {
		cmd := exec.Command(append(sudo, args...)[0], append(sudo, args...)[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v", strings.Join(args, " "), err)
		}
	}
	return nil
}

// build builds wasmgate, the guest and the native server into dir.
func build(dir string) error {
	steps := []struct {
		out, pkg string
		env      []string
	}{
		{"wasmgate", "./cmd/wasmgate", nil},
		{"httpserve.wasm", "./testdata/guests/httpserve", []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}},
		{"httpserve", "./testdata/guests/httpserve", nil},
	}
	for _, s := range steps {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, s.out), s.pkg)
		cmd.Env = append(os.Environ(), s.env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", s.out, err, b)
		}
	}
	return nil
}

// one starts cmd (a server printing "listening ADDR"), runs wrk against it
// and prints one line.
func one(w workload, run int, name string, cmd *exec.Cmd, dur time.Duration) error {
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	br := bufio.NewReader(out)
	var addr string
	for addr == "" {
		l, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s: no listening line: %v", name, err)
		}
		addr, _ = strings.CutPrefix(strings.TrimSpace(l), "listening ")
	}
	go io.Copy(io.Discard, br)
	pid := cmd.Process.Pid
	drops0, ovf0 := listenDrops()
	cpu0 := procstat.CPU(pid)
	args := []string{"-t2", "-c" + strconv.Itoa(w.conns), "-d" + dur.String(), "--timeout", "60s", "--latency"}
	args = append(append(args, w.args...), "http://"+addr+w.path)
	wrk := exec.Command("wrk", args...)
	b, err := wrk.CombinedOutput()
	if err != nil {
		return fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	cpu := procstat.CPU(pid) - cpu0
	drops1, ovf1 := listenDrops()
	res, err := parseWrk(b)
	if err != nil {
		return fmt.Errorf("wrk output: %v\n%s", err, b)
	}
	cpuPerReq := time.Duration(0)
	if res.requests > 0 {
		cpuPerReq = cpu / time.Duration(res.requests)
	}
	fmt.Printf("%-8s %-12s %3d %9.0f %9s %9s %9s %7d %10s %9s %d/%d\n",
		w.name, name, run, res.rps, res.p50, res.p99, res.max, res.errors,
		cpuPerReq.Round(time.Microsecond/10), fmt.Sprintf("%d MiB", peakKiB(pid)/1024), drops1-drops0, ovf1-ovf0)
	return nil
}

type wrkResult struct {
	rps           float64
	requests      int64
	p50, p99, max time.Duration
	errors        int64
}

var (
	reqsRe    = regexp.MustCompile(`(\d+) requests in`)
	rpsRe     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	latencyRe = regexp.MustCompile(`Latency\s+(\S+)\s+(\S+)\s+(\S+)`)
	pctRe     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\S+)`)
	errorsRe  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(b []byte) (wrkResult, error) {
	var r wrkResult
	m := reqsRe.FindSubmatch(b)
	m2 := rpsRe.FindSubmatch(b)
	m3 := latencyRe.FindSubmatch(b)
	if m == nil || m2 == nil || m3 == nil {
		return r, errors.New("no requests, Requests/sec or Latency line")
	}
	r.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
	r.rps, _ = strconv.ParseFloat(string(m2[1]), 64)
	var err error
	if r.max, err = wrkDuration(string(m3[3])); err != nil {
		return r, err
	}
	for _, p := range pctRe.FindAllSubmatch(b, -1) {
		d, err := wrkDuration(string(p[2]))
		if err != nil {
			return r, err
		}
		if string(p[1]) == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if e := errorsRe.FindSubmatch(b); e != nil {
		for _, s := range e[1:] {
			n, _ := strconv.ParseInt(string(s), 10, 64)
			r.errors += n
		}
	}
	return r, nil
}

// wrkDuration parses wrk's "12.34ms", "1.20s", "850.00us", "2.00m".
func wrkDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "m") && !strings.HasSuffix(s, "ms") {
		s += "in"
	}
	s = strings.Replace(s, "min", "m", 1)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return d.Round(10 * time.Microsecond), nil
}

// listenDrops returns the system's TcpExt ListenDrops and ListenOverflows.
func listenDrops() (drops, overflows int64) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, 0
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := 1; j < len(names) && j < len(vals); j++ {
			v, _ := strconv.ParseInt(vals[j], 10, 64)
			switch names[j] {
			case "ListenDrops":
				drops = v
			case "ListenOverflows":
				overflows = v
			}
		}
		break
	}
	return drops, overflows
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

// peakKiB is the process's peak resident memory in KiB.
func peakKiB(pid int) int {
	_, peak, _ := procstat.Memory(pid)
	return peak
}
