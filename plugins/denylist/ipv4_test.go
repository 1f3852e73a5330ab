package denylist

import (
	"testing"

	"github.com/wasmgate/wasmgate/internal/ruletable/ruletabletest"
)

// TestShortcutSameAsDecide: the shortcut in wasm (the table's Decide, see
// internal/policyhook) gives decide's verdicts.
func TestShortcutSameAsDecide(t *testing.T) {
	pl := mustDenylist(t, ruletabletest.Rules...)
	ruletabletest.SameAsDecide(t, pl.table, pl.decide)
}

func mustDenylist(t *testing.T, rules ...string) *denylist {
	t.Helper()
	d, err := newDenylist(config{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
