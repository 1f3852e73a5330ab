package main

import (
	"fmt"
	"io"
)

// hostFdReserve is what wasmgate counts for its own descriptors on top of
// the guest's fd limit: plugin and cache files, the audit log, the wake
// eventfd, the descriptors a refused connection holds for a moment.
const hostFdReserve = 256

// nofile reads and sets the process's RLIMIT_NOFILE (soft, hard); tests
// replace it. ok is false where the platform has no such limit.
var nofile = struct {
	get func() (soft, hard uint64, ok bool)
	set func(soft, hard uint64) error
}{getNofile, setNofile}

// raiseFdLimit raises the soft RLIMIT_NOFILE to the hard limit (native
// servers do the same; Go's runtime does it too on Linux, but a wasmgate
// embedded in or started by something else must not depend on that), and
// prints a notice on w when the hard limit is below what a guest with
// maxFds open fds needs, so that a server guest that gets EMFILE early is
// explained (docs/sockets.md, "Limits"). It never fails the run: the guest
// then meets the lower limit as EMFILE.
func raiseFdLimit(maxFds int, w io.Writer) {
	soft, hard, ok := nofile.get()
	if !ok {
		return
	}
	if soft < hard {
		if err := nofile.set(hard, hard); err == nil {
			soft = hard
		}
	}
	need := uint64(maxFds) + hostFdReserve
	if soft < need {
		fmt.Fprintf(w, "wasmgate: notice: the open-file limit is %d (hard limit %d), below the %d that the guest's fd limit (%d, [limits] max_fds) and wasmgate's own need; the guest will get EMFILE (too many open files) sooner. Raise it (ulimit -Hn / LimitNOFILE=) or lower max_fds.\n",
			soft, hard, need, maxFds)
	}
}
