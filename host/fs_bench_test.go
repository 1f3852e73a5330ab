package host

import (
	"testing"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// BenchmarkFileCalls measures single preview 1 calls on a preopen's files,
// without a guest: the per-call host cost inside BenchmarkSmallWrites100k
// (fd_write of 64 bytes to a regular file), opening and closing a file
// (path_open + fd_close), and path_filestat_get with SYMLINK_FOLLOW (what
// os.Stat does in a Go guest).
func BenchmarkFileCalls(b *testing.B) {
	h := newHarness(b, nil)
	fd, e := h.open("out", wasi.OflagCreat|wasi.OflagTrunc, wasi.RightFdWrite|wasi.RightFdRead|wasi.RightFdSeek, 1)
	if e != 0 {
		b.Fatal(e)
	}
	h.put(100, []byte{0, 16, 0, 0, 64, 0, 0, 0}) // iovec: buf 4096, len 64
	h.put(1000, []byte("out"))
	for _, c := range []struct {
		name  string
		calls [][]uint64 // function name index 0 as a uint64 tag, then args
		fn    []string
	}{
		{"fd_write_64B", [][]uint64{{uint64(fd), 100, 1, 200}}, []string{"fd_write"}},
		{"fd_pread_64B", [][]uint64{{uint64(fd), 100, 1, 0, 200}}, []string{"fd_pread"}},
		{"path_open+fd_close", [][]uint64{{3, 1, 1000, 3, 0, wasi.RightFdRead, 0, 0, 300}, nil}, []string{"path_open", "fd_close"}},
		{"path_filestat_get", [][]uint64{{3, 1, 1000, 3, 2000}}, []string{"path_filestat_get"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			fns := make([]hostFunc, len(c.fn))
			for i, n := range c.fn {
				fns[i] = h.fns[n]
			}
			st := make([]uint64, 10)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for j, f := range fns {
					args := c.calls[j]
					if args == nil { // fd_close of what path_open returned
						args = []uint64{uint64(h.u32(300))}
					}
					copy(st, args)
					if e := f.fn(h.ctx, h.m, st); e != 0 {
						b.Fatal(c.fn[j], e)
					}
				}
			}
		})
	}
}
