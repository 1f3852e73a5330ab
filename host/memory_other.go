//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || loong64))

package host

import "github.com/tetratelabs/wazero/experimental"

func mmapAllocator() experimental.MemoryAllocator { return nil }
