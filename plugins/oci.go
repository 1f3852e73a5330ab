package plugins

import (
	"context"
	"errors"

	"github.com/wasmgate/wasmgate/internal/oci"
)

// pullOCI fetches the module of a `[[plugins]] oci` reference. It is a
// variable so that tests can count pulls; it uses the user cache and the
// docker credentials, and plain HTTP only for loopback registries
// (docs/distribution.md).
var pullOCI = func(ctx context.Context, ref string) ([]byte, error) {
	return (&oci.Client{}).PullWasm(ctx, ref)
}

// oci validates `oci = "REGISTRY/REPO@sha256:DIGEST"` and pulls the module
// (from the cache when it is there), verified against the digest.
func (v *validator) oci(key string, x any, t map[string]any) (string, []byte) {
	if _, ok := t["sha256"]; ok {
		v.add(key+".sha256", "an oci plugin is pinned by the digest in its reference; remove sha256")
	}
	ref, ok := v.str(key+".oci", x)
	if !ok {
		return "", nil
	}
	if _, err := oci.ParsePinned(ref); err != nil {
		if errors.Is(err, oci.ErrNotPinned) {
			v.add(key+".oci", "%q is not pinned by digest; run `wasmgate plugin resolve %s` and write the REF@sha256:DIGEST it prints", ref, ref)
		} else {
			v.add(key+".oci", "%v", err)
		}
		return ref, nil
	}
	b, err := pullOCI(context.Background(), ref)
	if err != nil {
		v.add(key+".oci", "cannot pull plugin: %v", err)
		return ref, nil
	}
	return ref, b
}
