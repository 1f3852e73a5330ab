package main

import (
	"bufio"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A program that writes one request and waits for its verdict gets it
// while decide's stdin is still open: the verdicts are flushed before
// decide blocks for more input, not only at the end.
func TestDecideAnswersEachLine(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.toml")
	writeFile(t, policy, "default = \"allow\"\n")
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cmdDecide([]string{"--policy", policy}, inR, outW, io.Discard)
		outW.Close()
	}()
	out := bufio.NewReader(outR)
	for i, req := range []string{
		`{"op":"connect","proto":"tcp","addr":"127.0.0.1","port":443}`,
		`{"op":"connect","proto":"tcp","addr":"127.0.0.2","port":80}`,
	} {
		if _, err := io.WriteString(inW, req+"\n"); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			l, _ := out.ReadString('\n')
			got <- l
		}()
		select {
		case l := <-got:
			if !strings.Contains(l, `"verdict":"allow"`) {
				t.Fatalf("line %d: verdict %q", i+1, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d: no verdict while stdin stays open (the output is held in a buffer)", i+1)
		}
	}
	inW.Close()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
}

// Without plugins one clock reading serves up to clockLines decisions,
// and a read of stdin takes a new one.
func TestLineClock(t *testing.T) {
	var c lineClock
	first := c.now()
	for i := 1; i < clockLines; i++ {
		if got := c.now(); !got.Equal(first) {
			t.Fatalf("decision %d read the clock again", i+1)
		}
	}
	time.Sleep(2 * time.Millisecond)
	if got := c.now(); !got.After(first) {
		t.Fatalf("decision %d still has the first reading", clockLines+1)
	}
	second := c.now()
	c.refresh()
	time.Sleep(2 * time.Millisecond)
	if got := c.now(); !got.After(second) {
		t.Fatal("a refresh did not make the next decision read the clock")
	}
}
