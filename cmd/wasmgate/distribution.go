package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/wasmgate/wasmgate/internal/oci"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/plugins/builtin"
)

// ociScheme prefixes a --policy that is a policy artifact in a registry.
const ociScheme = "oci://"

// loadPolicy loads --policy SPEC: a manifest file, or
// oci://REGISTRY/REPO@sha256:DIGEST, a policy artifact pulled (or taken
// from the cache), verified and loaded from its directory in the cache
// (docs/distribution.md#policy-artifacts).
func loadPolicy(ctx context.Context, spec string, opts plugins.Options) (*plugins.Policy, error) {
	ref, isOCI := strings.CutPrefix(spec, ociScheme)
	if !isOCI {
		return plugins.Load(ctx, spec, opts)
	}
	c := &oci.Client{}
	pol, err := c.PullPolicy(ctx, ref)
	if err != nil {
		return nil, err
	}
	lookup := opts.Builtins
	if lookup == nil {
		lookup = builtin.Lookup
	}
	// The files are read back from the policy's directory: a file that
	// changed there since it was written is written again, once.
	for try := 0; ; try++ {
		path, cleanup, err := c.Extract(pol)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec, err)
		}
		m, err := plugins.ParseManifestData(path, pol.Manifest, lookup)
		cleanup()
		if err != nil {
			return nil, err
		}
		bad := verifyPolicyFiles(m, filepath.Dir(path), pol)
		if bad == nil {
			return plugins.LoadManifest(ctx, m, opts)
		}
		if try == 1 || errors.Is(bad, oci.ErrLayout) {
			return nil, fmt.Errorf("%s: %w", spec, bad)
		}
	}
}

