package plugins

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// decodedDepth is the nesting of a decoded TOML value, as tomlDepth
// counts it: each key and each array is a level.
func decodedDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, c := range x {
			d = max(d, 1+decodedDepth(c))
		}
	case []map[string]any:
		for _, c := range x {
			d = max(d, 1+decodedDepth(c))
		}
	case []any:
		for _, c := range x {
			d = max(d, 1+decodedDepth(c))
		}
	}
	return d
}

// bombs are the nesting forms the TOML decoder is slow and hungry on, each
// at depth n.
func bombs(n int) map[string]string {
	dotted := strings.TrimSuffix(strings.Repeat("a.", n), ".")
	return map[string]string{
		"inline table": "x = " + strings.Repeat("{a=", n-1) + "1" + strings.Repeat("}", n-1),
		"array":        "x = " + strings.Repeat("[", n-1) + "1" + strings.Repeat("]", n-1),
		"dotted key":   dotted + " = 1",
		"table header": "[" + strings.TrimSuffix(strings.Repeat("a.", n-1), ".") + "]\nx = 1",
		"array header": "[[" + strings.TrimSuffix(strings.Repeat("a.", n-2), ".") + "]]\nx = 1",
		"mixed":        "t.x = " + strings.Repeat(`{"k".b=[`, (n-2)/3) + "1" + strings.Repeat("]}", (n-2)/3),
	}
}

// TestTOMLDepth: tomlDepth gives exactly the decoded depth of each form of
// nesting, accepts MaxManifestDepth and refuses one more, naming the line.
func TestTOMLDepth(t *testing.T) {
	for name, src := range bombs(MaxManifestDepth) {
		var raw map[string]any
		if _, err := toml.Decode(src, &raw); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := decodedDepth(raw)
		d, line := tomlDepth([]byte(src), MaxManifestDepth)
		if d != want || want > MaxManifestDepth || line != 0 {
			t.Errorf("%s: scan depth %d line %d, decoded depth %d", name, d, line, want)
		}
	}
	for name, src := range bombs(MaxManifestDepth + 1) {
		if name == "mixed" {
			continue // steps of 3
		}
		src = "# a comment with [[[{{{ and a.b.c.d.e.f\nok = \"[{\"\n" + src
		if _, line := tomlDepth([]byte(src), MaxManifestDepth); line != 3 && !(name == "table header" || name == "array header") || line == 0 {
			t.Errorf("%s: depth %d refused at line %d, want 3", name, MaxManifestDepth+1, line)
		}
	}
	for _, tc := range []struct {
		src  string
		want int
	}{
		{"", 0},
		{"a = 1", 1},
		{"a.b = 1", 2},
		{`"a.b".c = 1`, 2},
		{"a = 'x.y.z'", 1},
		{"a = \"\"\"\n[[[[\n{{{{ a.b.c.d\n\"\"\"\nb = 2", 1},
		{"a = '''\n[[[['''\nb = [[1], [2]]", 3},
		{"a = [{b = 1}, {c.d = 2}]", 4},
		{"[s]\na = {b = {c = 1}}", 4},
		{"[[p]]\nx = 1\n[p.config]\ny = {z = 1}", 5},
		{"a = [\n  1,\n  [2, [3]], # [[[[\n]", 4},
		{"a = {}\nb = []", 2},
		{"a = 1.5\nb = 1979-05-27T07:32:00Z", 1},
		{"a = \"\\\"[\"\nb = [1]", 2},
	} {
		var raw map[string]any
		if _, err := toml.Decode(tc.src, &raw); err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		d, _ := tomlDepth([]byte(tc.src), MaxManifestDepth)
		if d != tc.want || decodedDepth(raw) > d {
			t.Errorf("%q: scan depth %d, want %d (decoded %d)", tc.src, d, tc.want, decodedDepth(raw))
		}
	}
}

