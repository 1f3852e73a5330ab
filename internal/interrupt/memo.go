package interrupt

import (
	"crypto/sha256"
	"sync"
)

// memoSize bounds the results Memo keeps (plugins of a manifest, reloaded).
const memoSize = 16

var memo struct {
	sync.Mutex
	m     map[[sha256.Size]byte][]byte
	order [][sha256.Size]byte
}

// Memo is Instrument with the last few results kept in memory, keyed by
// the input's SHA-256: a process that loads the same plugins again (a
// reload, every instance pool of a test suite) rewrites each once. The
// result is shared and must not be modified. Errors are not kept.
func Memo(wasm []byte) ([]byte, error) {
	key := sha256.Sum256(wasm)
	memo.Lock()
	out, ok := memo.m[key]
	memo.Unlock()
	if ok {
		return out, nil
	}
	out, err := Instrument(wasm)
	if err != nil {
		return nil, err
	}
	memo.Lock()
	defer memo.Unlock()
	if memo.m == nil {
		memo.m = map[[sha256.Size]byte][]byte{}
	}
	if _, ok := memo.m[key]; !ok {
		if len(memo.order) == memoSize {
			delete(memo.m, memo.order[0])
			memo.order = memo.order[1:]
		}
		memo.m[key] = out
		memo.order = append(memo.order, key)
	}
	return out, nil
}
