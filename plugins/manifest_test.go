package plugins

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/wasmgate/wasmgate/internal/testenv"
	"github.com/wasmgate/wasmgate/network"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeBuiltins knows the four built-in names without needing their wasm.
func fakeBuiltins(name string) ([]byte, bool) {
	switch name {
	case "allowlist", "denylist", "special-ranges", "ratelimit":
		return []byte("builtin:" + name), true
	}
	return nil, false
}

// manifestSummary is what the golden file of a valid manifest shows.
func manifestSummary(m *Manifest) string {
	type plug struct {
		Name, Use, Path, SHA256, Timeout string
		InitTimeout                      string
		Memory                           uint64
		Report                           bool
		Config                           json.RawMessage
		WasmBytes                        int
		Line                             int
		Engine                           string   `json:",omitempty"` // when not auto
		AllowedHosts                     []string `json:",omitempty"`
		AllowSpecial                     string   `json:",omitempty"`
	}
	s := struct {
		Default, NameTTL string
		Report           bool
		Guest            string
		Labels           map[string]string
		DNSServers       []string
		DNSHosts         any
		MaxSockets       int
		MaxFds           int             `json:",omitempty"`
		MaxMemory        uint64          `json:",omitempty"`
		Quotas           *network.Quotas `json:",omitempty"`
		Plugins          []plug
	}{string(m.Default), m.NameTTL.String(), m.Report, m.Guest, m.Labels, m.DNSServers, m.DNSHosts, m.MaxSockets, m.MaxFds, m.MaxMemory, nil, nil}
	if m.Quotas != (network.Quotas{}) {
		s.Quotas = &m.Quotas
	}
	for _, p := range m.Plugins {
		path := ""
		if p.Path != "" {
			path = filepath.Base(p.Path)
		}
		pl := plug{Name: p.Name, Use: p.Use, Path: path, SHA256: p.SHA256, Timeout: p.Timeout.String(), InitTimeout: p.Init.String(),
			Memory: p.Memory, Report: p.Report, Config: p.Config, WasmBytes: len(p.Wasm), Line: p.Line, AllowedHosts: p.AllowedHosts}
		if p.Engine != EngineAuto {
			pl.Engine = p.Engine
		}
		if p.AllowSpecial != 0 {
			pl.AllowSpecial = p.AllowSpecial.String()
		}
		s.Plugins = append(s.Plugins, pl)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	return string(b) + "\n"
}

func TestManifestGolden(t *testing.T) {
	files, err := filepath.Glob("../testdata/manifests/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatal("no manifests", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m, err := ParseManifest(f, fakeBuiltins)
			var got string
			valid := strings.HasPrefix(filepath.Base(f), "valid-")
			switch {
			case valid && err != nil:
				t.Fatalf("unexpected error:\n%v", err)
			case !valid && err == nil:
				t.Fatalf("no error for an invalid manifest")
			case valid:
				got = manifestSummary(m)
			default:
				if _, ok := err.(*ManifestError); !ok {
					t.Fatalf("error is %T, want *ManifestError", err)
				}
				got = err.Error() + "\n"
			}
			testenv.Golden(t, strings.TrimSuffix(f, ".toml")+".golden", got, *update)
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"16MiB": 16 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "65536B": 65536, "65536": 65536} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "16MB", "16 MiB x", "-1", "1.5MiB", "99999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

// FuzzParseManifest: any bytes give a manifest or a *ManifestError, never a
// panic. Every problem names the file, a line inside it (or none) and says
// something. A manifest nested deeper than MaxManifestDepth is refused with
// exactly the depth problem, before decoding; one the scan lets through
// decodes (if it decodes) to no more than that depth, so the scan never
// underestimates. A manifest that is accepted has sane values.
func FuzzParseManifest(f *testing.F) {
	files, _ := filepath.Glob("../testdata/manifests/*.toml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, n := range []int{4, MaxManifestDepth, MaxManifestDepth + 1} {
		for _, src := range bombs(n) {
			f.Add([]byte("default = \"deny\"\n" + src))
		}
	}
	f.Add([]byte("[[plugins]]\nuse = \"allowlist\"\n[plugins.config]\na = {b = [{c = 1}]}\n"))
	f.Add([]byte("[[a]]\n[[a.b]]\n[[a.b.c]]\n[a.b.c.d]\ne.f = [[1]]\n"))
	const file = "../testdata/manifests/fuzz.toml"
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifestData(file, data, fakeBuiltins)
		scanDepth, _ := tomlDepth(data, MaxManifestDepth)
		problem, refused := nestingProblem(file, data)
		refusedAt := problem.Line
		lines := bytes.Count(data, []byte("\n")) + 1
		if err == nil {
			if m == nil {
				t.Fatal("nil manifest without error")
			}
			if refused {
				t.Fatalf("accepted although nested too much: %v", problem)
			}
			if m.Default != "allow" && m.Default != "deny" || m.MaxSockets < 0 {
				t.Fatalf("default %q, max_sockets %d", m.Default, m.MaxSockets)
			}
			if msg := quotasInBounds(m.Quotas); msg != "" {
				t.Fatalf("quotas %+v: %s", m.Quotas, msg)
			}
			for _, p := range m.Plugins {
				if p.Name == "" || !json.Valid(p.Config) || len(p.Config) > maxConfigJSON ||
					p.Memory%wasmPage != 0 || p.Timeout < 0 || p.Timeout > MaxTimeout || len(p.Wasm) == 0 {
					t.Fatalf("bad plugin %+v", p)
				}
			}
			return
		}
		me, ok := err.(*ManifestError)
		if !ok || len(me.Problems) == 0 {
			t.Fatalf("error %T %v", err, err)
		}
		for _, p := range me.Problems {
			if p.Msg == "" || p.File != file || p.Line < 0 || p.Line > lines {
				t.Fatalf("bad problem %+v in %d lines", p, lines)
			}
		}
		if refused {
			if len(me.Problems) != 1 || me.Problems[0] != problem || refusedAt < 1 || refusedAt > lines {
				t.Fatalf("%v, but: %v", problem, err)
			}
			return
		}
		var raw map[string]any
		if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err == nil {
			if d := decodedDepth(raw); d > scanDepth {
				t.Fatalf("decoded depth %d, the scan saw %d", d, scanDepth)
			}
		}
	})
}
