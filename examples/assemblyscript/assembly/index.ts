// wasmgate's example policy plugin in AssemblyScript (@extism/as-pdk), the
// same policy as examples/go and examples/c: allow tcp.connect to port 443
// and DNS lookups (dns.lookup, dns.answer) of names under one configured
// domain, deny the rest of those ops with a reason, abstain on every other
// op. Build and test: README.md in this directory.
//
// Fail closed: input that is not one JSON object with the members this
// plugin needs makes decide return 1 (the host counts a failed call as a
// deny), and a bad config makes every decision a deny.
import { Config, Host } from "@extism/as-pdk";

const MAX_DOMAIN = 253;
const MAX_STR = 1024;

// myAbort replaces AssemblyScript's default abort (an import the host does
// not offer), via `--use abort=assembly/index/myAbort`: it traps, so a
// failed assertion fails the call instead of going on.
function myAbort(
  message: string | null,
  fileName: string | null,
  lineNumber: u32,
  columnNumber: u32,
): void {
  unreachable();
}

// ---- a minimal JSON scanner (RFC 8259 syntax, top-level object only) ----

class Scan {
  constructor(
    public s: Uint8Array,
    public i: i32 = 0,
  ) {}

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.i++;
    }
  }

  // next returns the byte at i and advances, or -1 at the end.
  next(): i32 {
    if (this.i >= this.s.length) return -1;
    return this.s[this.i++];
  }

  peek(): i32 {
    if (this.i >= this.s.length) return -1;
    return this.s[this.i];
  }
}

