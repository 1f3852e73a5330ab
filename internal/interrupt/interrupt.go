// Package interrupt makes untrusted wasm code stoppable at a cost of about
// two nanoseconds per loop iteration (a tight loop runs 1.4x slower,
// BenchmarkLoop in host/), instead of the ~100 ns that wazero's
// close-on-context-done charges (8x on the same loop).
//
// Compiled wasm cannot be preempted, so a runaway guest or plugin must
// check for itself whether it has been asked to stop. wazero v1.12's
// close-on-context-done compiles that check as a call out of the JIT code
// into Go at every loop header (every back-edge; Go-compiled wasm jumps
// through a loop for every branch), and starts a watchdog goroutine on every
// top-level call. Measured here that made a tight loop ~8x slower and a
// policy decision ~5x slower.
//
// Instrument rewrites a module instead. It adds two mutable i32 globals,
// the flag (exported as ExportName, written only by the host) and a budget
// (written only by the module), one function $slow, and at the entry of
// every function and the header of every loop:
//
//	budget = budget - 1
//	if budget == 0 { call $slow }
//
// That is a load, a subtract, a store and a not-taken branch in the
// compiled code. $slow refills the budget (4096), traps with "unreachable"
// if the flag is raised, and executes memory.grow 0, which wazero
// implements as a return into Go: JIT code is never preempted by Go's
// scheduler, so without that exit a spinning module would hold its thread
// forever and freeze the whole process at the next garbage collection
// (TestGCWhileSpinning), including the timer that should raise the flag.
// A module without a memory gets an empty one for that purpose.
//
// No run of wasm code can avoid both loop headers and function entries for
// long: straight-line code is bounded by the body's size, and recursion
// enters functions. Flag.Raise may be called from any goroutine; the code
// traps within 4096 checks and the caller, who knows it raised the flag,
// reports a timeout or cancellation instead of a trap.
//
// The rewriting is exact (sizes re-encoded, nothing else moved) and
// refuses, rather than guesses, on anything it does not understand: an
// opcode outside the feature set wazero enables by default, a malformed
// section, or a module that already names the new global's index (which
// would let it clear the flag). Callers then fall back to wazero's
// close-on-context-done. DWARF sections are dropped because their code
// offsets would be stale; the name section stays (function indices do not
// change), so stack traces keep their function names.
package interrupt

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
)

// ExportName is the export under which an instrumented module exposes its
// flag.
const ExportName = "wasmgate.interrupt"

// ErrUnsupported is matched (errors.Is) by Instrument's error when the
// module uses something the rewriter does not handle; the caller should
// fall back to wazero's close-on-context-done.
var ErrUnsupported = errors.New("interrupt: cannot instrument module")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Flag is an instantiated module's stop flag. The zero Flag is inert.
// Raise may be called from any goroutine.
type Flag struct {
	g      api.MutableGlobal
	raised atomic.Bool
}

// Find returns the flag of an instance of an instrumented module, or nil
// when the module was not instrumented.
func Find(mod api.Module) *Flag {
	g, ok := mod.ExportedGlobal(ExportName).(api.MutableGlobal)
	if !ok || g.Type() != api.ValueTypeI32 {
		return nil
	}
	return &Flag{g: g}
}

// Raise asks the module's code to stop: it traps at its next function
// entry or loop header. It is idempotent and safe from any goroutine; the
// write is a plain store that the compiled code reads on its next check.
func (f *Flag) Raise() {
	if f == nil || f.raised.Swap(true) {
		return
	}
	f.g.Set(1)
}

// Raised reports whether Raise was called.
func (f *Flag) Raised() bool { return f != nil && f.raised.Load() }

// isDebugSection reports custom sections whose contents are code offsets.
func isDebugSection(name string) bool {
	return strings.HasPrefix(name, ".debug_") || name == "sourceMappingURL"
}
