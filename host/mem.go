package host

import (
	"encoding/binary"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// Guest memory helpers. Every access is bounds-checked; a pointer or length
// outside memory yields wasi.EFAULT, never a host panic. Offsets are taken
// as uint32 (as the guest passed them) and sums are done in uint64 so that
// ptr+len cannot wrap.

// maxIovecs bounds iovec arrays (IOV_MAX on Linux), so a guest cannot make
// the host allocate a huge slice header array.
const maxIovecs = 1024

// memRead returns a view of guest memory [ptr, ptr+n).
func memRead(m api.Memory, ptr, n uint32) ([]byte, error) {
	if uint64(ptr)+uint64(n) > uint64(m.Size()) {
		return nil, wasi.EFAULT
	}
	b, ok := m.Read(ptr, n)
	if !ok {
		return nil, wasi.EFAULT
	}
	return b, nil
}

func memPutU32(m api.Memory, ptr, v uint32) error {
	if !m.WriteUint32Le(ptr, v) {
		return wasi.EFAULT
	}
	return nil
}

func memPutU64(m api.Memory, ptr uint32, v uint64) error {
	if !m.WriteUint64Le(ptr, v) {
		return wasi.EFAULT
	}
	return nil
}

// memString reads a guest string (not NUL-terminated) of n bytes.
func memString(m api.Memory, ptr, n uint32) (string, error) {
	b, err := memRead(m, ptr, n)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// iovecs decodes an (i)ovec array into views of guest memory. scratch is
// reused when large enough, to avoid allocating on the hot path.
func iovecs(m api.Memory, ptr, count uint32, scratch [][]byte) ([][]byte, error) {
	if count > maxIovecs {
		return nil, wasi.EINVAL
	}
	raw, err := memRead(m, ptr, count*8)
	if err != nil {
		return nil, err
	}
	bufs := scratch[:0]
	for i := uint32(0); i < count; i++ {
		p := binary.LittleEndian.Uint32(raw[i*8:])
		l := binary.LittleEndian.Uint32(raw[i*8+4:])
		b, err := memRead(m, p, l)
		if err != nil {
			return nil, err
		}
		bufs = append(bufs, b)
	}
	return bufs, nil
}
