/* SPDX-License-Identifier: Apache-2.0 */
/* sysward bench churn worker: fork + exec a short-lived program, again and again.
 *
 *   churn SECONDS RATE TAG [PROGRAM]
 *
 * Each round forks, the child execs PROGRAM (default /bin/true) with the arguments
 * "sysward-churn TAG-<n>" (a new command line each time, as a build's compiler calls have)
 * and the worker's own environment, and the worker waits for it.  RATE is execs per second
 * for this worker, 0 for as fast as possible; pacing sleeps to an absolute schedule so a
 * slow round is caught up.  Stops after SECONDS.  Prints "<execs> <ns>" on stdout.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: churn SECONDS RATE TAG [PROGRAM]\n");
		return 2;
	}
	double seconds = atof(argv[1]);
	double rate = atof(argv[2]);
	const char *tag = argv[3];
	const char *program = argc > 4 ? argv[4] : "/bin/true";
	long long t0 = now_ns();
	long long end = t0 + (long long)(seconds * 1e9);
	long long step = rate > 0 ? (long long)(1e9 / rate) : 0;
	long long next = t0;
	long n = 0;
	char arg[64];

	while (now_ns() < end) {
		if (step) {
			next += step;
			long long wait = next - now_ns();
			if (wait > 0) {
				struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
				nanosleep(&ts, NULL);
			}
		}
		snprintf(arg, sizeof(arg), "%s-%ld", tag, n);
		pid_t pid = fork();
		if (pid < 0) {
			perror("churn: fork");
			return 1;
		}
		if (pid == 0) {
			char *child_argv[] = {"true", "sysward-churn", arg, NULL};
			execve(program, child_argv, environ);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0) {
			perror("churn: waitpid");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) == 127) {
			fprintf(stderr, "churn: %s did not run\n", program);
			return 1;
		}
		n++;
	}
	printf("%ld %lld\n", n, now_ns() - t0);
	return 0;
}
