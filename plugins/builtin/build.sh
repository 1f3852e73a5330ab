#!/bin/sh
# Rebuilds the module of built-in policy plugins (./bundle) into
# DIR/builtins.wasm (default DIR: this directory), reproducibly: same Go
# version + same sources = same bytes. The Go version is pinned here
# (GOTOOLCHAIN): with any other local Go, the go command fetches this one
# from the module proxy, so the committed bytes can be rebuilt anywhere. The test in this package runs it into
# a temporary directory and compares with the committed file. Run through
# `go generate ./plugins/builtin`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$here/../.."
GOTOOLCHAIN=go1.26.8 CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm GOFLAGS= GOEXPERIMENT= \
	go build -buildmode=c-shared -trimpath -buildvcs=false \
	-ldflags='-s -w -buildid=' -o "$out/builtins.wasm" ./plugins/builtin/bundle
