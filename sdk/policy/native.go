//go:build !wasip1

package policy

// The native build has no Extism host: it exists so that plugin handlers can
// be unit-tested with plain `go test`, and so that the host can import the
// wire types. Config comes from SetConfig and logs go to SetLogOutput.

func configJSON() []byte {
	raw, _ := testConfig()
	return raw
}

func hostConfigValue(string) (string, bool) { return "", false }

// Log sends msg to the host's log at level. In a native build it goes to the
// function set with SetLogOutput, if any.
func Log(level LogLevel, msg string) {
	if f := testLogOutput(); f != nil {
		f(level, msg)
	}
}

// isWasm enables caches that are only safe in a plugin, where calls never
// run concurrently; the host encodes from many goroutines.
const isWasm = false
