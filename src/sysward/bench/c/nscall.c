/* SPDX-License-Identifier: Apache-2.0 */
/* sysward bench overhead: ns per call of one syscall in a tight loop.
 *
 *   nscall setuid|getpid|openat|openat_w COUNT [PATH]
 *
 * setuid(own uid) succeeds without changing anything; getpid is never hooked by sysward;
 * openat opens PATH (default /dev/null) read-only and closes it (the close is timed too);
 * openat_w opens it write-only (no O_CREAT, no O_TRUNC: the file is not changed).
 * Prints ns per call.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4)
		return 2;
	const char *path = argc == 4 ? argv[3] : "/dev/null";
	long n = atol(argv[2]);
	long uid = (long)getuid();
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (strcmp(argv[1], "setuid") == 0) {
		for (long i = 0; i < n; i++)
			syscall(SYS_setuid, uid);
	} else if (strcmp(argv[1], "openat") == 0 || strcmp(argv[1], "openat_w") == 0) {
		int mode = strcmp(argv[1], "openat") == 0 ? O_RDONLY : O_WRONLY;
		for (long i = 0; i < n; i++) {
			int fd = openat(AT_FDCWD, path, mode);
			if (fd >= 0)
				close(fd);
		}
	} else {
		for (long i = 0; i < n; i++)
			syscall(SYS_getpid);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n);
	return 0;
}
