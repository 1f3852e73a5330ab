//go:build !unix

package plugins

// openNonblock: there are no FIFOs to open on these systems.
const openNonblock = 0
