package kernel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

const envModule = "extism:host/env"

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type sig struct {
	params, results []api.ValueType
	fn              api.GoModuleFunc
}

// envSigs is every import of the Extism kernel and host module that go-sdk
// v1.7.1 provides, with our implementation. A pointer is an offset into the
// instance's Go-side kernel memory (kmem). Out-of-range accesses trap: the
// real kernel would read garbage or silently drop the write, and a plugin
// that does that cannot be trusted with a verdict.
var envSigs = map[string]sig{
	"input_length":  {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = instFrom(ctx).input.n }},
	"input_offset":  {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = instFrom(ctx).input.off }},
	"output_length": {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = instFrom(ctx).output.n }},
	"output_offset": {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = instFrom(ctx).output.off }},
	"error_get":     {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = instFrom(ctx).errOff }},
	"memory_bytes": {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		s[0] = uint64(instFrom(ctx).mem.limit)
	}},
	"input_load_u8": {[]api.ValueType{i64}, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		if s[0] >= i.input.n {
			panic(errOOB("input_load_u8"))
		}
		s[0] = uint64(i.mem.buf[i.input.off+s[0]])
	}},
	"input_load_u64": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		if i.input.n < 8 || s[0] > i.input.n-8 {
			panic(errOOB("input_load_u64"))
		}
		s[0] = binary.LittleEndian.Uint64(i.mem.buf[i.input.off+s[0]:])
	}},
	"alloc": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		s[0] = instFrom(ctx).mem.alloc(s[0])
	}},
	"free": {[]api.ValueType{i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		instFrom(ctx).mem.free(s[0])
	}},
	"length": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		s[0] = instFrom(ctx).mem.length(s[0])
	}},
	"length_unsafe": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		s[0] = instFrom(ctx).mem.length(s[0])
	}},
	"load_u8": {[]api.ValueType{i64}, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, s []uint64) {
		b, ok := instFrom(ctx).mem.span(s[0], 1)
		if !ok {
			panic(errOOB("load_u8"))
		}
		s[0] = uint64(b[0])
	}},
	"load_u64": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		b, ok := instFrom(ctx).mem.span(s[0], 8)
		if !ok {
			panic(errOOB("load_u64"))
		}
		s[0] = binary.LittleEndian.Uint64(b)
	}},
	"store_u8": {[]api.ValueType{i64, i32}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		b, ok := instFrom(ctx).mem.span(s[0], 1)
		if !ok {
			panic(errOOB("store_u8"))
		}
		b[0] = byte(s[1])
	}},
	"store_u64": {[]api.ValueType{i64, i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		b, ok := instFrom(ctx).mem.span(s[0], 8)
		if !ok {
			panic(errOOB("store_u64"))
		}
		binary.LittleEndian.PutUint64(b, s[1])
	}},
	"input_set": {[]api.ValueType{i64, i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		if _, ok := i.mem.span(s[0], s[1]); ok {
			i.input.off, i.input.n = s[0], s[1]
		}
	}},
	"output_set": {[]api.ValueType{i64, i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		switch _, ok := i.mem.span(s[0], s[1]); {
		case s[1] == 0:
			i.output.off, i.output.n, i.outBad = 0, 0, ""
		case s[1] > uint64(i.m.cfg.MaxOutput):
			i.outBad = fmt.Sprintf("output of %d bytes exceeds the %d-byte limit", s[1], i.m.cfg.MaxOutput)
		case !ok:
			i.outBad = "output_set outside kernel memory"
		default:
			i.output.off, i.output.n, i.outBad = s[0], s[1], ""
		}
	}},
	"error_set": {[]api.ValueType{i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		if s[0] == 0 || i.mem.length(s[0]) > 0 {
			i.errOff = s[0]
		} else {
			// An error that points nowhere is still an error.
			p := i.mem.alloc(uint64(len("invalid error_set pointer")))
			if p != 0 {
				copy(i.mem.buf[p:], "invalid error_set pointer")
			}
			i.errOff = p
			if p == 0 {
				panic(errors.New("error_set: invalid pointer"))
			}
		}
	}},
	"reset": {nil, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		i.mem.reset()
		i.input.off, i.input.n, i.output.off, i.output.n, i.errOff = 0, 0, 0, 0, 0
	}},
	"config_get": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		v, ok := i.m.cfg.Config[string(i.mem.bytes(s[0]))]
		if !ok {
			s[0] = 0
			return
		}
		p := i.mem.alloc(uint64(len(v)))
		if p != 0 {
			copy(i.mem.buf[p:], v)
		}
		s[0] = p
	}},
	"var_get": {[]api.ValueType{i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		v, ok := i.vars[string(i.mem.bytes(s[0]))]
		i.mem.free(s[0])
		if !ok || len(v) == 0 {
			s[0] = 0
			return
		}
		p := i.mem.alloc(uint64(len(v)))
		if p != 0 {
			copy(i.mem.buf[p:], v)
		}
		s[0] = p
	}},
	"var_set": {[]api.ValueType{i64, i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		k := string(i.mem.bytes(s[0]))
		if i.vars == nil {
			i.vars = map[string][]byte{}
		}
		if old, ok := i.vars[k]; ok {
			i.varSize -= len(k) + len(old)
			delete(i.vars, k)
		}
		if s[1] != 0 {
			v := i.mem.bytes(s[1])
			if i.varSize+len(k)+len(v) > maxVarBytes {
				panic(fmt.Errorf("var_set: plugin variables exceed %d bytes", maxVarBytes))
			}
			i.vars[k] = append([]byte(nil), v...)
			i.varSize += len(k) + len(v)
			i.mem.free(s[1])
		}
		i.mem.free(s[0])
	}},
	"http_request": {[]api.ValueType{i64, i64}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) {
		panic(errors.New("http_request: wasmgate plugins have no network access"))
	}},
	"http_status_code": {nil, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = 0 }},
	"http_headers":     {nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, s []uint64) { s[0] = 0 }},
	"get_log_level": {nil, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, s []uint64) {
		s[0] = uint64(uint32(instFrom(ctx).m.logLevel))
	}},
	"log_trace": logFn(0, slog.LevelDebug-4),
	"log_debug": logFn(1, slog.LevelDebug),
	"log_info":  logFn(2, slog.LevelInfo),
	"log_warn":  logFn(3, slog.LevelWarn),
	"log_error": logFn(4, slog.LevelError),
}

