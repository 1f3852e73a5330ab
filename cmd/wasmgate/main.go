// Command wasmgate runs WebAssembly (WASI preview 1) programs with real
// network access under a programmable policy. See README.md and
// docs/ for usage.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  wasmgate run [--policy FILE [--audit FILE|-]] [--dir HOST[:GUEST][:ro]]... [--env K=V]...
               [--listen ADDR|fd:N]... [--listen-report FILE|-] [--max-memory SIZE] [--timeout DUR]
               [--metrics ADDR] [--watch] [--shadow FILE] [--no-cache] WASM [ARGS...]
                                      run a WASI program; no --policy = no network;
                                      SIGHUP (or --watch) reloads the policy
  wasmgate check FILE                 validate a manifest and its plugins
  wasmgate decide --policy FILE       JSON Lines requests on stdin, one verdict line out per line
  wasmgate test --policy FILE CASES.jsonl...
                                      check a policy's verdicts against expected ones
  wasmgate plugin push|pull|resolve ...
                                      plugins as OCI artifacts (docs/distribution.md)
  wasmgate policy push|pull ...       a whole policy as one OCI artifact
  wasmgate version

--policy FILE may be oci://REGISTRY/REPO@sha256:DIGEST, a policy artifact (pulled, verified, cached).

Every command but version takes --log-level debug|info|warn|error (default warn): plugin log
lines at that level and above are written on stderr. "wasmgate COMMAND --help" for details.
`

// run is main without the process: it returns the exit code, so tests can
// call it directly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdin, stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "decide":
		return cmdDecide(args[1:], stdin, stdout, stderr)
	case "test":
		return cmdTest(args[1:], stdout, stderr)
	case "plugin":
		return cmdPlugin(args[1:], stdout, stderr)
	case "policy":
		return cmdPolicy(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "wasmgate", version)
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "wasmgate: unknown command %q\n%s", args[0], usage)
	return 2
}
