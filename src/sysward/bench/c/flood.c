/* SPDX-License-Identifier: Apache-2.0 */
/* sysward bench flood worker: issue one syscall as fast as possible, count the calls.
 *
 *   flood setuid|open|connect COUNT [UID] [PATH|PORT]
 *
 * setuid:  drops to UID (real, effective and saved) first, then calls setuid(0) COUNT times;
 *          each call fails with EPERM, as in kernelradar's flood, so nothing changes.
 * open:    openat(PATH, O_RDONLY) + close, COUNT times.
 * connect: connect() of one UDP socket to 127.0.0.1:PORT, COUNT times (a UDP connect only
 *          sets the peer address: no packet is sent).
 * Prints "<calls> <ns>" (calls made, wall time) on stdout.  Raw syscall(2) for setuid: the
 * libc wrapper would broadcast to threads and retry.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: flood setuid|open|connect COUNT [UID] [PATH|PORT]\n");
		return 2;
	}
	const char *what = argv[1];
	long n = atol(argv[2]);
	uid_t uid = argc > 3 ? (uid_t)atol(argv[3]) : 65534;
	const char *arg = argc > 4 ? argv[4] : "/dev/null";
	long i = 0;
	long long t0, t1;

	if (strcmp(what, "setuid") == 0) {
		if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) {
			perror("flood: dropping to the flood uid");
			return 1;
		}
		t0 = now_ns();
		for (; i < n; i++)
			syscall(SYS_setuid, 0);
		t1 = now_ns();
	} else if (strcmp(what, "open") == 0) {
		t0 = now_ns();
		for (; i < n; i++) {
			int fd = openat(AT_FDCWD, arg, O_RDONLY);
			if (fd >= 0)
				close(fd);
		}
		t1 = now_ns();
	} else if (strcmp(what, "connect") == 0) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(arg))};
		if (s < 0) {
			perror("flood: socket");
			return 1;
		}
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		t0 = now_ns();
		for (; i < n; i++)
			connect(s, (struct sockaddr *)&sa, sizeof(sa));
		t1 = now_ns();
		close(s);
	} else {
		fprintf(stderr, "flood: unknown syscall %s\n", what);
		return 2;
	}
	printf("%ld %lld\n", i, t1 - t0);
	return 0;
}
