// Package oci distributes wasmgate plugins and whole policies through OCI
// registries (docs/distribution.md). A plugin is a CNCF TAG Runtime wasm
// artifact: an OCI image manifest whose config has media type
// application/vnd.wasm.config.v0+json and whose one layer is the module,
// media type application/wasm. A policy is an artifact of wasmgate's own
// layout (policy.go).
//
// Everything is pulled by digest and verified: the manifest's sha256 must
// be the pinned digest, each blob's sha256 the digest the manifest names,
// each blob at most a size cap. Verified blobs are kept content-addressed
// under the user cache directory, re-hashed on every read (a corrupted entry
// is removed and fetched again), so a pinned reference works offline once
// pulled.
package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the artifacts (docs/distribution.md#artifact-layout).
const (
	// ManifestMediaType is the OCI image manifest every artifact uses.
	ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
	// WasmConfigMediaType is the config of a CNCF TAG Runtime wasm artifact.
	WasmConfigMediaType = "application/vnd.wasm.config.v0+json"
	// WasmLayerMediaType is the one layer of a wasm artifact: the module.
	WasmLayerMediaType = "application/wasm"
)

// Limits (docs/distribution.md#limits).
const (
	// DefaultMaxLayer caps one layer (a plugin module) that is fetched from
	// a registry; Client.MaxLayer raises it (`--max-size`).
	DefaultMaxLayer = 64 << 20
	// MaxCachedBlob caps a blob read back from the cache: what a larger
	// --max-size let in, up to the 256 MiB wasmgate loads from a file.
	MaxCachedBlob = 256 << 20
	// MaxManifest caps an OCI manifest (and the config blob) in bytes.
	MaxManifest = 4 << 20
	// DefaultTimeout bounds one pull, push or resolve when the context has
	// no deadline.
	DefaultTimeout = 2 * time.Minute
)

// Errors callers can test for with errors.Is.
var (
	// ErrNotPinned: the reference has no @sha256: digest.
	ErrNotPinned = errors.New("reference is not pinned by digest")
	// ErrDigest: content does not hash to the digest that names it.
	ErrDigest = errors.New("digest mismatch")
	// ErrTooLarge: a blob or manifest exceeds its cap.
	ErrTooLarge = errors.New("too large")
	// ErrLayout: the artifact is not of the expected kind (media types,
	// layer count, paths).
	ErrLayout = errors.New("not a valid artifact")
	// ErrPlainHTTP: plain HTTP to a registry that is not on loopback,
	// without Insecure.
	ErrPlainHTTP = errors.New("plain HTTP refused")
)

// Client pulls and pushes artifacts. The zero value is usable: the user
// cache, the docker credential helpers and config (authn.DefaultKeychain),
// TLS for every registry except loopback ones.
type Client struct {
	// CacheDir holds verified blobs; "" means DefaultCacheDir(), "-" no
	// cache (every pull goes to the registry).
	CacheDir string
	// Insecure allows plain HTTP (and unverified TLS is never allowed) to
	// any registry; without it only loopback registries may use HTTP.
	Insecure bool
	// MaxLayer caps each layer fetched from a registry; 0 means
	// DefaultMaxLayer.
	MaxLayer int64
	// Keychain finds credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport is the HTTP transport under the plain-HTTP guard; nil
	// means remote.DefaultTransport.
	Transport http.RoundTripper
}

// DefaultCacheDir is the blob cache under the user cache directory, beside
// the compiled-plugin cache (plugins.DefaultCacheDir): $XDG_CACHE_HOME/
// wasmgate/oci on Linux. "" when the user has no cache directory.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "wasmgate", "oci")
}

func (c *Client) cacheDir() string {
	switch c.CacheDir {
	case "":
		return DefaultCacheDir()
	case "-":
		return ""
	}
	return c.CacheDir
}

func (c *Client) maxLayer() int64 {
	if c.MaxLayer > 0 {
		return c.MaxLayer
	}
	return DefaultMaxLayer
}

