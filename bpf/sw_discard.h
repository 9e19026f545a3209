/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Discarders: absolute paths that user space proved no loaded rule of an event type can ever
 * match (src/sysward/enforce/prefilter/discarders.py), checked before the approver and before
 * any record is built.
 *
 * The check costs one inlined array load for a type that has no discarder; for one that has,
 * one read of the user string into a zeroed key and one hash lookup.  Only a path argument as
 * passed is looked up: user space writes clean absolute paths only (no '.', '..', '//',
 * trailing '/'), so a relative or unclean spelling misses and goes on to the approver. */
#ifndef SYSWARD_SW_DISCARD_H
#define SYSWARD_SW_DISCARD_H

#include "sw_common.h"
#include "discard.h"

/* type -> 1 while the type has discarders (user space sets it with the first one and clears
 * it on a reload before it removes the keys) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_EVT_MAX);
	__type(key, __u32);
	__type(value, __u32);
} pf_disc_on SEC(".maps");

#define PF_DISC_NO_PREALLOC 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PF_DISC_MAX);
	__uint(map_flags, PF_DISC_NO_PREALLOC);
	__type(key, struct pf_disc_key);
	__type(value, struct pf_disc_val);
} pf_discard SEC(".maps");

struct pf_disc_anchor {
	struct pf_disc_key key;
	struct pf_disc_val val;
	enum pf_disc_bound bound;
};
struct pf_disc_anchor pf_disc_anchor __attribute__((unused));

/* Is this event's path a discarder of its type? */
static __always_inline bool pf_discarded(__u32 type, const void *upath)
{
	__u32 k = type;
	__u32 *on = bpf_map_lookup_elem(&pf_disc_on, &k);
	if (!on || !*on || !upath)
		return false;
	struct pf_disc_key key;
	__builtin_memset(&key, 0, sizeof(key));
	key.type = type;
	long n = bpf_probe_read_user_str(key.path, sizeof(key.path), upath);
	/* a string that fills the read may be longer: no key */
	if (n <= 1 || n >= (long)sizeof(key.path) || key.path[0] != '/')
		return false;
	struct pf_disc_val *v = bpf_map_lookup_elem(&pf_discard, &key);
	if (!v)
		return false;
	if (!v->ref)
		v->ref = 1;
	return true;
}

#endif /* SYSWARD_SW_DISCARD_H */
