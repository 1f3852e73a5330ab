//go:build !linux

package host

import (
	"errors"
	"os"
)

// errNowaitUnsupported is returned by readNowait: without Linux's
// RWF_NOWAIT, stdin is always read with a readiness probe first.
var errNowaitUnsupported = errors.New("RWF_NOWAIT not supported")

func nowaitCapable(*os.File) bool { return false }

func readNowait(int, [][]byte) (int, error) { return 0, errNowaitUnsupported }
