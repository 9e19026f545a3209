/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The one walk from a dentry up to the task's root, crossing mount points (struct mount), so
 * that bind mounts and overlays give the path the task sees.  The sensors (sw_paths.h: a path
 * for the record) and the enforcement unit (enforce.bpf.c: a path for an LPM lookup) both
 * take their components from here, so detection and enforcement agree on every path.  CO-RE
 * reads only, no maps: including it pulls nothing else into an object. */
#ifndef SYSWARD_WALK_H
#define SYSWARD_WALK_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* Where a walk is: the current dentry in its mount, and the root it stops at. */
struct sw_walk {
	struct dentry *dentry;  /* NULL once the walk has ended */
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
};

static __always_inline struct mount *sw_real_mount(struct vfsmount *vfsmnt)
{
	return (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
}

/* Start a walk at path p, to stop at t's root.  False when p names nothing. */
static __always_inline bool sw_walk_init(struct sw_walk *w, struct path *p, struct task_struct *t)
{
	w->dentry = BPF_CORE_READ(p, dentry);
	w->vfsmnt = BPF_CORE_READ(p, mnt);
	if (!w->dentry || !w->vfsmnt)
		return false;
	w->mnt = sw_real_mount(w->vfsmnt);
	w->root_dentry = BPF_CORE_READ(t, fs, root.dentry);
	w->root_mnt = BPF_CORE_READ(t, fs, root.mnt);
	return true;
}

enum sw_walk_step {
	SW_WALK_END,        /* at the root (or a mount without parent): the path is complete */
	SW_WALK_CROSSED,    /* moved from a mount's root to its mount point: no component */
	SW_WALK_COMPONENT,  /* *out is the next component, leaf first */
};

/* One step up.  After SW_WALK_COMPONENT the walk continues from the component's parent; a
 * component that is its own parent (a pseudo file such as a memfd or a pipe, or a
 * disconnected dentry) is the last one: its name is all there is (w->dentry becomes NULL). */
static __always_inline int sw_walk_next(struct sw_walk *w, struct dentry **out)
{
	/* plain copies first: inside BPF_CORE_READ an access to w itself would become a CO-RE
	 * relocation against a type the kernel does not have */
	struct dentry *d = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	if (!d || (d == w->root_dentry && vfsmnt == w->root_mnt))
		return SW_WALK_END;
	if (d == BPF_CORE_READ(vfsmnt, mnt_root)) {
		struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);
		if (!mp || mp == mnt)
			return SW_WALK_END;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mp;
		w->vfsmnt = (void *)mp + bpf_core_field_offset(struct mount, mnt);
		return SW_WALK_CROSSED;
	}
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	w->dentry = parent == d ? NULL : parent;
	*out = d;
	return SW_WALK_COMPONENT;
}

#endif /* SYSWARD_WALK_H */
