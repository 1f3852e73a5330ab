#!/bin/sh
# Rebuilds the built-in policy plugins into DIR (default: this directory),
# reproducibly: same Go version + same sources = same bytes. The test in this
# package runs it into a temporary directory and compares with the committed
# files. Run through `go generate ./plugins/builtin`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$here/../.."
for p in allowlist denylist special-ranges ratelimit; do
	CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm GOFLAGS= GOEXPERIMENT= \
		go build -buildmode=c-shared -trimpath -buildvcs=false \
		-ldflags='-s -w -buildid=' -o "$out/$p.wasm" "./plugins/$p"
done
