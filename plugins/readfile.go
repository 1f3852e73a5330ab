package plugins

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// MaxGuestFile bounds the guest module `wasmgate run` reads
// (docs/manifest.md, "How a manifest is read").
const MaxGuestFile = 1 << 30

// ReadRegularFile reads the regular file at path, at most limit bytes. The
// file is opened once, without blocking (a FIFO with no writer would
// otherwise hang the open), its type is checked on the open descriptor,
// and that same descriptor is read: a FIFO, device or directory is refused
// before any read, and swapping the path for another file between the
// check and the read changes nothing. A file that grows past limit while
// it is read is refused too.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fileKind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	// Room for the whole file and for the read that sees EOF, so that
	// nothing is reallocated unless the file grew.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return buf.Bytes(), nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}
