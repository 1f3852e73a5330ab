/*
 * A policy plugin that asks an HTTP service for its verdicts (the
 * go-sdk engine's http_request, docs/plugins.md#http_request): decide
 * sends the request JSON it was given to the URL in its config
 * ({"url": "..."}) and returns the service's answer as its verdict. Any
 * status but 200 is an error. Built by plugins/pluginhttp_test.go with
 * clang --target=wasm32-wasi -mexec-model=reactor.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KERNEL(name) __attribute__((import_module("extism:host/env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

KERNEL(input_length) uint64_t input_length(void);
KERNEL(input_load_u8) uint32_t input_load_u8(uint64_t i);
KERNEL(alloc) uint64_t kalloc(uint64_t n);
KERNEL(length) uint64_t klength(uint64_t p);
KERNEL(load_u8) uint32_t load_u8(uint64_t p);
KERNEL(store_u8) void store_u8(uint64_t p, uint32_t v);
KERNEL(output_set) void output_set(uint64_t p, uint64_t n);
KERNEL(error_set) void error_set(uint64_t p);
KERNEL(config_get) uint64_t config_get(uint64_t key);
KERNEL(http_request) uint64_t http_request(uint64_t req, uint64_t body);
KERNEL(http_status_code) int32_t http_status_code(void);

static char buf[8192];

static uint64_t to_kernel(const char *s, size_t n) {
    uint64_t p = kalloc(n);
    for (size_t i = 0; p != 0 && i < n; i++) {
        store_u8(p + i, (unsigned char)s[i]);
    }
    return p;
}

static int fail(const char *msg) {
    uint64_t p = to_kernel(msg, strlen(msg));
    if (p != 0) {
        error_set(p);
    }
    return 1;
}

EXPORT(decide) int32_t decide(void) {
    /* url from the config {"url":"..."} */
    uint64_t key = to_kernel("config", 6);
    uint64_t c = config_get(key);
    if (c == 0) {
        return fail("no config");
    }
    size_t cn = klength(c);
    if (cn >= sizeof buf) {
        return fail("config too long");
    }
    for (size_t i = 0; i < cn; i++) {
        buf[i] = (char)load_u8(c + i);
    }
    buf[cn] = 0;
    char *u = strstr(buf, "\"url\":\"");
    if (u == NULL) {
        return fail("config has no url");
    }
    u += 7;
    char *end = strchr(u, '"');
    if (end == NULL) {
        return fail("bad url");
    }
    *end = 0;

    char req[2048];
    size_t rn = strlen("{\"method\":\"POST\",\"url\":\"") + strlen(u) + 2;
    if (rn >= sizeof req) {
        return fail("url too long");
    }
    strcpy(req, "{\"method\":\"POST\",\"url\":\"");
    strcat(req, u);
    strcat(req, "\"}");

    /* the body: the decide input, as is */
    size_t in = input_length();
    uint64_t body = kalloc(in);
    if (body == 0) {
        return fail("alloc");
    }
    for (size_t i = 0; i < in; i++) {
        store_u8(body + i, input_load_u8(i));
    }
    uint64_t resp = http_request(to_kernel(req, strlen(req)), body);
    if (http_status_code() != 200) {
        return fail("service did not answer 200");
    }
    if (resp == 0) {
        return fail("empty answer");
    }
    output_set(resp, klength(resp));
    return 0;
}
