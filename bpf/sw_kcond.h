/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The one kernel-condition step shared by enforcement (enforce.bpf.c) and the prefilter
 * (sw_prefilter.h).  User space (sysward.enforce.kcond) lowers conditions into clauses; a
 * clause is one bit of a mask.  For each kind of key (a path, a comm, an address...) the
 * tables say which clauses need a hit (req_pos) and which need no hit (req_neg), and a set
 * lookup of the event's key says which clauses' positive (pos) and negative (neg) tests it
 * satisfies.  One step narrows the candidate clauses; what a hook does with the survivors
 * (kill, deny, pass the event) is its own business. */
#ifndef SYSWARD_KCOND_H
#define SYSWARD_KCOND_H

#include "vmlinux.h"

/* Does any candidate clause test this kind?  (If not, the hook skips the lookup.) */
static __always_inline bool kc_needs(__u64 cand, __u64 req_pos, __u64 req_neg)
{
	return cand & (req_pos | req_neg);
}

/* The candidates left after one lookup: a clause that needs a hit and got none drops out,
 * and so does one that needs no hit and got one. */
static __always_inline __u64 kc_apply(__u64 cand, __u64 req_pos, __u64 req_neg, __u64 pos,
				      __u64 neg)
{
	cand &= ~(req_pos & ~pos);
	cand &= ~(req_neg & neg);
	return cand;
}

#endif /* SYSWARD_KCOND_H */