// ParsePinned parses REGISTRY/REPO[:TAG]@sha256:HEX. A reference without
// a sha256 digest is ErrNotPinned.
func ParsePinned(ref string) (name.Digest, error) {
	i := strings.LastIndexByte(ref, '@')
	if i < 0 {
		return name.Digest{}, fmt.Errorf("%q: %w; pin it with the digest `wasmgate plugin resolve %s` prints (REF@sha256:DIGEST)", ref, ErrNotPinned, ref)
	}
	dig := ref[i+1:]
	if !validSHA256(dig) {
		return name.Digest{}, fmt.Errorf("%q: the digest must be sha256: and 64 lower-case hex digits, not %q", ref, dig)
	}
	d, err := name.NewDigest(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("%q: %v", ref, err)
	}
	return d, nil
}

func validSHA256(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(h) == 64 && strings.Trim(h, "0123456789abcdef") == ""
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// options are the go-containerregistry options of one operation.
func (c *Client) options(ctx context.Context) []remote.Option {
	kc := c.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	base := c.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(&guard{base: base, insecure: c.Insecure, maxManifest: MaxManifest}),
		// Short retries: a registry that is down must fail a start-up in
		// well under a second, not after ggcr's default 13 s of backoff.
		remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
		remote.WithUserAgent("wasmgate"),
	}
}

// nameOptions are the reference options: with Insecure any registry may
// use plain HTTP (go-containerregistry picks HTTP for loopback ones by
// itself; the guard refuses it for any other host without Insecure).
func (c *Client) nameOptions() []name.Option {
	if c.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// guard is the transport every request goes through: it refuses plain
// HTTP to a host that is not loopback unless insecure (go-containerregistry
// itself falls back to HTTP for RFC 1918 addresses and *.local), which
// covers redirects too, and caps manifest response bodies.
type guard struct {
	base        http.RoundTripper
	insecure    bool
	maxManifest int64
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !g.insecure && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("%s %s: %w (only loopback registries may use HTTP; --insecure allows it)", req.Method, req.URL.Redacted(), ErrPlainHTTP)
	}
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if strings.Contains(req.URL.Path, "/manifests/") && resp.Body != nil {
		resp.Body = &capped{ReadCloser: resp.Body, left: g.maxManifest}
	}
	return resp, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// capped fails a read past its limit instead of truncating.
type capped struct {
	io.ReadCloser
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, fmt.Errorf("manifest: %w (limit %d bytes)", ErrTooLarge, MaxManifest)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, fmt.Errorf("manifest: %w (limit %d bytes)", ErrTooLarge, MaxManifest)
	}
	return n, err
}

// ociManifest is the part of an OCI image manifest we read.
type ociManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// artifact is a verified artifact: its manifest and blobs, each checked
// against its digest.
type artifact struct {
	Digest   string // of the manifest
	Manifest ociManifest
	Raw      []byte
	Config   []byte
	Layers   [][]byte
}

