// Command multi is a test plugin for the host's kernel call path. It uses
// the raw Extism kernel imports (no SDK) and behaves as its Extism config key
// "behave" says: "ok" (a small port rule), "count" (allow, cacheable for
// "ttl" ms, reason "call #N port P"), or one of the misbehaviours the host
// must survive: trap, loop, alloc, garbage, huge, empty, rc, errset, http;
// "validateloop" loops in validate;
// "log" logs at every level, on stdout and stderr, and config "lines" more times.
package main

func main() {}