// verifyPolicyFiles checks that every path plugin of m is a file of the
// artifact and that the bytes loaded are the ones its digest names.
func verifyPolicyFiles(m *plugins.Manifest, dir string, pol *oci.Policy) error {
	digests := map[string]string{}
	for _, f := range pol.Files {
		digests[filepath.Join(dir, filepath.FromSlash(f.Name))] = f.Digest
	}
	for i, p := range m.Plugins {
		if p.Path == "" {
			continue
		}
		want, ok := digests[p.Path]
		if !ok {
			return fmt.Errorf("plugins[%d].path: %s is not a file of the policy artifact: %w", i+1, p.Path, oci.ErrLayout)
		}
		if got := "sha256:" + sha256Hex(p.Wasm); got != want {
			return fmt.Errorf("plugins[%d].path: %s changed on disk: %w", i+1, p.Path, oci.ErrDigest)
		}
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// auditStart writes the audit record of a policy's start: what was loaded
// (docs/manifest.md#audit-records), the sha256 of the manifest and of each
// plugin's module.
func auditStart(ctx context.Context, audit *slog.Logger, policy string, p *plugins.Policy) {
	if audit == nil {
		return
	}
	type pluginRecord struct {
		Name   string `json:"name"`
		Source string `json:"source"`
		SHA256 string `json:"sha256"`
	}
	list := make([]pluginRecord, len(p.Manifest.Plugins))
	for i, s := range p.Manifest.Plugins {
		src := "path:" + s.Path
		switch {
		case s.Use != "":
			src = "use:" + s.Use
		case s.OCI != "":
			src = "oci:" + s.OCI
		}
		list[i] = pluginRecord{Name: s.Name, Source: src, SHA256: sha256Hex(s.Wasm)}
	}
	audit.LogAttrs(ctx, slog.LevelInfo, "start",
		slog.String("policy", policy),
		slog.String("manifest_sha256", p.Manifest.SHA256),
		slog.Any("plugins", list))
}

// registryFlags adds the flags every registry command takes.
func registryFlags(fs *flag.FlagSet, withSize bool) (insecure *bool, maxSize *string) {
	insecure = fs.Bool("insecure", false, "allow plain HTTP to a registry that is not on loopback")
	s := ""
	maxSize = &s
	if withSize {
		maxSize = fs.String("max-size", "", "cap each plugin module at `SIZE` (default 64M; docs/distribution.md#limits)")
	}
	return insecure, maxSize
}

func newClient(insecure bool, maxSize string) (*oci.Client, error) {
	c := &oci.Client{Insecure: insecure}
	if maxSize != "" {
		n, err := parseSize(maxSize)
		if err != nil {
			return nil, fmt.Errorf("--max-size %q: %w", maxSize, err)
		}
		c.MaxLayer = int64(n)
	}
	return c, nil
}

const pluginUsage = `usage:
  wasmgate plugin push [--insecure] [--max-size SIZE] FILE REF
                              push FILE as a wasm OCI artifact to REF (REGISTRY/REPO:TAG); prints its digest
  wasmgate plugin pull [--insecure] [--max-size SIZE] [--output FILE] REF
                              pull REF into the cache (and FILE); prints REGISTRY/REPO@sha256:DIGEST
  wasmgate plugin resolve [--insecure] REF
                              print REF pinned: REGISTRY/REPO@sha256:DIGEST, for [[plugins]] oci
See docs/distribution.md.
`

// cmdPlugin implements `wasmgate plugin push|pull|resolve`.
func cmdPlugin(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, pluginUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("wasmgate plugin "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var insecure *bool
	maxSize := new(string)
	var out *string
	var synopsis, text string
	nargs := 1
	switch sub {
	case "push":
		insecure, maxSize = registryFlags(fs, true)
		synopsis, text, nargs = "wasmgate plugin push [--insecure] [--max-size SIZE] FILE REF", "Push the wasm module FILE to REF (REGISTRY/REPO:TAG) as a CNCF wasm OCI artifact and print\nits digest (sha256:...). The same file always gives the same digest.\n", 2
	case "pull":
		insecure, maxSize = registryFlags(fs, true)
		out = fs.String("output", "", "also write the module to `FILE`")
		synopsis, text = "wasmgate plugin pull [--insecure] [--max-size SIZE] [--output FILE] REF", "Pull the wasm artifact REF (a tag is resolved first) into the cache, verified, and print\nREGISTRY/REPO@sha256:DIGEST. A pinned reference already in the cache needs no registry.\n"
	case "resolve":
		insecure, _ = registryFlags(fs, false)
		synopsis, text = "wasmgate plugin resolve [--insecure] REF", "Print REF pinned to the digest the registry serves for it now, REGISTRY/REPO@sha256:DIGEST:\nwhat a manifest's [[plugins]] oci key and --policy oci:// need.\n"
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, pluginUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "wasmgate plugin: unknown command %q\n%s", sub, pluginUsage)
		return 2
	}
	setUsage(fs, synopsis, text)
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != nargs {
		fmt.Fprintf(stderr, "wasmgate plugin %s: want %d arguments, got %d\nRun 'wasmgate plugin %s --help' for usage.\n", sub, nargs, fs.NArg(), sub)
		return 2
	}
	c, err := newClient(*insecure, *maxSize)
	if err != nil {
		fmt.Fprintf(stderr, "wasmgate plugin %s: %v\n", sub, err)
		return 2
	}
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "wasmgate plugin %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "push":
		mod, err := plugins.ReadRegularFile(fs.Arg(0), oci.MaxCachedBlob)
		if err != nil {
			return fail(err)
		}
		dig, err := c.PushWasm(ctx, mod, fs.Arg(1))
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, dig)
	case "pull":
		ref, err := pin(ctx, c, fs.Arg(0))
		if err != nil {
			return fail(err)
		}
		mod, err := c.PullWasm(ctx, ref)
		if err != nil {
			return fail(err)
		}
		if *out != "" {
			if err := os.WriteFile(*out, mod, 0o644); err != nil {
				return fail(err)
			}
		}
		fmt.Fprintln(stdout, ref)
	case "resolve":
		ref, err := c.Resolve(ctx, fs.Arg(0))
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, ref)
	}
	return 0
}

