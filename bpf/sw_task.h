/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Small task helpers shared by the sensors and the enforcement object (CO-RE reads only:
 * no maps, so including this pulls nothing else into an object). */
#ifndef SYSWARD_TASK_H
#define SYSWARD_TASK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* The struct file behind descriptor `fd` of task `t`, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *t, __s64 fd)
{
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **arr = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), arr + fd);
	return f;
}

/* A capability set of a cred as 64 bits.  kernel_cap_t is `u64 val` since Linux 6.3 and
 * `u32 cap[2]` before (the same 8 bytes, low word first on little-endian): only the offset of
 * the set in struct cred is relocated, since any access to `.val` fails to relocate on 6.1. */
#define CRED_CAPS(cred, set)                                                                     \
	({                                                                                       \
		__u64 __caps = 0;                                                                \
		bpf_core_read(&__caps, sizeof(__caps), &(cred)->set);                            \
		__caps;                                                                          \
	})

#endif
