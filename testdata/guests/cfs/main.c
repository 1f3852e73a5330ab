// cfs: file-system and clock checks through wasi-libc, plus raw WASI calls
// for escapes. Expects a preopen "/data" (fd 3). Prints one line per step.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static void res(const char *step, int ok) {
  if (ok)
    printf("%s: ok\n", step);
  else
    printf("%s: errno=%s\n", step, strerror(errno));
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void raw_open(const char *step, const char *path) {
  __wasi_fd_t fd;
  __wasi_errno_t e = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path, 0,
                                      __WASI_RIGHTS_FD_READ, 0, 0, &fd);
  printf("%s: wasi errno %d\n", step, e);
}

int main(void) {
  FILE *f = fopen("/data/c.txt", "w");
  res("fopen", f != NULL);
  fputs("from C\n", f);
  res("fclose", fclose(f) == 0);

  char buf[64] = {0};
  int fd = open("/data/c.txt", O_RDONLY);
  res("open", fd >= 0);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  printf("read %zd: %s", n, buf);
  res("lseek", lseek(fd, 5, SEEK_SET) == 5);
  n = read(fd, buf, sizeof buf - 1);
  buf[n] = 0;
  printf("after seek: %s", buf);
  close(fd);

  struct stat st;
  res("stat", stat("/data/c.txt", &st) == 0);
  printf("size %lld reg %d\n", (long long)st.st_size, S_ISREG(st.st_mode));

  res("mkdir", mkdir("/data/d", 0755) == 0);
  res("rename", rename("/data/c.txt", "/data/d/e.txt") == 0);

  DIR *dir = opendir("/data");
  res("opendir", dir != NULL);
  char *names[32];
  int count = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL && count < 32)
    names[count++] = strdup(de->d_name);
  closedir(dir);
  qsort(names, count, sizeof names[0], cmp);
  printf("entries:");
  for (int i = 0; i < count; i++)
    printf(" %s", names[i]);
  printf("\n");

  res("rmdir-nonempty", rmdir("/data/d") == 0);
  res("unlink", unlink("/data/d/e.txt") == 0);
  res("rmdir", rmdir("/data/d") == 0);
  res("open-missing", open("/data/nope", O_RDONLY) >= 0);

  raw_open("raw-dotdot", "../etc/passwd");
  raw_open("raw-abs", "/etc/passwd");
  raw_open("raw-sub-dotdot", "./../y");

  struct timespec t0, t1, req = {0, 2000000};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  res("nanosleep", nanosleep(&req, NULL) == 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  printf("slept >= 2ms: %d\n", ns >= 2000000);
  struct timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  printf("realtime sane: %d\n", rt.tv_sec > 1700000000);
  return 3;
}