// TestManifestBombRefused: a 70 KB manifest of nested inline tables (4 GB
// and 8 s in the decoder), and the other forms of nesting, are refused
// quickly with a problem naming the line; a manifest over the size limit
// too.
func TestManifestBombRefused(t *testing.T) {
	n := 70_000 / 4
	for name, src := range bombs(n) {
		src = "default = \"deny\"\n" + src
		start := time.Now()
		_, err := ParseManifestData("bomb.toml", []byte(src), fakeBuiltins)
		var me *ManifestError
		if !errors.As(err, &me) || len(me.Problems) != 1 || me.Problems[0].Line != 2 ||
			!strings.Contains(me.Problems[0].Msg, fmt.Sprintf("nested deeper than %d levels", MaxManifestDepth)) {
			t.Errorf("%s (%d bytes): %v", name, len(src), err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v", name, d)
		}
	}
	big := bytes.Repeat([]byte("# padding\n"), maxManifest/10+1)
	_, err := ParseManifestData("big.toml", big, fakeBuiltins)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the limit is %d", maxManifest)) {
		t.Fatalf("%d bytes: %v", len(big), err)
	}
}

// TestManifestWorkBound: manifests of up to 1 MiB whose nesting stays
// within MaxManifestDepth, built to make the decoder work hardest (every
// line 31 levels deep), are either refused by the work bound before
// decoding or decoded cheaply. Without the work bound, each took the
// decoder seconds and 0.5-1.2 GB.
func TestManifestWorkBound(t *testing.T) {
	forms := map[string]func(i int) string{
		"inline tables": func(i int) string {
			return fmt.Sprintf("x%d = %s1%s\n", i, strings.Repeat("{a=", 30), strings.Repeat("}", 30))
		},
		"dotted keys": func(i int) string {
			return fmt.Sprintf("x%d.%s = 1\n", i, strings.TrimSuffix(strings.Repeat("a.", 30), "."))
		},
		"headers": func(i int) string {
			return fmt.Sprintf("[x%d.%s]\nb=1\n", i, strings.TrimSuffix(strings.Repeat("a.", 29), "."))
		},
		"arrays": func(i int) string {
			return fmt.Sprintf("x%d = [%s1%s]\n", i, strings.Repeat("[", 29), strings.Repeat("]", 29))
		},
		"inline tables (at the bound)": func(i int) string {
			return fmt.Sprintf("x%d = %s1%s\n", i, strings.Repeat("{a=", 30), strings.Repeat("}", 30))
		},
		"dotted keys (at the bound)": func(i int) string {
			return fmt.Sprintf("x%d.%s = 1\n", i, strings.TrimSuffix(strings.Repeat("a.", 30), "."))
		},
		"a few keys deep": func(i int) string { return fmt.Sprintf("t%d.u.v = %d\n", i%5000, i) },
	}
	for name, line := range forms {
		var b strings.Builder
		for i := 0; b.Len() < maxManifest-200; i++ {
			b.WriteString(line(i))
		}
		if strings.HasSuffix(name, "(at the bound)") {
			// As many lines as the work bound lets through.
			_, w, _ := tomlScan([]byte(line(0)), MaxManifestDepth, math.MaxInt)
			b.Reset()
			for i := 0; i < maxManifestWork/w; i++ {
				b.WriteString(line(i))
			}
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := ParseManifestData("work.toml", []byte(b.String()), fakeBuiltins)
		d := time.Since(start)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		refused := err != nil && strings.Contains(err.Error(), "too much nesting in all")
		t.Logf("%s: %d bytes, refused %v, %v, %d MiB", name, b.Len(), refused, d, alloc>>20)
		if alloc > 256<<20 {
			t.Errorf("%s: the decoder allocated %d MiB", name, alloc>>20)
		}
		if (name == "a few keys deep" || strings.HasSuffix(name, "(at the bound)")) && refused {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
}

// TestManifestManyTables: a manifest of many arrays of tables followed by
// many tables costs time linear in its size. indexKeys used to compare
// every table header with every array seen (half a megabyte took half a
// minute; a megabyte 1m45s).
func TestManifestManyTables(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < maxManifest/4; i++ {
		fmt.Fprintf(&b, "[[a%d]]\n", i)
	}
	for i := 0; b.Len() < maxManifest/2; i++ {
		fmt.Fprintf(&b, "[a%d.b]\n", i)
	}
	start := time.Now()
	_, err := ParseManifestData("tables.toml", []byte(b.String()), fakeBuiltins)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d bytes took %v", b.Len(), d)
	}
	if err == nil || !strings.Contains(err.Error(), "tables.toml:1: a0: unknown key") {
		t.Fatalf("%.200v", err)
	}
}
