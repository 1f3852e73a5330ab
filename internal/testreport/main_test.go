package main

import (
	"strings"
	"testing"
)

const (
	pass = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"pass","Package":"p","Elapsed":0.2}
`
	unsupported = `{"Action":"start","Package":"q"}
{"Action":"output","Package":"q","Test":"TestU","Output":"--- SKIP: TestU (0.00s)\n"}
{"Action":"skip","Package":"q","Test":"TestU"}
{"Action":"output","Package":"q","Test":"TestU","Output":"    x_test.go:9: unsupported platform: no splice on darwin\n"}
{"Action":"pass","Package":"q","Elapsed":0.2}
`
	missing = `{"Action":"start","Package":"r"}
{"Action":"output","Package":"r","Test":"TestM/sub","Output":"    y_test.go:3: clang not available: exec: not found (CI fails here)\n"}
{"Action":"skip","Package":"r","Test":"TestM/sub"}
{"Action":"pass","Package":"r","Elapsed":0.2}
`
	failed = `{"Action":"start","Package":"s"}
{"Action":"output","Package":"s","Test":"TestF","Output":"--- FAIL: TestF (0.00s)\n"}
{"Action":"fail","Package":"s","Test":"TestF"}
{"Action":"output","Package":"s","Test":"TestF","Output":"    z_test.go:7: got 1, want 2\n"}
{"Action":"output","Package":"s","Output":"FAIL\n"}
{"Action":"fail","Package":"s","Elapsed":0.2}
`
	died = `{"Action":"start","Package":"t"}
{"Action":"run","Package":"t","Test":"TestD"}
`
	buildFailed = "# example.com/u\nu.go:1:1: syntax error\n" + `{"Action":"start","Package":"u"}
{"Action":"output","Package":"u","Output":"FAIL\texample.com/u [build failed]\n"}
{"Action":"fail","Package":"u","Elapsed":0}
`
)

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ci       bool
		code     int
		want     []string // in the report
	}{
		{"pass", pass, true, 0, []string{"ok   p", "all tests passed (1 packages)"}},
		{"unsupported skip under CI", pass + unsupported, true, 0, []string{"  q TestU: unsupported platform: no splice on darwin"}},
		{"missing toolchain outside CI", missing, false, 0, []string{"! r TestM/sub: clang not available"}},
		{"missing toolchain under CI", missing, true, 1, []string{"! r TestM/sub", "CI must run them"}},
		{"failed test", pass + failed, false, 1, []string{"=== FAIL s TestF", "got 1, want 2"}},
		{"binary died", pass + died, false, 1, []string{"FAIL t: no result"}},
		{"build failed", buildFailed, false, 1, []string{"syntax error", "=== FAIL u (package)", "build failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			code, err := run(strings.NewReader(tc.in), &out, tc.ci)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