function hexval(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// str reads a string at sc.i (which must be '"'), decoding escapes; a
// \uXXXX above U+007F, and each non-ASCII byte, becomes U+FFFD, which never
// matches anything this plugin compares with. Returns null on bad syntax or when longer than max
// bytes.
function str(sc: Scan, max: i32): string | null {
  if (sc.next() != 0x22) return null;
  const start = sc.i;
  let plain = true;
  let out = "";
  let n = 0;
  for (;;) {
    let c = sc.next();
    if (c < 0) return null;
    if (c == 0x22) break;
    if (c < 0x20) return null;
    if (c == 0x5c || c >= 0x80) {
      // An escape or a non-ASCII byte: from here on the string is built
      // one character at a time, each non-ASCII byte as U+FFFD (the C
      // example keeps the raw byte: neither ever matches the ASCII this
      // plugin compares with, and the domain suffix still does).
      if (plain) {
        out = String.UTF8.decodeUnsafe(sc.s.dataStart + start, sc.i - 1 - start);
        plain = false;
      }
      if (c >= 0x80) c = 0xfffd;
      else c = sc.next();
      if (c == 0xfffd || c == 0x22 || c == 0x5c || c == 0x2f) {
        // as is
      } else if (c == 0x62) c = 0x08;
      else if (c == 0x66) c = 0x0c;
      else if (c == 0x6e) c = 0x0a;
      else if (c == 0x72) c = 0x0d;
      else if (c == 0x74) c = 0x09;
      else if (c == 0x75) {
        let v = 0;
        for (let k = 0; k < 4; k++) {
          const h = hexval(sc.next());
          if (h < 0) return null;
          v = v * 16 + h;
        }
        c = v < 0x80 ? v : 0xfffd;
      } else return null;
      out += String.fromCharCode(c);
    } else if (!plain) {
      out += String.fromCharCode(c);
    }
    if (++n > max) return null;
  }
  if (plain) out = String.UTF8.decodeUnsafe(sc.s.dataStart + start, sc.i - 1 - start);
  return out;
}

// skip skips any JSON value (depth-limited); false on bad syntax.
function skip(sc: Scan, depth: i32): bool {
  if (depth > 64) return false;
  sc.ws();
  const c = sc.peek();
  if (c < 0) return false;
  if (c == 0x22) return str(sc, i32.MAX_VALUE) !== null;
  if (c == 0x7b || c == 0x5b) {
    const close = c == 0x7b ? 0x7d : 0x5d;
    sc.i++;
    sc.ws();
    if (sc.peek() == close) {
      sc.i++;
      return true;
    }
    for (;;) {
      if (c == 0x7b) {
        sc.ws();
        if (str(sc, i32.MAX_VALUE) === null) return false;
        sc.ws();
        if (sc.next() != 0x3a) return false;
      }
      if (!skip(sc, depth + 1)) return false;
      sc.ws();
      const d = sc.next();
      if (d == close) return true;
      if (d != 0x2c) return false;
    }
  }
  // number, true, false, null: a run of their characters
  const start = sc.i;
  while (sc.i < sc.s.length) {
    const d = sc.s[sc.i];
    if (!((d >= 0x30 && d <= 0x39) || (d >= 0x61 && d <= 0x7a) || d == 0x2d || d == 0x2b || d == 0x2e || d == 0x45)) break;
    sc.i++;
  }
  return sc.i > start;
}

// uintValue reads a JSON integer in 0..max; -1 when the value is not one.
function uintValue(sc: Scan, max: i32): i32 {
  const start = sc.i;
  let v = 0;
  while (sc.i < sc.s.length && sc.s[sc.i] >= 0x30 && sc.s[sc.i] <= 0x39) {
    v = v * 10 + (sc.s[sc.i++] - 0x30);
    if (v > max) return -1;
  }
  if (sc.i == start || (sc.s[start] == 0x30 && sc.i - start > 1)) return -1;
  const d = sc.peek();
  if (d == 0x2e || d == 0x65 || d == 0x45) return -1;
  return v;
}

// Members walks the top-level object: member() is called with the scanner
// at each member's value and must consume it.
abstract class Members {
  abstract member(sc: Scan, key: string): bool;

  // walk returns true when the input is exactly one object.
  walk(sc: Scan): bool {
    sc.ws();
    if (sc.next() != 0x7b) return false;
    sc.ws();
    if (sc.peek() == 0x7d) {
      sc.i++;
    } else {
      for (;;) {
        sc.ws();
        const key = str(sc, i32.MAX_VALUE);
        if (key === null) return false;
        sc.ws();
        if (sc.next() != 0x3a) return false;
        sc.ws();
        if (!this.member(sc, key)) return false;
        sc.ws();
        const d = sc.next();
        if (d == 0x7d) break;
        if (d != 0x2c) return false;
      }
    }
    sc.ws();
    return sc.i == sc.s.length;
  }
}

// ---- config ----

// Validate's messages, as JSON strings: they go out in {"error": ...}.
const ERR_MISSING = '"\\"domain\\" is missing (want e.g. {\\"domain\\": \\"example.test\\"})"';
const ERR_INVALID =
  "\"\\\"domain\\\" must be a lower-case DNS name of letters, digits, '-' and '.' (e.g. \\\"example.test\\\")\"";
const ERR_UNKNOWN = '"unknown config key (the only key is \\"domain\\")"';
const ERR_SYNTAX = '"config is not a JSON object"';

function validDomain(d: string): bool {
  if (d.length == 0 || d.length > MAX_DOMAIN) return false;
  let label = 0;
  for (let i = 0; i < d.length; i++) {
    const c = d.charCodeAt(i);
    if (c == 0x2e) {
      if (label == 0) return false;
      label = 0;
    } else if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d) {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

class ConfigMembers extends Members {
  domain: string | null = null;
  seen: bool = false;
  err: string | null = null;

  member(sc: Scan, key: string): bool {
    if (key == "domain" && !this.seen) {
      this.seen = true;
      const save = sc.i;
      const d = str(sc, MAX_DOMAIN + 1);
      if (d === null || !validDomain(d)) {
        if (this.err === null) this.err = ERR_INVALID;
        sc.i = save;
        return skip(sc, 0);
      }
      this.domain = d;
      return true;
    }
    if (this.err === null) this.err = ERR_UNKNOWN;
    return skip(sc, 0);
  }
}

let configLoaded = false;
let configError: string | null = null;
let domain = "";

// loadConfig reads the "config" key once per instance; null when it is good.
function loadConfig(): string | null {
  if (configLoaded) return configError;
  configLoaded = true;
  const mem = Config.getMemory("config");
  if (mem === null) return (configError = ERR_MISSING); // wasmgate always sends {} at least
  const c = new ConfigMembers();
  if (!c.walk(new Scan(mem.toUint8Array()))) return (configError = ERR_SYNTAX);
  if (c.err !== null) return (configError = c.err);
  if (c.domain === null) return (configError = ERR_MISSING);
  domain = c.domain!;
  return (configError = null);
}

// ---- the exports ----

function output(s: string): i32 {
  Host.output(Uint8Array.wrap(String.UTF8.encode(s)));
  return 0;
}

export function describe(): i32 {
  return output('{"name":"example","version":"1","ops":["tcp.connect","dns.lookup","dns.answer"]}');
}

export function validate(): i32 {
  const err = loadConfig();
  if (err === null) return output("{}");
  return output('{"error":' + err + "}");
}

class Request extends Members {
  op: string | null = null;
  name: string | null = null;
  port: i32 = -1;
  dup: bool = false;

  member(sc: Scan, key: string): bool {
    if (key == "op") {
      if (this.op !== null) return false; // duplicates are an error, as for the host
      this.op = str(sc, 31); // as in example.c: at most 31 bytes
      return this.op !== null;
    }
    if (key == "name") {
      if (this.name !== null) return false;
      this.name = str(sc, MAX_STR - 1); // as in example.c
      return this.name !== null;
    }
    if (key == "port") {
      if (this.port >= 0) return false;
      this.port = uintValue(sc, 65535);
      return this.port >= 0;
    }
    return skip(sc, 0);
  }
}

// under reports whether name is domain or a name below it, ignoring ASCII
// case and one trailing dot (the host sends canonical names already).
function under(name: string): bool {
  if (name.endsWith(".")) name = name.slice(0, name.length - 1);
  name = name.toLowerCase();
  if (name.length == domain.length) return name == domain;
  return name.length > domain.length && name.endsWith("." + domain);
}

function verdict(action: string, reason: string): i32 {
  return output('{"verdict":"' + action + '","reason":"' + reason + '"}');
}

export function decide(): i32 {
  const r = new Request();
  if (!r.walk(new Scan(Host.input())) || r.op === null) return 1;
  if (loadConfig() !== null) return verdict("deny", "example: bad config"); // fail closed
  const op = r.op!;
  // Absent members read as 0 and "", as in sdk/policy: a tcp.connect
  // without a port is a deny "not 0", a lookup without a name a deny.
  const port = r.port < 0 ? 0 : r.port;
  const name = r.name === null ? "" : r.name!;
  if (op == "tcp.connect") {
    if (port == 443) return verdict("allow", "example: tcp.connect to port 443");
    return verdict("deny", "example: tcp.connect only to port 443, not " + port.toString());
  }
  if (op == "dns.lookup" || op == "dns.answer") {
    if (under(name)) return verdict("allow", "example: " + op + " under " + domain);
    return verdict("deny", "example: " + op + " outside " + domain);
  }
  return output('{"verdict":"abstain"}');
}
