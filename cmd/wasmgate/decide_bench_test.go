package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// BenchmarkDecideLines is `wasmgate decide` on connect lines with a
// manifest that has no plugins (`default = "allow"`): the cost of the
// command's own per-line work (parse the line, simulate the operation
// through network.Default, write the verdict line), per line. Start-up
// (loading the manifest) is paid once per b.N lines and amortised;
// cpu-ns/line is the process's CPU time per line, GC included.
//
//	go test -run XXX -bench BenchmarkDecideLines -benchtime 50000x -count 5 ./cmd/wasmgate/
func BenchmarkDecideLines(b *testing.B) {
	dir := b.TempDir()
	policy := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(policy, []byte(`default = "allow"`+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	// The input is a file, as the command's stdin is: held in memory, it
	// made the heap (and so the GC's work) grow with b.N.
	var text bytes.Buffer
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(&text, `{"op":"connect","proto":"tcp","addr":"93.184.216.%d","port":443}`+"\n", i%250)
	}
	inPath := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(inPath, text.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	text = bytes.Buffer{}
	in, err := os.Open(inPath)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	runtime.GC()
	var r0, r1 syscall.Rusage
	b.ResetTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	if code := cmdDecide([]string{"--policy", policy}, in, io.Discard, io.Discard); code != 0 {
		b.Fatalf("exit %d", code)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
	// The process's CPU time (GC included) per line: on a shared machine
	// it moves less than the wall time.
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/line")
}
