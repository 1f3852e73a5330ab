// Package precompile fills a wazero on-disk compilation cache for the
// socket tests; see main_test.go. It has no API.
package precompile
