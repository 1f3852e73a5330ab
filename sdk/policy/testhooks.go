package policy

import "sync"

// Test hooks, in both builds so that a plugin's tests compile (and vet)
// for GOOS=wasip1 as well as natively.

var (
	testMu     sync.Mutex
	testCfg    []byte
	testCfgSet bool
	testLog    func(LogLevel, string)
	testValues map[string]string
)

// SetConfigValue sets what ConfigValue(key) returns, as a host would set
// an Extism config key; an empty value removes it. For tests: in a wasm
// build it overrides the host's value.
func SetConfigValue(key, value string) {
	testMu.Lock()
	defer testMu.Unlock()
	if value == "" {
		delete(testValues, key)
		return
	}
	if testValues == nil {
		testValues = map[string]string{}
	}
	testValues[key] = value
}

func testConfigValue(key string) (string, bool) {
	testMu.Lock()
	defer testMu.Unlock()
	v, ok := testValues[key]
	return v, ok
}

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
