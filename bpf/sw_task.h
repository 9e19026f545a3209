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

#endif
