/*
 * wasmgate's example policy plugin in C, the same policy as examples/go and
 * examples/assemblyscript: allow tcp.connect to port 443 and DNS lookups
 * (dns.lookup, dns.answer) of names under one configured domain, deny the
 * rest of those ops with a reason, abstain on every other op.
 *
 * No PDK: it imports the Extism kernel functions directly (docs/kernel.md)
 * and scans JSON with a few dozen lines of its own. Build and test: README.md
 * in this directory.
 *
 * Fail closed: input that is not one JSON object with the members this
 * plugin needs makes decide return 1 (the host counts a failed call as a
 * deny), and a bad config makes every decision a deny.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KERNEL(name) __attribute__((import_module("extism:host/env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

KERNEL(input_length) uint64_t input_length(void);
KERNEL(input_load_u8) uint32_t input_load_u8(uint64_t i);
KERNEL(input_load_u64) uint64_t input_load_u64(uint64_t i);
KERNEL(alloc) uint64_t kalloc(uint64_t n);
KERNEL(length) uint64_t klength(uint64_t p);
KERNEL(load_u8) uint32_t load_u8(uint64_t p);
KERNEL(load_u64) uint64_t load_u64(uint64_t p);
KERNEL(store_u8) void store_u8(uint64_t p, uint32_t v);
KERNEL(store_u64) void store_u64(uint64_t p, uint64_t v);
KERNEL(output_set) void output_set(uint64_t p, uint64_t n);
KERNEL(config_get) uint64_t config_get(uint64_t key);

/* The host's input cap (docs/kernel.md, "Limits"): nothing longer arrives. */
#define MAX_INPUT 65536
#define MAX_CONFIG 65536
#define MAX_DOMAIN 253
#define MAX_STR 1024

static unsigned char in[MAX_INPUT];
static char out[1024];

/* ---- kernel memory helpers ---- */

/* to_kernel copies n bytes into a new kernel block; 0 when alloc fails. */
static uint64_t to_kernel(const void *src, size_t n) {
    const unsigned char *b = src;
    uint64_t p = kalloc(n);
    if (p == 0) {
        return 0;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8); /* wasm is little-endian, like the kernel */
        store_u64(p + i, w);
    }
    for (; i < n; i++) {
        store_u8(p + i, b[i]);
    }
    return p;
}

/* output sets the call's output to the NUL-terminated s; 0 on success. */
static int output(const char *s) {
    size_t n = strlen(s);
    uint64_t p = to_kernel(s, n);
    if (p == 0) {
        return 1;
    }
    output_set(p, n);
    return 0;
}

/* ---- a minimal JSON scanner (RFC 8259 syntax, top-level object only) ---- */

struct scan {
    const unsigned char *s;
    size_t n, i;
};

static void ws(struct scan *sc) {
    while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' ||
                             sc->s[sc->i] == '\n' || sc->s[sc->i] == '\r')) {
        sc->i++;
    }
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * str reads a string at sc->i (which must be '"') into dst (NUL-terminated,
 * at most cap-1 bytes; dst may be NULL to skip). Escapes are decoded; a
 * \uXXXX above U+007F becomes 0xFF, which never matches anything this
 * plugin compares with. Returns the length, or -1 on bad syntax or
 * overflow.
 */
static long str(struct scan *sc, char *dst, size_t cap) {
    size_t len = 0;
    if (sc->i >= sc->n || sc->s[sc->i] != '"') return -1;
    sc->i++;
    while (sc->i < sc->n) {
        unsigned char c = sc->s[sc->i++];
        if (c == '"') {
            if (dst) dst[len] = 0;
            return (long)len;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (sc->i >= sc->n) return -1;
            c = sc->s[sc->i++];
            switch (c) {
            case '"': case '\\': case '/': break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                int v = 0;
                if (sc->n - sc->i < 4) return -1;
                for (int k = 0; k < 4; k++) {
                    int h = hexval(sc->s[sc->i++]);
                    if (h < 0) return -1;
                    v = v * 16 + h;
                }
                c = v < 0x80 ? (unsigned char)v : 0xFF;
                break;
            }
            default: return -1;
            }
        }
        if (dst) {
            if (len + 1 >= cap) return -1;
            dst[len] = (char)c;
        }
        len++;
    }
    return -1;
}