func logFn(level int32, sl slog.Level) sig {
	return sig{[]api.ValueType{i64}, nil, func(ctx context.Context, _ api.Module, s []uint64) {
		i := instFrom(ctx)
		if i.m.logLevel != math.MaxInt32 && level >= i.m.logLevel {
			msg := i.mem.bytes(s[0])
			if len(msg) > 4096 {
				msg = msg[:4096]
			}
			i.m.logger.Log(context.Background(), sl, "plugin log", "plugin", i.m.cfg.Name,
				"msg", strings.ToValidUTF8(string(msg), "?"))
		}
		i.mem.free(s[0])
	}}
}

type errOOB string

func (e errOOB) Error() string { return string(e) + ": offset out of range" }

func instantiateEnv(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(envModule)
	for name, s := range envSigs {
		b.NewFunctionBuilder().WithGoModuleFunction(s.fn, s.params, s.results).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// ProvidesImport reports whether module.name is an import of the Extism
// host (`extism:host/env`, as go-sdk v1.7.1 provides it) or of WASI: what
// an Extism plugin may import on either of wasmgate's engines.
func ProvidesImport(module, name string) bool {
	switch module {
	case "wasi_snapshot_preview1":
		return true
	case envModule:
		_, ok := envSigs[name]
		return ok
	}
	return false
}

// ServesImport reports whether the kernel really serves module.name: every
// Extism import but http_request and the two that read its result, which
// the kernel links only so that such a plugin loads, and which trap or
// answer nothing (docs/plugins.md, "Engines").
func ServesImport(module, name string) bool {
	if module == envModule {
		switch name {
		case "http_request", "http_status_code", "http_headers":
			return false
		}
	}
	return ProvidesImport(module, name)
}
