/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The discarders' map layouts and constants: shared by sw_discard.h (the sensors) and
 * mirrored in src/sysward/enforce/prefilter/discarders.py and abi.py (tests/unit/test_abi.py
 * checks the mirror against the object's BTF).  Plain fixed-width types, padding written out. */
#ifndef SYSWARD_DISCARD_H
#define SYSWARD_DISCARD_H

enum pf_disc_bound {
	PF_DISC_PATH = 128,     /* bytes of a key's path, NUL included (and zero padded) */
	PF_DISC_MAX = 8192,     /* entries of pf_discard */
};

/* key of pf_discard: an event type and an absolute path no rule of that type can match */
struct pf_disc_key {
	__u32 type;
	__u8 path[PF_DISC_PATH];
};                              /* 132 */

struct pf_disc_val {
	__u32 ref;              /* set by the kernel on a hit: the second-chance mark of user
				 * space's eviction */
	__u32 pad;
};

#endif /* SYSWARD_DISCARD_H */