/* skip skips any JSON value (depth-limited); 0 on success. */
static int skip(struct scan *sc, int depth) {
    if (depth > 64) return -1;
    ws(sc);
    if (sc->i >= sc->n) return -1;
    unsigned char c = sc->s[sc->i];
    if (c == '"') return str(sc, NULL, 0) < 0 ? -1 : 0;
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        sc->i++;
        ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == close) {
            sc->i++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                ws(sc);
                if (str(sc, NULL, 0) < 0) return -1;
                ws(sc);
                if (sc->i >= sc->n || sc->s[sc->i++] != ':') return -1;
            }
            if (skip(sc, depth + 1) < 0) return -1;
            ws(sc);
            if (sc->i >= sc->n) return -1;
            unsigned char d = sc->s[sc->i++];
            if (d == close) return 0;
            if (d != ',') return -1;
        }
    }
    /* number, true, false, null: a run of their characters */
    size_t start = sc->i;
    while (sc->i < sc->n) {
        unsigned char d = sc->s[sc->i];
        if (!((d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || d == '-' || d == '+' || d == '.' ||
              d == 'E')) {
            break;
        }
        sc->i++;
    }
    return sc->i > start ? 0 : -1;
}

/*
 * json_uint reads a JSON integer in 0..max at sc->i; -1 when the value is not
 * one (a fraction, an exponent, a sign, out of range, not a number).
 */
static long json_uint(struct scan *sc, long max) {
    long v = 0;
    size_t start = sc->i;
    while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') {
        v = v * 10 + (sc->s[sc->i++] - '0');
        if (v > max) return -1;
    }
    if (sc->i == start || (sc->s[start] == '0' && sc->i - start > 1)) return -1;
    if (sc->i < sc->n && (sc->s[sc->i] == '.' || sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E')) return -1;
    return v;
}

/*
 * members walks the top-level object, calling f for each member with the
 * scanner at the value; f consumes the value and returns 0, or -1 to fail.
 * Returns 0 when the input is exactly one object.
 */
static int members(struct scan *sc, int (*f)(struct scan *, const char *, void *), void *arg) {
    char key[64];
    ws(sc);
    if (sc->i >= sc->n || sc->s[sc->i++] != '{') return -1;
    ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}') {
        sc->i++;
    } else {
        for (;;) {
            ws(sc);
            struct scan save = *sc;
            if (str(sc, key, sizeof key) < 0) {
                /* a long key is not one of ours: skip it */
                *sc = save;
                if (str(sc, NULL, 0) < 0) return -1;
                key[0] = 0;
            }
            ws(sc);
            if (sc->i >= sc->n || sc->s[sc->i++] != ':') return -1;
            ws(sc);
            if (f(sc, key, arg) < 0) return -1;
            ws(sc);
            if (sc->i >= sc->n) return -1;
            unsigned char d = sc->s[sc->i++];
            if (d == '}') break;
            if (d != ',') return -1;
        }
    }
    ws(sc);
    return sc->i == sc->n ? 0 : -1;
}

/* ---- config ---- */

static char domain[MAX_DOMAIN + 1];
static const char *config_error; /* NULL once the config is good */
static int config_loaded;

/* Validate's messages, already JSON-escaped: they go out in {"error": ...}. */
#define ERR_MISSING "\\\"domain\\\" is missing (want e.g. {\\\"domain\\\": \\\"example.test\\\"})"
#define ERR_INVALID "\\\"domain\\\" must be a lower-case DNS name of letters, digits, '-' and '.' (e.g. \\\"example.test\\\")"
#define ERR_UNKNOWN "unknown config key (the only key is \\\"domain\\\")"
#define ERR_SYNTAX "config is not a JSON object"

struct cfg {
    int have_domain;
    const char *err;
};

static int valid_domain(const char *d, size_t n) {
    size_t label = 0;
    if (n == 0 || n > MAX_DOMAIN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0) return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if (++label > 63) return 0;
        } else {
            return 0;
        }
    }
    return label > 0;
}

static int config_member(struct scan *sc, const char *key, void *arg) {
    struct cfg *c = arg;
    if (strcmp(key, "domain") == 0 && !c->have_domain) {
        char tmp[MAX_DOMAIN + 2];
        struct scan save = *sc;
        long n = str(sc, tmp, sizeof tmp);
        c->have_domain = 1;
        if (n < 0 || !valid_domain(tmp, (size_t)n)) {
            if (!c->err) c->err = ERR_INVALID;
            *sc = save;
            return skip(sc, 0);
        }
        memcpy(domain, tmp, (size_t)n + 1);
        return 0;
    }
    if (!c->err) c->err = ERR_UNKNOWN;
    return skip(sc, 0);
}

