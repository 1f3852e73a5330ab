//go:build race

package builtin

func init() { raceEnabled = true }