// fetch returns the artifact ref pins, from the cache when a complete and
// intact copy is there, else from the registry (then cached). check
// refuses an artifact of the wrong kind before its layers are fetched.
func (c *Client) fetch(ctx context.Context, ref name.Digest, check func(*ociManifest) error) (*artifact, error) {
	want := ref.DigestStr()
	if a, err := c.fromCache(want, check); err == nil {
		return a, nil
	} else if !errors.Is(err, errNotCached) {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	opts := c.options(ctx)
	ref, err := name.NewDigest(ref.String(), c.nameOptions()...)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		if strings.Contains(err.Error(), "does not match requested digest") {
			// go-containerregistry's own check of the manifest's digest.
			return nil, fmt.Errorf("%s: manifest: %w: %v", ref, ErrDigest, err)
		}
		return nil, fmt.Errorf("%s: not in the cache, and from the registry: %w", ref, err)
	}
	if got := digestOf(desc.Manifest); got != want {
		return nil, fmt.Errorf("%s: manifest: %w: the registry sent %s", ref, ErrDigest, got)
	}
	a, err := parseArtifact(want, desc.Manifest, check)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	fetchBlob := func(d v1.Descriptor, limit int64) ([]byte, error) {
		if d.Size > limit {
			return nil, fmt.Errorf("%s: blob %s is %d bytes: %w (limit %d bytes; docs/distribution.md#limits)", ref, d.Digest, d.Size, ErrTooLarge, limit)
		}
		l, err := remote.Layer(ref.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: blob %s: %w", ref, d.Digest, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("%s: blob %s: %w", ref, d.Digest, err)
		}
		defer rc.Close()
		// At most the size the manifest gives (itself within the limit):
		// a blob that is larger fails the hash below.
		b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
		if int64(len(b)) > d.Size {
			return nil, fmt.Errorf("%s: blob %s: %w: larger than the %d bytes the manifest says", ref, d.Digest, ErrDigest, d.Size)
		}
		if got := digestOf(b); got != d.Digest.String() {
			// Checked before the read error: go-containerregistry's own
			// verification fails the read of a tampered blob too.
			return nil, fmt.Errorf("%s: blob %s: %w: its content hashes to %s", ref, d.Digest, ErrDigest, got)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: blob %s: %w", ref, d.Digest, err)
		}
		return b, nil
	}
	if a.Config, err = fetchBlob(a.Manifest.Config, MaxManifest); err != nil {
		return nil, err
	}
	for _, d := range a.Manifest.Layers {
		b, err := fetchBlob(d, c.maxLayer())
		if err != nil {
			return nil, err
		}
		a.Layers = append(a.Layers, b)
	}
	c.store(a)
	return a, nil
}

// parseArtifact decodes and checks an OCI image manifest already verified
// against digest.
func parseArtifact(digest string, raw []byte, check func(*ociManifest) error) (*artifact, error) {
	a := &artifact{Digest: digest, Raw: raw}
	if err := json.Unmarshal(raw, &a.Manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w: %v", ErrLayout, err)
	}
	m := &a.Manifest
	if m.SchemaVersion != 2 || (m.MediaType != "" && m.MediaType != ManifestMediaType) {
		return nil, fmt.Errorf("%w: want an OCI image manifest (%s), got media type %q schema %d", ErrLayout, ManifestMediaType, m.MediaType, m.SchemaVersion)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if d.Digest.Algorithm != "sha256" || !validSHA256(d.Digest.String()) || d.Size < 0 {
			return nil, fmt.Errorf("%w: descriptor %q: want a sha256 digest and a size", ErrLayout, d.Digest)
		}
	}
	if err := check(m); err != nil {
		return nil, err
	}
	return a, nil
}

// checkWasm accepts exactly the CNCF wasm artifact: the wasm config and
// one application/wasm layer.
func checkWasm(m *ociManifest) error {
	if m.Config.MediaType != types.MediaType(WasmConfigMediaType) {
		return fmt.Errorf("%w: config media type is %q, want %q (a wasm plugin artifact; push one with `wasmgate plugin push`)", ErrLayout, m.Config.MediaType, WasmConfigMediaType)
	}
	if len(m.Layers) != 1 {
		return fmt.Errorf("%w: %d layers, a wasm artifact has exactly one", ErrLayout, len(m.Layers))
	}
	if m.Layers[0].MediaType != WasmLayerMediaType {
		return fmt.Errorf("%w: layer media type is %q, want %q: not a wasm module", ErrLayout, m.Layers[0].MediaType, WasmLayerMediaType)
	}
	return nil
}

// PullWasm returns the module of the wasm artifact that ref pins
// (REGISTRY/REPO@sha256:...), verified, and caches it. The module must
// start with the wasm magic bytes.
func (c *Client) PullWasm(ctx context.Context, ref string) ([]byte, error) {
	d, err := ParsePinned(ref)
	if err != nil {
		return nil, err
	}
	a, err := c.fetch(ctx, d, checkWasm)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(a.Layers[0], []byte("\x00asm")) {
		return nil, fmt.Errorf("%s: %w: the layer is not a wasm module (no \\0asm header)", ref, ErrLayout)
	}
	return a.Layers[0], nil
}