/* load_config reads the "config" key once per instance. */
static const char *load_config(void) {
    static unsigned char buf[MAX_CONFIG];
    if (config_loaded) return config_error;
    config_loaded = 1;
    config_error = ERR_SYNTAX;
    uint64_t key = to_kernel("config", 6);
    if (key == 0) return config_error;
    uint64_t v = config_get(key);
    if (v == 0) return config_error = ERR_MISSING; /* wasmgate always sends {} at least */
    uint64_t n = klength(v);
    if (n > MAX_CONFIG) return config_error;
    for (uint64_t i = 0; i < n; i++) buf[i] = (unsigned char)load_u8(v + i);
    struct scan sc = {buf, (size_t)n, 0};
    struct cfg c = {0, NULL};
    if (members(&sc, config_member, &c) < 0) return config_error = ERR_SYNTAX;
    if (c.err) return config_error = c.err;
    if (!c.have_domain) return config_error = ERR_MISSING;
    return config_error = NULL;
}

/* ---- the exports ---- */

EXPORT(describe) int32_t describe(void) {
    return output("{\"name\":\"example\",\"version\":\"1\",\"ops\":[\"tcp.connect\",\"dns.lookup\",\"dns.answer\"]}");
}

EXPORT(validate) int32_t validate(void) {
    const char *err = load_config();
    if (err == NULL) return output("{}");
    char msg[512];
    strcpy(msg, "{\"error\":\"");
    strcat(msg, err);
    strcat(msg, "\"}");
    return output(msg);
}

struct req {
    char op[32];
    char name[MAX_STR];
    long port;
    int seen_op, seen_name, seen_port;
};

static int request_member(struct scan *sc, const char *key, void *arg) {
    struct req *r = arg;
    if (strcmp(key, "op") == 0) {
        if (r->seen_op++) return -1; /* duplicates are an error, as for the host */
        return str(sc, r->op, sizeof r->op) < 0 ? -1 : 0;
    }
    if (strcmp(key, "name") == 0) {
        if (r->seen_name++) return -1;
        return str(sc, r->name, sizeof r->name) < 0 ? -1 : 0;
    }
    if (strcmp(key, "port") == 0) {
        if (r->seen_port++) return -1;
        r->port = json_uint(sc, 65535);
        return r->port < 0 ? -1 : 0;
    }
    return skip(sc, 0);
}

/* under reports whether name is domain or a name below it, ignoring ASCII
 * case and one trailing dot (the host sends canonical names already). */
static int under(char *name) {
    size_t n = strlen(name), d = strlen(domain);
    if (n > 0 && name[n - 1] == '.') name[--n] = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z') name[i] += 'a' - 'A';
    }
    if (n == d) return strcmp(name, domain) == 0;
    return n > d && name[n - d - 1] == '.' && strcmp(name + n - d, domain) == 0;
}

static void append_uint(char *s, long v) {
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    s += strlen(s);
    while (k > 0) *s++ = tmp[--k];
    *s = 0;
}

static int verdict(const char *action, const char *reason1, const char *reason2) {
    strcpy(out, "{\"verdict\":\"");
    strcat(out, action);
    strcat(out, "\",\"reason\":\"");
    strcat(out, reason1);
    strcat(out, reason2);
    strcat(out, "\"}");
    return output(out);
}

EXPORT(decide) int32_t decide(void) {
    uint64_t n = input_length();
    if (n > MAX_INPUT) return 1;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = input_load_u64(i);
        memcpy(in + i, &w, 8);
    }
    for (; i < n; i++) in[i] = (unsigned char)input_load_u8(i);

    /* Absent members read as 0 and "", as in sdk/policy: a tcp.connect
     * without a port is a deny "not 0", a lookup without a name a deny. */
    struct req r;
    memset(&r, 0, sizeof r);
    struct scan sc = {in, (size_t)n, 0};
    if (members(&sc, request_member, &r) < 0 || !r.seen_op) return 1;

    if (load_config() != NULL) {
        return verdict("deny", "example: bad config", ""); /* fail closed */
    }
    if (strcmp(r.op, "tcp.connect") == 0) {
        if (r.port == 443) return verdict("allow", "example: tcp.connect to port 443", "");
        char reason[64] = "example: tcp.connect only to port 443, not ";
        append_uint(reason, r.port);
        return verdict("deny", reason, "");
    }
    if (strcmp(r.op, "dns.lookup") == 0 || strcmp(r.op, "dns.answer") == 0) {
        char reason[64] = "example: ";
        strcat(reason, r.op);
        if (under(r.name)) {
            strcat(reason, " under ");
            return verdict("allow", reason, domain);
        }
        strcat(reason, " outside ");
        return verdict("deny", reason, domain);
    }
    return output("{\"verdict\":\"abstain\"}");
}
