//go:build !linux

package main

import "fmt"

// pinTo is Linux-only (pin_linux.go).
func pinTo(cpu string) error {
	return fmt.Errorf("native-echo: pinning to CPU %s needs Linux", cpu)
}
