/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The prefilter's map layouts and constants: shared by sw_prefilter.h (the sensors) and
 * mirrored in src/sysward/enforce/prefilter/abi.py (tests/unit/test_abi.py checks the mirror
 * against the object's BTF).  Plain fixed-width types, padding written out. */
#ifndef SYSWARD_PREFILTER_H
#define SYSWARD_PREFILTER_H

enum pf_bound {
	PF_MAX_FEATURES = 8,    /* feature bits per event type */
	PF_ALLOW = 256,         /* 1 << PF_MAX_FEATURES entries of the allow table */
	PF_KEY_DATA = 256,      /* LPM key data: the type id byte, a path (<= 253 bytes), NUL */
	PF_DEPTH = 32,          /* directory components walked for a relative path */
	PF_SETS = 8192,         /* entries of each set map */
	PF_NET_DATA = 20,       /* pf_net key data: type id, kind, family, address (16) */
};

/* load-time setting `prefilter` */
enum pf_setting {
	PF_OFF = 0,             /* no prefilter: every event is built and submitted */
	PF_ON = 1,              /* rejected events are counted (sw_counters.rejected) and dropped */
	PF_AUDIT = 2,           /* every event is submitted; rejected ones carry SW_F_PF_REJECT */
};

/* pf_type.mode */
enum pf_mode {
	PF_PASS = 0,            /* every event of the type passes (no approver) */
	PF_FILTER = 1,          /* events pass when a clause holds */
};

/* integer inputs of the feature bits */
enum pf_input {
	PF_IN_I0 = 0,           /* the record's integer slots i0..i3 */
	PF_IN_I1 = 1,
	PF_IN_I2 = 2,
	PF_IN_I3 = 3,
	PF_IN_RES = 4,          /* the syscall result */
	PF_IN_EUID = 5,         /* effective uid */
	PF_IN_PATHBITS = 6,     /* PF_PB_* of the resolved path; all ones while unknown */
	PF_IN_LOGINUID = 7,     /* audit login uid; -1 when unset (as user.loginuid shows it) */
};

enum pf_op {
	PF_OP_MASK_EQ = 0,      /* (x & mask) == value */
	PF_OP_LT = 1,           /* x < value (signed) */
};

/* bits of PF_IN_PATHBITS */
enum pf_pathbit {
	PF_PB_DOT = 1,          /* some component of the path starts with '.' */
};

/* what the kernel knows of one end of a socket record (addr/port or saddr/sport) */
enum pf_end {
	PF_END_ABSENT = 0,      /* no IP address: its tests fail (their negations hold) */
	PF_END_PRESENT = 1,     /* an IPv4 / IPv6 address: looked up */
	PF_END_UNKNOWN = 2,     /* a relative unix path, which may read as an IP address */
};

/* set kinds: req_pos / req_neg index */
enum pf_kind {
	PF_K_COMM = 0,          /* the task comm (pf_comm) */
	PF_K_PATH = 1,          /* the absolute path of the path argument (pf_path) */
	PF_K_NAME = 2,          /* its base name (pf_name) */
	PF_K_PATHBITS = 3,      /* not a set: the clauses whose features need the resolved path */
	PF_K_ADDR = 4,          /* a socket record's addr (pf_net: family, address) */
	PF_K_SADDR = 5,         /* its saddr (pf_net) */
	PF_K_PORT = 6,          /* the port of its addr end (pf_port) */
	PF_K_SPORT = 7,         /* the port of its saddr end (pf_port) */
	PF_K_MAX = 8,
};

struct pf_feat {
	__u8 input;             /* enum pf_input */
	__u8 op;                /* enum pf_op */
	__u16 pad;
	__u32 pad2;
	__u64 mask;
	__s64 value;
};                              /* 24 */

/* one event type's approver: a value of pf_types */
struct pf_type {
	__u32 mode;             /* enum pf_mode */
	__u32 nfeat;
	__u64 clauses;          /* one bit per clause */
	__u64 req_pos[PF_K_MAX];  /* clauses that need a hit of kind k */
	__u64 req_neg[PF_K_MAX];  /* clauses that need no hit of kind k */
	struct pf_feat feat[PF_MAX_FEATURES];
	__u64 allow[PF_ALLOW];  /* feature bits -> the clauses whose integer literals hold */
};

/* value of every set map: which clauses' positive / negative tests the key satisfies */
struct pf_bits {
	__u64 pos;
	__u64 neg;
};

struct pf_comm_key {
	__u32 type;
	char comm[16];
};

struct pf_lpm_key {
	__u32 prefixlen;        /* bits of data compared */
	__u8 data[PF_KEY_DATA]; /* type id, then the path or name (exact entries end with NUL) */
};

struct pf_net_key {
	__u32 prefixlen;        /* 24 + the prefix bits of the address */
	__u8 data[PF_NET_DATA]; /* type id, kind (PF_K_ADDR/SADDR), family, address */
};

struct pf_port_key {
	__u8 type;
	__u8 kind;              /* PF_K_PORT / PF_K_SPORT */
	__u16 port;
};

#endif /* SYSWARD_PREFILTER_H */
