package plugins

import (
	"strings"
	"testing"
)

// The top-level revoke key: true unless the manifest says false; anything
// but a boolean is a problem naming its line.
func TestManifestRevoke(t *testing.T) {
	for text, want := range map[string]bool{"": true, "revoke = true\n": true, "revoke = false\n": false} {
		m, err := ParseManifestData("p.toml", []byte("default = \"deny\"\n"+text), nil)
		if err != nil || m.Revoke != want {
			t.Errorf("%q: Revoke %v, %v; want %v", text, m != nil && m.Revoke, err, want)
		}
	}
	_, err := ParseManifestData("p.toml", []byte("default = \"deny\"\nrevoke = \"no\"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "p.toml:2: revoke: must be true or false, not a string") {
		t.Errorf("revoke = \"no\": %v", err)
	}
}
