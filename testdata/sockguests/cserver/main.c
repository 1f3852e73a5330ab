// cserver is the C test guest of the socket tests. It declares the WasmEdge
// socket imports itself in their v1 shapes (2-parameter sock_accept,
// 4-parameter sock_getlocaladdr/sock_getpeeraddr, 7-parameter
// sock_recv_from) as the Rust crate and old WasmEdge guests do, and uses
// blocking sockets.
//
//   cserver echo       listen on 127.0.0.1:0, print the port, accept one
//                      connection, answer its data upper-cased, exit
//   cserver refused P  connect to 127.0.0.1:P and print the errno
//   cserver echoloop   listen on 127.0.0.1:0, print "[0] listening ADDR",
//                      then echo connections one at a time, forever, with
//                      a 64 KiB buffer (the benchmarks' thin-runtime guest)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))

typedef struct { uint8_t *buf; uint32_t len; } addr_t;
typedef struct { uint8_t *buf; uint32_t len; } iov_t;

IMPORT("sock_open") int32_t x_sock_open(int32_t af, int32_t type, int32_t *fd);
IMPORT("sock_bind") int32_t x_sock_bind(int32_t fd, addr_t *a, int32_t port);
IMPORT("sock_listen") int32_t x_sock_listen(int32_t fd, int32_t backlog);
IMPORT("sock_connect") int32_t x_sock_connect(int32_t fd, addr_t *a, int32_t port);
IMPORT("sock_accept") int32_t x_sock_accept_v1(int32_t fd, int32_t *nfd);
IMPORT("sock_getlocaladdr") int32_t x_sock_getlocaladdr_v1(int32_t fd, addr_t *a, uint32_t *type, uint32_t *port);
IMPORT("sock_getpeeraddr") int32_t x_sock_getpeeraddr_v1(int32_t fd, addr_t *a, uint32_t *type, uint32_t *port);
IMPORT("sock_recv") int32_t x_sock_recv(int32_t fd, iov_t *iov, int32_t n, int32_t flags, uint32_t *nread, uint16_t *roflags);
IMPORT("sock_send") int32_t x_sock_send(int32_t fd, iov_t *iov, int32_t n, int32_t flags, uint32_t *nwritten);
IMPORT("sock_shutdown") int32_t x_sock_shutdown(int32_t fd, int32_t how);
IMPORT("sock_getsockopt") int32_t x_sock_getsockopt(int32_t fd, int32_t level, int32_t name, int32_t *value, uint32_t *len);

static void die(const char *what, int32_t e) {
	printf("error: %s errno %d\n", what, (int)e);
	fflush(stdout);
	exit(1);
}

static int echo(void) {
	int32_t fd, e;
	uint8_t ip[4] = {127, 0, 0, 1};
	addr_t a = {ip, 4};
	if ((e = x_sock_open(1, 2, &fd))) die("sock_open", e);
	if ((e = x_sock_bind(fd, &a, 0))) die("sock_bind", e);
	if ((e = x_sock_listen(fd, 8))) die("sock_listen", e);

	// getsockopt in the WasmEdge convention: the 5th parameter points to
	// the length (never at address 4 in a real program).
	int32_t type = 0;
	uint32_t len = 4;
	if ((e = x_sock_getsockopt(fd, 0, 1, &type, &len))) die("getsockopt", e);

	uint8_t raw[16];
	addr_t out = {raw, 16};
	uint32_t atype = 0, port = 0;
	if ((e = x_sock_getlocaladdr_v1(fd, &out, &atype, &port))) die("getlocaladdr", e);
	printf("listening %d.%d.%d.%d:%u type %u sotype %d len %u\n", raw[0], raw[1], raw[2], raw[3],
	       port, atype, type, len);
	fflush(stdout);

	int32_t cfd;
	if ((e = x_sock_accept_v1(fd, &cfd))) die("sock_accept", e);
	if ((e = x_sock_getpeeraddr_v1(cfd, &out, &atype, &port))) die("getpeeraddr", e);
	printf("peer %d.%d.%d.%d type %u\n", raw[0], raw[1], raw[2], raw[3], atype);
	fflush(stdout);

	char buf[256];
	iov_t iov = {(uint8_t *)buf, sizeof buf};
	uint32_t n = 0;
	uint16_t rof = 0;
	if ((e = x_sock_recv(cfd, &iov, 1, 0, &n, &rof))) die("sock_recv", e);
	for (uint32_t i = 0; i < n; i++)
		if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] -= 32;
	iov.len = n;
	uint32_t w = 0;
	if ((e = x_sock_send(cfd, &iov, 1, 0, &w))) die("sock_send", e);
	if ((e = x_sock_shutdown(cfd, 3))) die("sock_shutdown", e);
	close(cfd);
	close(fd);
	printf("echoed %u\n", w);
	return 0;
}

static uint8_t loopbuf[65536];

static int echoloop(void) {
	int32_t fd, e;
	uint8_t ip[4] = {127, 0, 0, 1};
	addr_t a = {ip, 4};
	if ((e = x_sock_open(1, 2, &fd))) die("sock_open", e);
	if ((e = x_sock_bind(fd, &a, 0))) die("sock_bind", e);
	if ((e = x_sock_listen(fd, 128))) die("sock_listen", e);
	uint8_t raw[16];
	addr_t out = {raw, 16};
	uint32_t atype = 0, port = 0;
	if ((e = x_sock_getlocaladdr_v1(fd, &out, &atype, &port))) die("getlocaladdr", e);
	printf("[0] listening %d.%d.%d.%d:%u\n", raw[0], raw[1], raw[2], raw[3], port);
	fflush(stdout);
	for (;;) {
		int32_t cfd;
		if ((e = x_sock_accept_v1(fd, &cfd))) die("sock_accept", e);
		for (;;) {
			iov_t iov = {loopbuf, sizeof loopbuf};
			uint32_t n = 0;
			uint16_t rof = 0;
			if (x_sock_recv(cfd, &iov, 1, 0, &n, &rof) || n == 0) break;
			uint32_t off = 0;
			while (off < n) {
				iov_t o = {loopbuf + off, n - off};
				uint32_t w = 0;
				if (x_sock_send(cfd, &o, 1, 0, &w)) break;
				off += w;
			}
			if (off < n) break;
		}
		close(cfd);
	}
}

static int refused(int port) {
	int32_t fd, e;
	uint8_t ip[4] = {127, 0, 0, 1};
	addr_t a = {ip, 4};
	if ((e = x_sock_open(1, 2, &fd))) die("sock_open", e);
	e = x_sock_connect(fd, &a, port);
	printf("connect errno %d\n", (int)e);
	close(fd);
	return 0;
}

int main(int argc, char **argv) {
	if (argc >= 2 && strcmp(argv[1], "echo") == 0) return echo();
	if (argc >= 2 && strcmp(argv[1], "echoloop") == 0) return echoloop();
	if (argc >= 3 && strcmp(argv[1], "refused") == 0) return refused(atoi(argv[2]));
	printf("usage\n");
	return 2;
}
