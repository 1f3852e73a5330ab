//go:build !linux

package sysfs

// OpenHostDir opens the host directory hostDir as a directory capability.
// Off Linux that is os.Root (OpenRootDir): see its limits.
func OpenHostDir(hostDir string, readOnly bool) (Dir, error) {
	return OpenRootDir(hostDir, readOnly)
}
