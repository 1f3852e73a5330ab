//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || loong64))

package host

import "github.com/tetratelabs/wazero/experimental"

// allocateMapped returns a Go-heap memory: there is no reservation here.
func allocateMapped(capacity, max uint64) experimental.LinearMemory {
	mem := &heapMemory{buf: make([]byte, 0, capacity), max: max}
	if testHookMemory != nil {
		testHookMemory(mem)
	}
	return mem
}
