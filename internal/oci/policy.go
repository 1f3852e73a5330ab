package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Media types of a policy artifact (docs/distribution.md#policy-artifacts):
// an OCI image manifest whose config has PolicyConfigMediaType, whose
// first layer is the manifest TOML and whose other layers are the plugin
// modules it names by path, each titled with that path.
const (
	PolicyConfigMediaType   = "application/vnd.wasmgate.policy.config.v1+json"
	PolicyManifestMediaType = "application/vnd.wasmgate.policy.manifest.v1+toml"
	// TitleAnnotation names a layer's file, relative to the manifest.
	TitleAnnotation = "org.opencontainers.image.title"
	// MaxPolicyFiles caps the plugin files of one policy artifact.
	MaxPolicyFiles = 64
	// MaxPolicyBytes caps the sum of a policy artifact's layers.
	MaxPolicyBytes = 256 << 20
	// maxPolicyManifest is plugins' limit on a manifest file.
	maxPolicyManifest = 1 << 20
)

// File is one file of a policy: its path relative to the manifest's
// directory (slash-separated) and content.
type File struct {
	Name   string
	Data   []byte
	Digest string // sha256:..., set by PullPolicy
}

// Policy is a pulled, verified policy artifact.
type Policy struct {
	Digest       string // of the artifact's manifest
	ManifestName string // the TOML file's name, e.g. "policy.toml"
	Manifest     []byte // the TOML
	Files        []File // the plugin modules
}

// policyConfig is the config blob of a policy artifact.
type policyConfig struct {
	Created      string   `json:"created"`
	Manifest     string   `json:"manifest"`
	LayerDigests []string `json:"layerDigests"`
}

// checkName accepts a file name of a policy artifact: relative, clean,
// slash-separated, inside the policy's directory.
func checkName(n string) error {
	if n == "" || strings.ContainsAny(n, "\\\x00") || path.Clean(n) != n || !filepath.IsLocal(filepath.FromSlash(n)) || strings.HasPrefix(n, "/") {
		return fmt.Errorf("%w: file name %q must be a clean relative path inside the policy directory", ErrLayout, n)
	}
	return nil
}

func checkPolicy(m *ociManifest) error {
	if m.Config.MediaType != PolicyConfigMediaType {
		return fmt.Errorf("%w: config media type is %q, want %q (a wasmgate policy; push one with `wasmgate policy push`)", ErrLayout, m.Config.MediaType, PolicyConfigMediaType)
	}
	if len(m.Layers) == 0 || m.Layers[0].MediaType != PolicyManifestMediaType {
		return fmt.Errorf("%w: the first layer must be the manifest, media type %q", ErrLayout, PolicyManifestMediaType)
	}
	if m.Layers[0].Size > maxPolicyManifest {
		return fmt.Errorf("manifest layer is %d bytes: %w (limit %d)", m.Layers[0].Size, ErrTooLarge, maxPolicyManifest)
	}
	if len(m.Layers)-1 > MaxPolicyFiles {
		return fmt.Errorf("%w: %d plugin files; the limit is %d", ErrLayout, len(m.Layers)-1, MaxPolicyFiles)
	}
	var total int64
	for _, l := range m.Layers {
		if l.Size > MaxPolicyBytes { // each first: the sum must not overflow
			total = l.Size
			break
		}
		total += l.Size
	}
	if total > MaxPolicyBytes {
		return fmt.Errorf("the policy's files are %d bytes: %w (limit %d)", total, ErrTooLarge, MaxPolicyBytes)
	}
	seen := map[string]bool{}
	for i, l := range m.Layers {
		if i > 0 && l.MediaType != WasmLayerMediaType {
			return fmt.Errorf("%w: layer %d has media type %q, want %q: not a wasm module", ErrLayout, i+1, l.MediaType, WasmLayerMediaType)
		}
		n := l.Annotations[TitleAnnotation]
		if err := checkName(n); err != nil {
			return fmt.Errorf("layer %d: %w", i+1, err)
		}
		if seen[n] {
			return fmt.Errorf("%w: two layers named %q", ErrLayout, n)
		}
		seen[n] = true
	}
	return nil
}

// PushPolicy pushes a policy (its manifest TOML, named manifestName, and
// the plugin files the manifest names by path, relative to its directory)
// to ref (REGISTRY/REPO:TAG) and returns the artifact's digest.
func (c *Client) PushPolicy(ctx context.Context, ref, manifestName string, manifest []byte, files []File) (string, error) {
	if len(manifest) > maxPolicyManifest {
		return "", fmt.Errorf("manifest is %d bytes: %w (limit %d)", len(manifest), ErrTooLarge, maxPolicyManifest)
	}
	if len(files) > MaxPolicyFiles {
		return "", fmt.Errorf("%w: %d plugin files; the limit is %d", ErrLayout, len(files), MaxPolicyFiles)
	}
	layers := []blob{{mediaType: PolicyManifestMediaType, data: manifest, annotations: map[string]string{TitleAnnotation: manifestName}}}
	seen := map[string]bool{manifestName: true}
	if err := checkName(manifestName); err != nil {
		return "", err
	}
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return "", err
		}
		if seen[f.Name] {
			continue
		}
		seen[f.Name] = true
		if int64(len(f.Data)) > c.maxLayer() {
			return "", fmt.Errorf("%s is %d bytes: %w (limit %d bytes; --max-size raises it)", f.Name, len(f.Data), ErrTooLarge, c.maxLayer())
		}
		layers = append(layers, blob{mediaType: WasmLayerMediaType, data: f.Data, annotations: map[string]string{TitleAnnotation: f.Name}})
	}
	var total int64
	for _, l := range layers {
		total += int64(len(l.data))
	}
	if total > MaxPolicyBytes {
		return "", fmt.Errorf("the policy's files are %d bytes: %w (limit %d)", total, ErrTooLarge, MaxPolicyBytes)
	}
	cfg := policyConfig{Created: "1970-01-01T00:00:00Z", Manifest: manifestName}
	for _, l := range layers {
		cfg.LayerDigests = append(cfg.LayerDigests, l.descriptor().Digest.String())
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	return c.push(ctx, ref, blob{mediaType: PolicyConfigMediaType, data: b}, layers, nil)
}

