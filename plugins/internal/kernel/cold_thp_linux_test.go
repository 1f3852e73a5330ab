package kernel

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkHugePageWalk asks whether huge pages would make a cold decision
// cheaper on this machine: a dependent walk (each load's address comes
// from the previous one, as code and pointer-chasing data are) over 2048
// random 4 KiB pages of a 64 MiB, 2 MiB-aligned mapping, after evicting
// with a page-strided pass over 256 MiB, in 4 KiB pages ("4k") and after
// MADV_HUGEPAGE + MADV_COLLAPSE ("thp", skipped when the kernel gives no
// huge page: thp-KiB is what /proc/self/smaps_rollup reports). Reported:
// the median walk per page.
//
//	go test -run XXX -bench HugePageWalk -benchtime 20x ./plugins/internal/kernel/
func BenchmarkHugePageWalk(b *testing.B) {
	const size, pages = 64 << 20, 2048
	junk := make([]byte, 256<<20)
	for _, mode := range []string{"4k", "thp"} {
		b.Run(mode, func(b *testing.B) {
			raw, err := unix.Mmap(-1, 0, size+2<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Munmap(raw)
			p := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
			off := int((2<<20 - p%(2<<20)) % (2 << 20))
			m := raw[off : off+size]
			if mode == "thp" {
				if err := unix.Madvise(m, unix.MADV_HUGEPAGE); err != nil {
					b.Skip("MADV_HUGEPAGE:", err)
				}
			} else {
				_ = unix.Madvise(m, unix.MADV_NOHUGEPAGE)
			}
			for i := 0; i < size; i += 4096 {
				m[i] = 1
			}
			if mode == "thp" {
				_ = unix.Madvise(m, 25) // MADV_COLLAPSE (Linux 6.1); best effort
				kb := anonHugeKiB()
				if kb < size>>10 {
					b.Skipf("only %d KiB in huge pages", kb)
				}
				b.ReportMetric(float64(kb), "thp-KiB")
			}
			order := make([]int, 0, size/4096)
			for i := 0; i < size; i += 4096 {
				order = append(order, i)
			}
			rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			order = order[:pages]
			for k, i := range order {
				*(*uint32)(unsafe.Pointer(&m[i+64])) = uint32(order[(k+1)%pages])
			}
			var ds []time.Duration
			var sink byte
			for b.Loop() {
				sink += thrash(junk, 4096)
				start := time.Now()
				j := order[0]
				for range pages {
					j = int(*(*uint32)(unsafe.Pointer(&m[j+64])))
				}
				ds = append(ds, time.Since(start))
				sink += byte(j)
			}
			_ = sink
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds())/pages, "ns/page")
		})
	}
}

func anonHugeKiB() int {
	s, _ := os.ReadFile("/proc/self/smaps_rollup")
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, "AnonHugePages:"); ok {
			var kb int
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) {
				kb = kb*10 + int(c-'0')
			}
			return kb
		}
	}
	return 0
}
