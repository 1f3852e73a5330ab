package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blob is content to push, with its media type and annotations.
type blob struct {
	mediaType   string
	data        []byte
	annotations map[string]string
}

func (b blob) descriptor() v1.Descriptor {
	h, _ := v1.NewHash(digestOf(b.data))
	return v1.Descriptor{MediaType: types.MediaType(b.mediaType), Size: int64(len(b.data)), Digest: h, Annotations: b.annotations}
}

// readChunk is the unit in which a cached blob is read and hashed.
const readChunk = 256 << 10

// errNotCached: the cache has no complete, intact copy; fetch it.
var errNotCached = errors.New("not cached")

// The cache is content-addressed: CACHE/blobs/sha256/HEX holds the blob
// (manifest, config or layer) whose sha256 is HEX. A blob is written to a
// temporary file and renamed into place only after it was verified, and is
// hashed again on every read: an entry that does not match its name is
// removed and the artifact fetched again.
func (c *Client) blobPath(digest string) string {
	dir := c.cacheDir()
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// readBlob returns the cached blob named digest, verified, or errNotCached
// (absent, unreadable, too large or corrupted: a corrupted one is removed).
func (c *Client) readBlob(digest string, limit int64) ([]byte, error) {
	p := c.blobPath(digest)
	if p == "" {
		return nil, errNotCached
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, errNotCached
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() > limit {
		return nil, errNotCached
	}
	// One allocation of the size the file has (a file that grew since
	// Stat fails the hash), read and hashed in chunks that stay in the
	// CPU cache between the two.
	b := make([]byte, st.Size())
	h := sha256.New()
	for off := 0; off < len(b); off += readChunk {
		chunk := b[off:min(off+readChunk, len(b))]
		if _, err := io.ReadFull(f, chunk); err != nil {
			return nil, errNotCached
		}
		h.Write(chunk)
	}
	if "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
		os.Remove(p) // corrupted: fetched again below
		return nil, errNotCached
	}
	return b, nil
}

// fromCache assembles the artifact named digest from cached blobs.
func (c *Client) fromCache(digest string, check func(*ociManifest) error) (*artifact, error) {
	raw, err := c.readBlob(digest, MaxManifest)
	if err != nil {
		return nil, err
	}
	a, err := parseArtifact(digest, raw, check)
	if err != nil {
		// The content is the pinned one: it is the wrong kind wherever
		// it comes from.
		return nil, err
	}
	if a.Config, err = c.readBlob(a.Manifest.Config.Digest.String(), MaxManifest); err != nil {
		return nil, err
	}
	for _, d := range a.Manifest.Layers {
		b, err := c.readBlob(d.Digest.String(), MaxCachedBlob)
		if err != nil {
			return nil, err
		}
		a.Layers = append(a.Layers, b)
	}
	return a, nil
}

// store caches a verified artifact's blobs, the manifest last (an entry is
// complete once its manifest is there). Failures only cost a later fetch.
func (c *Client) store(a *artifact) {
	if c.blobPath(a.Digest) == "" {
		return
	}
	c.writeBlob(digestOf(a.Config), a.Config)
	for _, l := range a.Layers {
		c.writeBlob(digestOf(l), l)
	}
	c.writeBlob(a.Digest, a.Raw)
}

func (c *Client) writeBlob(digest string, b []byte) {
	p := c.blobPath(digest)
	if _, err := os.Stat(p); err == nil {
		return
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// CachedPath is where the cache keeps the blob named digest ("" without a
// cache), for tests and `wasmgate plugin pull` to report.
func (c *Client) CachedPath(digest string) string {
	return c.blobPath(digest)
}
