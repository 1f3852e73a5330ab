package allowlist

import (
	"testing"

	"github.com/wasmgate/wasmgate/internal/ruletable/ruletabletest"
)

// TestShortcutSameAsDecide: the shortcut in wasm (the table's Decide, see
// internal/policyhook) gives decide's verdicts.
func TestShortcutSameAsDecide(t *testing.T) {
	pl := mustAllowlist(t, ruletabletest.Rules...)
	ruletabletest.SameAsDecide(t, pl.table, pl.decide)
}