// Resolve returns ref pinned: REGISTRY/REPO@sha256:DIGEST of the manifest
// the registry serves for ref now (a tag or a digest), after checking that
// it is a wasm plugin or a wasmgate policy artifact.
func (c *Client) Resolve(ctx context.Context, ref string) (string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	r, err := name.ParseReference(ref, c.nameOptions()...)
	if err != nil {
		return "", fmt.Errorf("%q: %v", ref, err)
	}
	desc, err := remote.Get(r, c.options(ctx)...)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	got := digestOf(desc.Manifest)
	if d, ok := r.(name.Digest); ok && d.DigestStr() != got {
		return "", fmt.Errorf("%s: manifest: %w: the registry sent %s", ref, ErrDigest, got)
	}
	if _, err := parseArtifact(got, desc.Manifest, func(m *ociManifest) error {
		if checkWasm(m) == nil || checkPolicy(m) == nil {
			return nil
		}
		return fmt.Errorf("%w: config media type %q is neither a wasm plugin (%s) nor a wasmgate policy (%s)", ErrLayout, m.Config.MediaType, WasmConfigMediaType, PolicyConfigMediaType)
	}); err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	return r.Context().Name() + "@" + got, nil
}

// rawManifest is a manifest to push (remote.Taggable).
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return ManifestMediaType, nil }

// push uploads config and layers, then the manifest under ref (a tag or
// a repository: then only by digest), and returns the manifest's digest.
// Blobs and manifest go into the cache too.
func (c *Client) push(ctx context.Context, ref string, config blob, layers []blob, annotations map[string]string) (string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	r, err := name.NewTag(ref, c.nameOptions()...)
	if err != nil || strings.Contains(ref, "@") {
		return "", fmt.Errorf("%q: push to a tag, REGISTRY/REPO:TAG (without a digest)", ref)
	}
	opts := c.options(ctx)
	m := ociManifest{SchemaVersion: 2, MediaType: ManifestMediaType, Config: config.descriptor(), Annotations: annotations}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.descriptor())
	}
	for _, l := range append([]blob{config}, layers...) {
		if err := remote.WriteLayer(r.Context(), static.NewLayer(l.data, types.MediaType(l.mediaType)), opts...); err != nil {
			return "", fmt.Errorf("%s: uploading %s: %w", ref, l.descriptor().Digest, err)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	dig := digestOf(raw)
	if err := remote.Put(r, rawManifest(raw), opts...); err != nil {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	a := &artifact{Digest: dig, Manifest: m, Raw: raw, Config: config.data}
	for _, l := range layers {
		a.Layers = append(a.Layers, l.data)
	}
	c.store(a)
	return dig, nil
}

// PushWasm pushes module as a wasm artifact to ref (REGISTRY/REPO:TAG) and
// returns its digest, "sha256:...". The same module always gives the same
// digest: the config's created time is fixed at the Unix epoch.
func (c *Client) PushWasm(ctx context.Context, module []byte, ref string) (string, error) {
	if !bytes.HasPrefix(module, []byte("\x00asm")) {
		return "", fmt.Errorf("%w: not a wasm module (no \\0asm header)", ErrLayout)
	}
	if int64(len(module)) > c.maxLayer() {
		return "", fmt.Errorf("module is %d bytes: %w (limit %d bytes; --max-size raises it)", len(module), ErrTooLarge, c.maxLayer())
	}
	layer := blob{mediaType: WasmLayerMediaType, data: module}
	cfg, err := json.Marshal(wasmConfig{
		Created:      "1970-01-01T00:00:00Z",
		Architecture: "wasm",
		OS:           "wasip1",
		LayerDigests: []string{layer.descriptor().Digest.String()},
	})
	if err != nil {
		return "", err
	}
	return c.push(ctx, ref, blob{mediaType: WasmConfigMediaType, data: cfg}, []blob{layer}, nil)
}

// wasmConfig is the config of a CNCF wasm artifact.
type wasmConfig struct {
	Created      string   `json:"created"`
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	LayerDigests []string `json:"layerDigests"`
}
