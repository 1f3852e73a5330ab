// iovbomb is the hostile C guest of the host-memory tests: it hands the
// host's socket and fd functions 1024 iovecs that all point at one 1 MiB
// buffer (1 GiB in total, from 1 MiB of guest memory) and prints what each
// call returned. Every mode prints one line "[MODE] errno E n N".
//
//   iovbomb stubsendto   sock_send_to the DNS stub (192.0.0.53:53)
//   iovbomb stubsend     sock_connect to the stub, then sock_send
//   iovbomb stubwrite    sock_connect to the stub, then fd_write
//   iovbomb stubquery    a real A query for app.test, split over 3 iovecs,
//                        sent to the stub; prints the answer's id and rcode
//   iovbomb udpsend P    sock_send_to 127.0.0.1:P
//   iovbomb tcpsend P    connect to 127.0.0.1:P, one sock_send and one
//                        fd_write (each writes what the kernel takes)
//   iovbomb noread P     connect to 127.0.0.1:P, print "[noread] connected",
//                        then sleep S seconds (argv[3]) without reading
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))

typedef struct { uint8_t *buf; uint32_t len; } addr_t;
typedef struct { uint8_t *buf; uint32_t len; } iov_t;

IMPORT("sock_open") int32_t x_sock_open(int32_t af, int32_t type, int32_t *fd);
IMPORT("sock_connect") int32_t x_sock_connect(int32_t fd, addr_t *a, int32_t port);
IMPORT("sock_recv") int32_t x_sock_recv(int32_t fd, iov_t *iov, int32_t n, int32_t flags, uint32_t *nread, uint16_t *roflags);
IMPORT("sock_send") int32_t x_sock_send(int32_t fd, iov_t *iov, int32_t n, int32_t flags, uint32_t *nwritten);
IMPORT("sock_send_to") int32_t x_sock_send_to(int32_t fd, iov_t *iov, int32_t n, addr_t *a, int32_t port, int32_t flags, uint32_t *nwritten);
IMPORT("fd_write") int32_t x_fd_write(int32_t fd, iov_t *iov, int32_t n, uint32_t *nwritten);

#define NIOV 1024
static uint8_t big[1 << 20];
static iov_t iovs[NIOV];

static uint8_t stub_ip[4] = {192, 0, 0, 53};
static uint8_t lo_ip[4] = {127, 0, 0, 1};

static void report(const char *mode, int32_t e, uint32_t n) {
	printf("[%s] errno %d n %u\n", mode, (int)e, n);
	fflush(stdout);
}

static int32_t open_sock(int32_t type) {
	int32_t fd, e;
	if ((e = x_sock_open(1, type, &fd))) {
		report("sock_open", e, 0);
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	const char *mode = argv[1];
	for (int i = 0; i < NIOV; i++) {
		iovs[i].buf = big;
		iovs[i].len = sizeof big;
	}
	uint32_t n = 0;
	int32_t e;
	if (!strcmp(mode, "stubsendto")) {
		int32_t fd = open_sock(1);
		addr_t a = {stub_ip, 4};
		e = x_sock_send_to(fd, iovs, NIOV, &a, 53, 0, &n);
		report(mode, e, n);
	} else if (!strcmp(mode, "stubsend") || !strcmp(mode, "stubwrite")) {
		int32_t fd = open_sock(1);
		addr_t a = {stub_ip, 4};
		if ((e = x_sock_connect(fd, &a, 53))) {
			report("sock_connect", e, 0);
			return 1;
		}
		if (mode[4] == 's')
			e = x_sock_send(fd, iovs, NIOV, 0, &n);
		else
			e = x_fd_write(fd, iovs, NIOV, &n);
		report(mode, e, n);
	} else if (!strcmp(mode, "stubquery")) {
		// id 0x1234, RD, one question: app.test A IN.
		static const uint8_t q[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		                            3, 'a', 'p', 'p', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
		memcpy(big, q, sizeof q);
		iov_t parts[3] = {{big, 5}, {big + 5, 10}, {big + 15, sizeof q - 15}};
		int32_t fd = open_sock(1);
		addr_t a = {stub_ip, 4};
		e = x_sock_send_to(fd, parts, 3, &a, 53, 0, &n);
		report(mode, e, n);
		uint8_t ans[512];
		iov_t r = {ans, sizeof ans};
		uint16_t rof = 0;
		e = x_sock_recv(fd, &r, 1, 0, &n, &rof);
		printf("[answer] errno %d id %02x%02x rcode %d ancount %d\n", (int)e, ans[0], ans[1],
		       ans[3] & 0xf, ans[7]);
		fflush(stdout);
	} else if (!strcmp(mode, "udpsend") && argc > 2) {
		int32_t fd = open_sock(1);
		addr_t a = {lo_ip, 4};
		e = x_sock_send_to(fd, iovs, NIOV, &a, atoi(argv[2]), 0, &n);
		report(mode, e, n);
	} else if (!strcmp(mode, "tcpsend") && argc > 2) {
		int32_t fd = open_sock(2);
		addr_t a = {lo_ip, 4};
		if ((e = x_sock_connect(fd, &a, atoi(argv[2])))) {
			report("sock_connect", e, 0);
			return 1;
		}
		e = x_sock_send(fd, iovs, NIOV, 0, &n);
		report("tcpsend", e, n);
		e = x_fd_write(fd, iovs, NIOV, &n);
		report("tcpwrite", e, n);
	} else if (!strcmp(mode, "noread") && argc > 3) {
		int32_t fd = open_sock(2);
		addr_t a = {lo_ip, 4};
		if ((e = x_sock_connect(fd, &a, atoi(argv[2])))) {
			report("sock_connect", e, 0);
			return 1;
		}
		printf("[noread] connected\n");
		fflush(stdout);
		sleep(atoi(argv[3]));
		report(mode, 0, 0);
	} else {
		return 2;
	}
	return 0;
}