// PullPolicy returns the policy artifact ref pins, verified.
func (c *Client) PullPolicy(ctx context.Context, ref string) (*Policy, error) {
	d, err := ParsePinned(ref)
	if err != nil {
		return nil, err
	}
	a, err := c.fetch(ctx, d, checkPolicy)
	if err != nil {
		return nil, err
	}
	p := &Policy{Digest: a.Digest, ManifestName: a.Manifest.Layers[0].Annotations[TitleAnnotation], Manifest: a.Layers[0]}
	for i, l := range a.Manifest.Layers[1:] {
		p.Files = append(p.Files, File{Name: l.Annotations[TitleAnnotation], Data: a.Layers[i+1], Digest: l.Digest.String()})
	}
	return p, nil
}

// Dir is where Extract writes the policy: CACHE/policies/HEX, or a new
// temporary directory without a cache (the caller removes it).
func (c *Client) policyDir(p *Policy) (string, bool, error) {
	if dir := c.cacheDir(); dir != "" {
		d := filepath.Join(dir, "policies", strings.TrimPrefix(p.Digest, "sha256:"))
		return d, false, os.MkdirAll(d, 0o700)
	}
	d, err := os.MkdirTemp("", "wasmgate-policy-")
	return d, true, err
}

// Extract writes the policy's files into its directory and returns the
// manifest's path there and a cleanup func. A file already there is kept
// only when it hashes to its digest. The caller must still compare the
// bytes it loads with the digests (Policy.Files): the directory is only
// where plugin paths resolve.
func (c *Client) Extract(p *Policy) (manifestPath string, cleanup func(), err error) {
	dir, temp, err := c.policyDir(p)
	if err != nil {
		return "", nil, err
	}
	cleanup = func() {}
	if temp {
		cleanup = func() { os.RemoveAll(dir) }
	}
	write := func(name string, data []byte) error {
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := os.ReadFile(dst); err == nil && digestOf(old) == digestOf(data) {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		f, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), dst)
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}
	if err := write(p.ManifestName, p.Manifest); err != nil {
		cleanup()
		return "", nil, err
	}
	for _, f := range p.Files {
		if err := write(f.Name, f.Data); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return filepath.Join(dir, filepath.FromSlash(p.ManifestName)), cleanup, nil
}
