/* SPDX-License-Identifier: Apache-2.0 */
/* sysward bench enforce: a program with no C runtime, whose very first instructions are the
 * syscall under test, so "did it run any instruction of its own?" has a visible answer.
 *
 *   -DFIRST_WRITE: _start writes "RAN\n" to stdout, then exits 0.
 *   -DFIRST_OPEN -DCANARY='"/path"': _start opens CANARY, reads it, writes what it read to
 *   stdout, then exits 0.
 * Built with -nostdlib -static; x86_64 and aarch64.
 */
#define SYS_NR(x86, arm) x86
#if defined(__aarch64__)
#undef SYS_NR
#define SYS_NR(x86, arm) arm
#endif
#define NR_read SYS_NR(0, 63)
#define NR_write SYS_NR(1, 64)
#define NR_openat SYS_NR(257, 56)
#define NR_exit SYS_NR(60, 93)

static long sc3(long nr, long a, long b, long c)
{
	long ret;
#if defined(__x86_64__)
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	ret = x0;
#else
#error "x86_64 or aarch64 only"
#endif
	return ret;
}

void _start(void)
{
#ifdef FIRST_WRITE
	sc3(NR_write, 1, (long)"RAN\n", 4);
#else
	char buf[256];
	long fd = sc3(NR_openat, -100, (long)CANARY, 0);
	long n = fd >= 0 ? sc3(NR_read, fd, (long)buf, sizeof(buf)) : 0;
	if (n > 0)
		sc3(NR_write, 1, (long)buf, n);
#endif
	sc3(NR_exit, 0, 0, 0);
	for (;;)
		;
}
