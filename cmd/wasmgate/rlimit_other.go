//go:build !unix

package main

func getNofile() (soft, hard uint64, ok bool) { return 0, 0, false }

func setNofile(soft, hard uint64) error { return nil }
