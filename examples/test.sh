#!/usr/bin/env bash
# Builds the three example plugins (Go, C, AssemblyScript), then for each:
# `wasmgate check` of its manifest, `wasmgate test` of its cases file, and a
# bad config that `check` must refuse. Then raw_test.go (hand-written and
# broken requests through the Extism Go SDK, and the fuzz corpus), and
# finally asserts that the three give identical `wasmgate decide` output for
# the cases. Exits non-zero on any
# failure. Needs go, clang with wasi-libc (Debian: clang lld wasi-libc
# libclang-rt-14-dev-wasm32) and npm. Run from anywhere: `make examples`.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "examples/test.sh: $*" >&2; exit 1; }

echo "== wasmgate"
( cd .. && go build -o "$tmp/wasmgate" ./cmd/wasmgate )
# wasmgate's compilation cache for this run only: the user's stays untouched.
wasmgate() { XDG_CACHE_HOME="$tmp/cache" "$tmp/wasmgate" "$@"; }

echo "== go"
( cd go && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o example.wasm . )

echo "== c"
( cd c && clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror -o example.wasm example.c )

echo "== assemblyscript"
( cd assemblyscript && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run --silent build )

examples=(go c assemblyscript)
for ex in "${examples[@]}"; do
  # One policy, one set of cases: the manifests differ only in their comments.
  cmp go/cases.jsonl "$ex/cases.jsonl" || fail "$ex/cases.jsonl differs from go/cases.jsonl"
  diff <(grep -v '^#' go/policy.toml) <(grep -v '^#' "$ex/policy.toml") \
    || fail "$ex/policy.toml differs from go/policy.toml (other than comments)"

  echo "== $ex: check, test"
  wasmgate check "$ex/policy.toml"
  wasmgate test --policy "$ex/policy.toml" "$ex/cases.jsonl"

  # A bad config must be refused at load by the plugin's validate.
  for bad in 'domain = "Not A Domain!"' 'domian = "example.test"' 'domain = 7'; do
    sed -e "s|^path = \"example.wasm\"|path = \"$here/$ex/example.wasm\"|" \
        -e "s|^domain = .*|$bad|" "$ex/policy.toml" > "$tmp/bad.toml"
    if wasmgate check "$tmp/bad.toml" 2> "$tmp/bad.err"; then
      fail "$ex: wasmgate check accepted the config $bad"
    fi
    grep -q 'config rejected by the plugin' "$tmp/bad.err" \
      || { cat "$tmp/bad.err" >&2; fail "$ex: config $bad: not rejected by the plugin"; }
  done

  # The decide output for the cases (expect members dropped), to compare.
  sed -e 's/,"expect":.*}$/}/' "$ex/cases.jsonl" \
    | wasmgate decide --policy "$ex/policy.toml" > "$tmp/$ex.decide"
done

echo "== the same answers to hand-written requests, through the Extism Go SDK"
( cd .. && go test -tags examples -count=1 -run 'TestRawInputs|FuzzCAndAssemblyScript' ./examples/ )

echo "== identical verdicts"
for ex in "${examples[@]}"; do
  diff "$tmp/go.decide" "$tmp/$ex.decide" || fail "$ex decides differently from go (diff above)"
done
[ "$(wc -l < "$tmp/go.decide")" -eq "$(grep -c . go/cases.jsonl)" ] || fail "decide output is short"
echo "examples: ok (${examples[*]})"
