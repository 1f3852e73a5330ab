//go:build wasip1

package main

import (
	"os"
	"strconv"
	"strings"
	"unsafe"
)

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u64
func inputLoadU64(uint64) uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(uint64) uint32

//go:wasmimport extism:host/env alloc
func alloc(uint64) uint64

//go:wasmimport extism:host/env length
func length(uint64) uint64

//go:wasmimport extism:host/env load_u8
func loadU8(uint64) uint32

//go:wasmimport extism:host/env store_u8
func storeU8(uint64, uint32)

//go:wasmimport extism:host/env store_u64
func storeU64(uint64, uint64)

//go:wasmimport extism:host/env output_set
func outputSet(uint64, uint64)

//go:wasmimport extism:host/env error_set
func errorSet(uint64)

//go:wasmimport extism:host/env config_get
func configGet(uint64) uint64

//go:wasmimport extism:host/env http_request
func httpRequest(uint64, uint64) uint64

//go:wasmimport extism:host/env log_debug
func logDebug(uint64)

//go:wasmimport extism:host/env log_info
func logInfo(uint64)

//go:wasmimport extism:host/env log_warn
func logWarn(uint64)

//go:wasmimport extism:host/env log_error
func logError(uint64)

func input() []byte {
	n := inputLength()
	b := make([]byte, n)
	i := uint64(0)
	for ; i+8 <= n; i += 8 {
		v := inputLoadU64(i)
		*(*uint64)(unsafe.Pointer(&b[i])) = v
	}
	for ; i < n; i++ {
		b[i] = byte(inputLoadU8(i))
	}
	return b
}

func put(b []byte) uint64 {
	p := alloc(uint64(len(b)))
	i := 0
	for ; i+8 <= len(b); i += 8 {
		storeU64(p+uint64(i), *(*uint64)(unsafe.Pointer(&b[i])))
	}
	for ; i < len(b); i++ {
		storeU8(p+uint64(i), uint32(b[i]))
	}
	return p
}

func output(b []byte) { outputSet(put(b), uint64(len(b))) }

// config reads key from the Extism config, or from the JSON object under
// "config" (what wasmgate passes from a manifest's [plugins.config]).
func config(key string) string {
	if v := rawConfig(key); v != "" {
		return v
	}
	return field(rawConfig("config"), key)
}

// field finds "key":"string" or "key":number in flat JSON; enough for a
// test plugin that must stay small (no encoding/json) to compile fast.
func field(js, key string) string {
	i := strings.Index(js, `"`+key+`":`)
	if i < 0 {
		return ""
	}
	v := js[i+len(key)+3:]
	if strings.HasPrefix(v, `"`) {
		end := 1
		for end < len(v) && (v[end] != '"' || v[end-1] == '\\') {
			end++
		}
		if end >= len(v) {
			return ""
		}
		u, err := strconv.Unquote(v[:end+1])
		if err != nil {
			return ""
		}
		return u
	}
	end := strings.IndexAny(v, ",}]")
	if end < 0 {
		return ""
	}
	return v[:end]
}

func rawConfig(key string) string {
	p := configGet(put([]byte(key)))
	if p == 0 {
		return ""
	}
	n := length(p)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(loadU8(p + uint64(i)))
	}
	return string(b)
}

var sink [][]byte

var calls int

//go:wasmexport decide
func decide() int32 {
	calls++
	in := input()
	switch config("behave") {
	case "trap":
		panic("boom")
	case "loop":
		for {
			calls++
		}
	case "alloc":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "garbage":
		output([]byte("this is not json"))
		return 0
	case "huge":
		output(make([]byte, 200<<10))
		return 0
	case "empty":
		output([]byte("{}"))
		return 0
	case "rc":
		return 7
	case "errset":
		errorSet(put([]byte("bad things")))
		return 1
	case "http":
		httpRequest(put([]byte(`{"url":"http://127.0.0.1:1/"}`)), 0)
		return 0
	case "echo":
		output(in)
		return 0
	case "allowall":
		output([]byte(`{"verdict":"allow","reason":"allow all"}`))
		return 0
	case "count":
		// Allows, cacheable for config "ttl" ms, saying how many calls
		// this instance has had and which port it was shown.
		output([]byte(`{"verdict":"allow","reason":"call #` + strconv.Itoa(calls) + ` port ` + field(string(in), "port") +
			`","cache_ttl_ms":` + config("ttl") + `}`))
		return 0
	case "log":
		// One line at each level and on stdout and stderr, then
		// config "lines" more warnings (a plugin logging in a loop).
		logDebug(put([]byte("debug line")))
		logInfo(put([]byte("info line")))
		logWarn(put([]byte("warn line")))
		logError(put([]byte("error line\x1b[31m")))
		os.Stdout.WriteString("stdout line\n")
		os.Stderr.WriteString("stderr line\n")
		n, _ := strconv.Atoi(config("lines"))
		for i := 0; i < n; i++ {
			logWarn(put([]byte("loop " + strconv.Itoa(i))))
		}
		output([]byte(`{"verdict":"allow","reason":"logged"}`))
		return 0
	}
	js := string(in)
	if !strings.HasPrefix(js, `{"op":"`) {
		errorSet(put([]byte("bad request")))
		return 1
	}
	op, port, addr, name := field(js, "op"), field(js, "port"), field(js, "addr"), field(js, "name")
	v := `{"verdict":"abstain"}`
	switch {
	case port == "25":
		v = `{"verdict":"deny","reason":"no smtp"}`
	case port == "443":
		v = `{"verdict":"allow","reason":"https to ` + addr + `","cache_ttl_ms":` + config("ttl") + `0}`
	case op == "dns.lookup" || op == "dns.answer":
		v = `{"verdict":"allow","reason":"` + op + ` ` + name + ` #` + strconv.Itoa(calls) + `"}`
	}
	output([]byte(v))
	return 0
}

//go:wasmexport describe
func describe() int32 {
	output([]byte(config("describe")))
	return 0
}

//go:wasmexport validate
func validate() int32 {
	switch config("behave") {
	case "log":
		logWarn(put([]byte("validate called")))
	case "validateloop":
		for {
			calls++
		}
	}
	if e := config("invalid"); e != "" {
		output([]byte(`{"error":` + strconv.Quote(e) + `}`))
	} else {
		output([]byte(`{}`))
	}
	return 0
}
