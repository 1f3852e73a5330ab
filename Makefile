# wasmgate — see README.md. Every target fails loudly.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN ?= $(shell $(GO) env GOPATH)/bin
# The wasm packages: the built-in plugins (the bundle and each plugin's own
# main) and the Go example plugin.
WASM_PLUGINS := ./plugins/builtin/bundle ./plugins/allowlist/... ./plugins/denylist/... \
	./plugins/ratelimit/... ./plugins/special-ranges/... ./examples/go

.PHONY: all test lint bench check demo tools build examples

all: lint test

build:
	$(GO) build ./...

## test: the whole test suite, with the race detector; internal/testreport
## prints failures in full and every skipped test with its reason (under CI,
## a skip other than an unsupported platform fails the run).
test:
	$(GO) build -o /tmp/wasmgate-testreport ./internal/testreport
	$(GO) test -race -count=1 -timeout 30m -json ./... | /tmp/wasmgate-testreport

## lint: gofmt, go vet, staticcheck.
lint: tools
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' | grep -v '^testdata/' || true)); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/... $(WASM_PLUGINS)
	$(GOBIN)/staticcheck ./...

tools:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## bench: benchmarks (results and how to read them: BENCHMARKS.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -timeout 3h ./... | tee bench.out

## check: cross-builds and a tidy go.mod.
check:
	GOOS=linux GOARCH=amd64 $(GO) build ./...
	GOOS=linux GOARCH=arm64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=windows GOARCH=amd64 $(GO) build ./...
	GOOS=wasip1 GOARCH=wasm $(GO) build ./sdk/... $(WASM_PLUGINS)
	cp go.mod /tmp/wasmgate-go.mod.bak; cp go.sum /tmp/wasmgate-go.sum.bak
	$(GO) mod tidy
	@if ! git diff --quiet -- go.mod go.sum; then git --no-pager diff -- go.mod go.sum; \
	  cp /tmp/wasmgate-go.mod.bak go.mod; cp /tmp/wasmgate-go.sum.bak go.sum; \
	  echo "go mod tidy changes go.mod/go.sum: run it and commit"; exit 1; fi

## examples: builds the example plugins (Go, C, AssemblyScript; needs clang
## with wasi-libc and npm) and runs `wasmgate test` on each (examples/test.sh).
examples:
	./examples/test.sh

## demo: see README.md.
demo:
	./demo/run.sh
