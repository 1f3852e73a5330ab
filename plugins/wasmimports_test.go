package plugins

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
)

// tinyModule is a module with a type, two function imports from
// extism:host/env, a memory import and the exports "_initialize" and "x".
func tinyModule() []byte {
	name := func(b []byte, s string) []byte { return append(appendULEB(b, uint64(len(s))), s...) }
	section := func(b []byte, id byte, content []byte) []byte {
		return append(appendULEB(append(b, id), uint64(len(content))), content...)
	}
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = section(b, 1, []byte{1, 0x60, 0, 0})
	imp := []byte{3}
	imp = append(name(name(imp, "extism:host/env"), "http_request"), 0, 0)
	imp = append(name(name(imp, "extism:host/env"), "alloc"), 0, 0)
	imp = append(name(name(imp, "env"), "memory"), 2, 1, 1, 2) // limits: min 1, max 2
	b = section(b, 2, imp)
	b = section(b, 3, []byte{1, 0}) // one function of type 0
	exp := []byte{2}
	exp = append(name(exp, "_initialize"), 0, 2)
	exp = append(name(exp, "x"), 0, 2)
	b = section(b, 7, exp)
	b = section(b, 10, []byte{1, 2, 0, 0x0b}) // its body: end
	return b
}

func TestWasmRewrites(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	orig := tinyModule()
	if _, err := rt.CompileModule(ctx, orig); err != nil {
		t.Fatalf("the test module itself: %v", err)
	}
	imps, err := wasmImports(orig)
	if err != nil || len(imps) != 3 || imps[0] != (wasmImport{"extism:host/env", "http_request", 0}) || imps[2].kind != 2 {
		t.Fatalf("imports %v, %v", imps, err)
	}
	red, err := redirectImports(orig, "extism:host/env", map[string]bool{"http_request": true}, httpModule)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rt.CompileModule(ctx, red)
	if err != nil {
		t.Fatalf("redirected module does not compile: %v", err)
	}
	var got []string
	for _, d := range c.ImportedFunctions() {
		m, n, _ := d.Import()
		got = append(got, m+"."+n)
	}
	if len(got) != 2 || got[0] != httpModule+".http_request" || got[1] != "extism:host/env.alloc" {
		t.Errorf("imports after redirect: %v", got)
	}
	if again, _ := redirectImports(orig, "extism:host/env", map[string]bool{"nothing": true}, httpModule); !bytes.Equal(again, orig) {
		t.Error("redirecting nothing changed the module")
	}
	ren, err := renameExports(red, map[string]string{"_initialize": sdkStart, "__wasm_call_ctors": sdkCtors})
	if err != nil {
		t.Fatal(err)
	}
	c, err = rt.CompileModule(ctx, ren)
	if err != nil {
		t.Fatalf("renamed module does not compile: %v", err)
	}
	ex := c.ExportedFunctions()
	if ex["_initialize"] != nil || ex[sdkStart] == nil || ex["x"] == nil || len(ex) != 2 {
		t.Errorf("exports after rename: %v", ex)
	}
	if _, err := renameExports(orig, map[string]string{"_initialize": "x"}); err == nil {
		t.Error("a rename onto an existing export succeeded")
	}
	// Every truncation is an error, never a panic or a bad module.
	for n := range len(orig) {
		if _, err := wasmImports(orig[:n]); err == nil && n < 8 {
			t.Errorf("wasmImports of %d bytes succeeded", n)
		}
		redirectImports(orig[:n], "extism:host/env", map[string]bool{"http_request": true}, httpModule)
		renameExports(orig[:n], map[string]string{"_initialize": sdkStart})
	}
}

// FuzzWasmRewrites: on any input the rewrites fail or give a module whose
// imports read back as before, bar the redirected module name.
func FuzzWasmRewrites(f *testing.F) {
	f.Add(tinyModule())
	if b, err := os.ReadFile("../testdata/manifests/fake.wasm"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		wasmFuncExports(b)
		before, err := wasmImports(b)
		red, rerr := redirectImports(b, "extism:host/env", map[string]bool{"http_request": true}, httpModule)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("wasmImports %v, redirectImports %v", err, rerr)
		}
		if rerr != nil {
			return
		}
		after, err := wasmImports(red)
		if err != nil || len(after) != len(before) {
			t.Fatalf("after redirect: %v, %d imports (was %d)", err, len(after), len(before))
		}
		for i := range after {
			want := before[i]
			if want.kind == 0 && want.module == "extism:host/env" && want.name == "http_request" {
				want.module = httpModule
			}
			if after[i] != want {
				t.Fatalf("import %d: %v, want %v", i, after[i], want)
			}
		}
		if ren, err := renameExports(red, map[string]string{"_initialize": sdkStart}); err == nil {
			if _, err := wasmImports(ren); err != nil {
				t.Fatalf("imports unreadable after renameExports: %v", err)
			}
		}
	})
}

func TestWasmFuncExports(t *testing.T) {
	ex, err := wasmFuncExports(tinyModule())
	if err != nil || len(ex) != 2 || !ex["_initialize"] || !ex["x"] {
		t.Errorf("exports %v, %v", ex, err)
	}
	m := tinyModule()
	for n := range len(m) {
		wasmFuncExports(m[:n]) // no panic
	}
}
