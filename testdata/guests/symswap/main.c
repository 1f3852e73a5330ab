// symswap: opens paths through symlinks that the host swaps, in a loop,
// between a target inside the preopen "/data" and one outside it. Usage:
// symswap N. After N rounds it prints, for each way of reaching a file,
// how often it reached the inside file, the outside one, or failed:
//
//   dir    open("/data/link/secret"): link is a directory symlink
//   file   open("/data/flink"): flink is a file symlink
//   stat   stat("/data/link/secret"): the size tells which file it saw
//   create open("/data/link/new-N", O_CREAT): the host checks where it landed
//
// The inside secret is "inside" (6 bytes), the outside one
// "OUTSIDE-SECRET" (14 bytes).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { INSIDE, OUTSIDE, FAILED };
static const char *kinds[] = {"dir", "file", "stat", "create"};
static int counts[4][3];

static int classify_fd(int fd) {
	if (fd < 0) return FAILED;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0) return FAILED;
	buf[n] = 0;
	if (!strcmp(buf, "inside")) return INSIDE;
	if (strstr(buf, "OUTSIDE")) return OUTSIDE;
	return FAILED;
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	for (int i = 0; i < n; i++) {
		counts[0][classify_fd(open("/data/link/secret", O_RDONLY))]++;
		counts[1][classify_fd(open("/data/flink", O_RDONLY))]++;
		struct stat st;
		if (stat("/data/link/secret", &st) != 0)
			counts[2][FAILED]++;
		else
			counts[2][st.st_size == 14 ? OUTSIDE : INSIDE]++;
		char path[64];
		snprintf(path, sizeof path, "/data/link/new-%d", i);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0) {
			counts[3][FAILED]++;
		} else {
			counts[3][INSIDE]++; // the host tells inside from outside
			close(fd);
		}
	}
	for (int k = 0; k < 4; k++)
		printf("%s inside %d outside %d failed %d\n", kinds[k], counts[k][INSIDE], counts[k][OUTSIDE], counts[k][FAILED]);
	return 0;
}
