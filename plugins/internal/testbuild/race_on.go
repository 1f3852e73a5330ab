//go:build race

package testbuild

// Race is true when the test binary runs under the race detector; tests
// then run plugins in wazero's interpreter, since compiling a Go plugin
// with an instrumented compiler takes minutes.
const Race = true
