package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmgate/wasmgate/internal/procstat"
)

// seq: n sequential connections to each server, each connect, 100 bytes
// echoed, close; prints the time and server CPU per connection and the
// guest's speed as a fraction of native (issue goal: at least 0.6).
func seq(arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil || n <= 0 {
		return fmt.Errorf("seq: want a positive count, got %q", arg)
	}
	guest, native, stop, err := echoServers()
	if err != nil {
		return err
	}
	defer stop()
	return seqOn(guest, native, n)
}

func seqOn(guest, native *server, n int) error {
	msg := bytes.Repeat([]byte("x"), 100)
	buf := make([]byte, len(msg))
	one := func(s *server) error {
		c, err := net.DialTimeout("tcp", s.addr, 30*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if !bytes.Equal(buf, msg) {
			return errors.New("wrong echo")
		}
		return nil
	}
	// Warm both (the guest's first connections page in its code).
	for _, s := range []*server{guest, native} {
		for range 50 {
			if err := one(s); err != nil {
				return fmt.Errorf("%s warm-up: %w", s.name, err)
			}
		}
	}
	fmt.Printf("%-7s %-7s %-10s %-12s %-12s %-9s\n", "conns", "server", "time", "per conn", "CPU per conn", "RSS")
	var times [2]time.Duration
	var cpus [2]time.Duration
	var rss [2]int
	for i, s := range []*server{guest, native} {
		cpu0 := s.cpu()
		start := time.Now()
		for range n {
			if err := one(s); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		times[i], cpus[i] = time.Since(start), s.cpu()-cpu0
		rss[i], _, _ = procstat.Memory(s.cmd.Process.Pid)
		fmt.Printf("%-7d %-7s %-10s %-12s %-12s %-9s\n", n, s.name, times[i].Round(time.Millisecond),
			(times[i] / time.Duration(n)).Round(100*time.Nanosecond), (cpus[i] / time.Duration(n)).Round(100*time.Nanosecond),
			fmt.Sprintf("%d MiB", rss[i]/1024))
	}
	fmt.Printf("%-7d %s\n", n, ratios([2]result{{times[0], cpus[0], rss[0]}, {times[1], cpus[1], rss[1]}}))
	fmt.Printf("%-7d guest speed %.2f× native, server CPU %.2f× native\n", n,
		float64(times[1])/float64(times[0]), float64(cpus[0])/float64(max(cpus[1], 1)))
	return nil
}

// bulk: MIB through one connection to each server (written in 64 KiB
// pieces while the echo is read back), with time, throughput and CPU.
func bulk(arg string) error {
	mib, err := strconv.Atoi(arg)
	if err != nil || mib <= 0 {
		return fmt.Errorf("bulk: want a positive MiB count, got %q", arg)
	}
	guest, native, stop, err := echoServers()
	if err != nil {
		return err
	}
	defer stop()
	return bulkOn(guest, native, mib)
}

func bulkOn(guest, native *server, mib int) error {
	total := int64(mib) << 20
	fmt.Printf("%-7s %-7s %-10s %-11s %-10s %-9s\n", "MiB", "server", "time", "throughput", "CPU", "RSS")
	var r [2]result
	for i, s := range []*server{guest, native} {
		c, err := net.DialTimeout("tcp", s.addr, 30*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(10 * time.Minute))
		cpu0 := s.cpu()
		start := time.Now()
		werr := make(chan error, 1)
		go func() {
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			var err error
			for sent := int64(0); sent < total && err == nil; sent += int64(len(chunk)) {
				_, err = c.Write(chunk[:min(int64(len(chunk)), total-sent)])
			}
			werr <- err
		}()
		got, err := io.CopyN(io.Discard, c, total)
		if err == nil {
			err = <-werr
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: echoed %d of %d bytes: %w", s.name, got, total, err)
		}
		el := time.Since(start)
		cpu := s.cpu() - cpu0
		rss, _, _ := procstat.Memory(s.cmd.Process.Pid)
		r[i] = result{el, cpu, rss}
		fmt.Printf("%-7d %-7s %-10s %-11s %-10s %-9s\n", mib, s.name, el.Round(time.Millisecond),
			fmt.Sprintf("%.2f GiB/s", float64(total)/(1<<30)/el.Seconds()), cpu.Round(time.Millisecond),
			fmt.Sprintf("%d MiB", rss/1024))
	}
	fmt.Printf("%-7d %s\n", mib, ratios(r))
	fmt.Printf("%-7d guest speed %.2f× native\n", mib, float64(r[1].time)/float64(r[0].time))
	return nil
}

// soak runs the guest echo server for dur (at most an hour) with idle
// connections held open and workers churning connections (connect, 100
// bytes echoed, close), and samples the wasmgate process every 10 s: RSS,
// open fds, and the host's goroutines (its --metrics endpoint). After a
// warm-up (a tenth of dur, at most a minute) RSS must not grow by more
// than 20 %, and fds and goroutines must stay within a band the workers
// explain; otherwise it fails. Loopback only; it stops by itself.
func soak(args []string) error {
	dur, err := time.ParseDuration(args[0])
	if err != nil || dur < 30*time.Second || dur > time.Hour {
		return fmt.Errorf("soak: want a duration from 30s to 1h, got %q", args[0])
	}
	idle, workers := 1000, 4
	if len(args) > 1 {
		if idle, err = strconv.Atoi(args[1]); err != nil || idle < 0 {
			return fmt.Errorf("soak: bad idle count %q", args[1])
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	metricsAddr := l.Addr().String()
	l.Close()
	guest, native, stop, err := echoServers("--metrics", metricsAddr)
	if err != nil {
		return err
	}
	defer stop()
	native.stop() // the soak is of the guest server alone
	msg := bytes.Repeat([]byte("x"), 100)
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return err
	}
	held := make([]net.Conn, 0, idle)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range idle {
		c, err := net.DialTimeout("tcp", guest.addr, 30*time.Second)
		if err == nil {
			err = echo(c)
		}
		if err != nil {
			return fmt.Errorf("opening idle connection %d: %w", len(held), err)
		}
		held = append(held, c)
	}
	var churned, failed atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", guest.addr, 30*time.Second)
				if err == nil {
					err = echo(c)
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				churned.Add(1)
			}
		}()
	}
	warm := min(dur/10, time.Minute)
	type sample struct {
		at                  time.Duration
		rssKB, fds, gorouts int
		churn               int64
	}
	var samples []sample
	start := time.Now()
	fmt.Printf("%-8s %-9s %-6s %-10s %-10s\n", "time", "RSS", "fds", "goroutines", "conns/s")
	last := int64(0)
	for t := time.NewTicker(10 * time.Second); time.Since(start) < dur; {
		<-t.C
		rss, _, _ := procstat.Memory(guest.cmd.Process.Pid)
		g, err := goroutines(metricsAddr)
		if err != nil {
			return err
		}
		c := churned.Load()
		sm := sample{time.Since(start).Round(time.Second), rss, guest.fds(), g, c - last}
		last = c
		samples = append(samples, sm)
		fmt.Printf("%-8s %-9s %-6d %-10d %-10d\n", sm.at, fmt.Sprintf("%d MiB", sm.rssKB/1024), sm.fds, sm.gorouts, sm.churn/10)
	}
	close(done)
	wg.Wait()
	for _, c := range held {
		if err := echo(c); err != nil {
			return fmt.Errorf("an idle connection no longer echoes after the soak: %w", err)
		}
	}
	var after []sample
	for _, sm := range samples {
		if sm.at > warm {
			after = append(after, sm)
		}
	}
	if len(after) < 2 {
		return errors.New("soak: too short for samples after the warm-up")
	}
	span := func(f func(sample) int) (lo, hi int) {
		lo, hi = f(after[0]), f(after[0])
		for _, sm := range after {
			lo, hi = min(lo, f(sm)), max(hi, f(sm))
		}
		return
	}
	rLo, rHi := span(func(s sample) int { return s.rssKB })
	fLo, fHi := span(func(s sample) int { return s.fds })
	gLo, gHi := span(func(s sample) int { return s.gorouts })
	growth := float64(after[len(after)-1].rssKB-after[0].rssKB) / float64(after[0].rssKB)
	fmt.Printf("%d connections churned (%d failed), %d idle held; after %s warm-up: RSS %d–%d MiB (%+.1f%% first to last), fds %d–%d, goroutines %d–%d\n",
		churned.Load(), failed.Load(), idle, warm, rLo/1024, rHi/1024, 100*growth, fLo, fHi, gLo, gHi)
	var problems []string
	if growth > 0.20 {
		problems = append(problems, fmt.Sprintf("RSS grew %.1f%%", 100*growth))
	}
	// Each worker holds at most one connection (plus its TIME_WAIT-free
	// close in flight): the fd band is a few per worker.
	if fHi-fLo > 4*workers+8 {
		problems = append(problems, fmt.Sprintf("fds drift %d–%d", fLo, fHi))
	}
	if gHi-gLo > 4*workers+16 {
		problems = append(problems, fmt.Sprintf("goroutines drift %d–%d", gLo, gHi))
	}
	if failed.Load() > 0 {
		problems = append(problems, fmt.Sprintf("%d connections failed, first: %v", failed.Load(), firstErr.Load()))
	}
	if len(problems) > 0 {
		return fmt.Errorf("soak: %s", strings.Join(problems, "; "))
	}
	fmt.Println("soak: flat")
	return nil
}

// goroutines reads go_goroutines from a wasmgate --metrics endpoint.
func goroutines(addr string) (int, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no go_goroutines in the metrics")
}
