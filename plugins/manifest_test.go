package plugins

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/testenv"
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
		Memory                           uint64
		Report                           bool
		Config                           json.RawMessage
		WasmBytes                        int
		Line                             int
	}
	s := struct {
		Default, NameTTL string
		Report           bool
		Guest            string
		Labels           map[string]string
		DNSServers       []string
		DNSHosts         any
		MaxSockets       int
		MaxFds           int `json:",omitempty"`
		Plugins          []plug
	}{string(m.Default), m.NameTTL.String(), m.Report, m.Guest, m.Labels, m.DNSServers, m.DNSHosts, m.MaxSockets, m.MaxFds, nil}
	for _, p := range m.Plugins {
		path := ""
		if p.Path != "" {
			path = filepath.Base(p.Path)
		}
		s.Plugins = append(s.Plugins, plug{p.Name, p.Use, path, p.SHA256, p.Timeout.String(), p.Memory, p.Report, p.Config, len(p.Wasm), p.Line})
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
// panic, and every problem has a message.
func FuzzParseManifest(f *testing.F) {
	files, _ := filepath.Glob("../testdata/manifests/*.toml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifestData("../testdata/manifests/fuzz.toml", data, fakeBuiltins)
		if err == nil {
			if m == nil {
				t.Fatal("nil manifest without error")
			}
			return
		}
		me, ok := err.(*ManifestError)
		if !ok || len(me.Problems) == 0 {
			t.Fatalf("error %T %v", err, err)
		}
		for _, p := range me.Problems {
			if p.Msg == "" {
				t.Fatalf("empty problem in %v", err)
			}
		}
	})
}
