package policy

import "sync"

// Test hooks, in both builds so that a plugin's tests compile (and vet)
// for GOOS=wasip1 as well as natively.

var (
	testMu     sync.Mutex
	testCfg    []byte
	testCfgSet bool
	testLog    func(LogLevel, string)
)

// SetConfig sets the JSON that Config decodes, as the host would hand over
// the manifest's [plugins.config] table; nil means no config. It is meant
// for tests: in a wasm build it overrides the host's config.
func SetConfig(configJSON []byte) {
	testMu.Lock()
	defer testMu.Unlock()
	testCfg = append([]byte(nil), configJSON...)
	testCfgSet = configJSON != nil
}

// SetLogOutput directs Log to f instead of the host; nil restores the
// default (the host's log in a wasm build, nowhere natively). For tests.
func SetLogOutput(f func(level LogLevel, msg string)) {
	testMu.Lock()
	defer testMu.Unlock()
	testLog = f
}

func testConfig() ([]byte, bool) {
	testMu.Lock()
	defer testMu.Unlock()
	return testCfg, testCfgSet
}

func testLogOutput() func(LogLevel, string) {
	testMu.Lock()
	defer testMu.Unlock()
	return testLog
}