// pin returns ref when it has a digest, else ref resolved.
func pin(ctx context.Context, c *oci.Client, ref string) (string, error) {
	if _, err := oci.ParsePinned(ref); !errors.Is(err, oci.ErrNotPinned) {
		return ref, nil // pinned, or malformed: the pull says so
	}
	return c.Resolve(ctx, ref)
}

const policyUsage = `usage:
  wasmgate policy push [--insecure] [--max-size SIZE] [--manifest NAME] DIR REF
                              push DIR's manifest (NAME, default policy.toml) and the plugin files it
                              names as one artifact to REF (REGISTRY/REPO:TAG); prints its digest
  wasmgate policy pull [--insecure] [--max-size SIZE] REF
                              pull the policy REF into the cache; prints REGISTRY/REPO@sha256:DIGEST
Run one with: wasmgate run --policy oci://REGISTRY/REPO@sha256:DIGEST ... (docs/distribution.md)
`

// cmdPolicy implements `wasmgate policy push|pull`.
func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("wasmgate policy "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	insecure, maxSize := registryFlags(fs, true)
	var manifestName *string
	nargs := 1
	switch sub {
	case "push":
		manifestName = fs.String("manifest", "policy.toml", "the manifest's file `NAME` in DIR")
		nargs = 2
		setUsage(fs, "wasmgate policy push [--insecure] [--max-size SIZE] [--manifest NAME] DIR REF", `Check the manifest DIR/NAME (as wasmgate check parses it), then push it and every plugin
file it names by path (each must be inside DIR) as one policy artifact to REF
(REGISTRY/REPO:TAG) and print its digest. Built-in (use) and oci plugins stay references.
`)
	case "pull":
		setUsage(fs, "wasmgate policy pull [--insecure] [--max-size SIZE] REF", `Pull the policy artifact REF (a tag is resolved first) into the cache, verified, and print
REGISTRY/REPO@sha256:DIGEST; run --policy oci://... then needs no registry.
`)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, policyUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "wasmgate policy: unknown command %q\n%s", sub, policyUsage)
		return 2
	}
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != nargs {
		fmt.Fprintf(stderr, "wasmgate policy %s: want %d arguments, got %d\nRun 'wasmgate policy %s --help' for usage.\n", sub, nargs, fs.NArg(), sub)
		return 2
	}
	c, err := newClient(*insecure, *maxSize)
	if err != nil {
		fmt.Fprintf(stderr, "wasmgate policy %s: %v\n", sub, err)
		return 2
	}
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "wasmgate policy %s: %v\n", sub, err)
		return 1
	}
	if sub == "pull" {
		ref, err := pin(ctx, c, fs.Arg(0))
		if err != nil {
			return fail(err)
		}
		if _, err := c.PullPolicy(ctx, ref); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, ref)
		return 0
	}
	dir, ref := fs.Arg(0), fs.Arg(1)
	name := filepath.ToSlash(filepath.Clean(*manifestName))
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return fail(err)
	}
	// The bytes checked are the bytes pushed.
	mpath := filepath.Join(absDir, filepath.FromSlash(name))
	data, err := plugins.ReadRegularFile(mpath, 1<<20)
	if err != nil {
		return fail(err)
	}
	m, err := plugins.ParseManifestData(mpath, data, builtin.Lookup)
	if err != nil {
		return fail(err)
	}
	var files []oci.File
	for i, p := range m.Plugins {
		if p.Path == "" {
			continue
		}
		rel, err := filepath.Rel(absDir, p.Path)
		if err != nil || !filepath.IsLocal(rel) {
			return fail(fmt.Errorf("plugins[%d] (%s): %s is outside %s; a policy artifact holds only files inside its directory", i+1, p.Name, p.Path, dir))
		}
		files = append(files, oci.File{Name: filepath.ToSlash(rel), Data: p.Wasm})
	}
	dig, err := c.PushPolicy(ctx, ref, name, data, files)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, dig)
	return 0
}
