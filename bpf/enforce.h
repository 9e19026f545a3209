/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The enforcement unit's wire format and map layouts: shared by enforce.bpf.c and mirrored in
 * src/sysward/enforce/abi.py (tests/unit/test_abi.py checks the mirror, constants included,
 * against the object's BTF: constants are enums so that they reach it).  Plain fixed-width
 * types only. */
#ifndef SYSWARD_ENFORCE_H
#define SYSWARD_ENFORCE_H

#include "abi.h" /* SW_COMM_LEN: one comm length for both objects */

enum enf_bound {
	ENF_MAX_SLOTS = 64,   /* one bit per slot in every mask */
	ENF_PATH_MAX = 256,   /* bytes of a path the kernel compares (LPM trie key data limit) */
	ENF_PATH_DEPTH = 40,  /* components walked */
};

/* Enforcement event types: which hook is asking.  Python: sysward.enforce.abi.EnfType */
enum enf_type {
	ENF_T_EXEC = 0,
	ENF_T_OPEN = 1,
	ENF_T_CONNECT = 2,
	ENF_T_PTRACE = 3,
	ENF_T_SETUID = 4,
	ENF_T_SETGID = 5,
	ENF_T_UNSHARE = 6,
	ENF_T_SETNS = 7,
	ENF_T_MEMFD = 8,
	ENF_T_BPF = 9,
	ENF_T_MOUNT = 10,
	ENF_T_MODULE = 11,
	ENF_T_VMWRITE = 12,
	ENF_T_CAPSET = 13,
	ENF_T_MAX = 16,
};

/* Fields the kernel can test; each has its own lookup producing a (pos, neg) hit pair. */
enum enf_kind {
	ENF_K_CONTAINER = 0, /* pid namespace differs from the host's */
	ENF_K_UID = 1,       /* effective uid */
	ENF_K_COMM = 2,      /* task comm */
	ENF_K_PORT = 3,      /* destination port */
	ENF_K_ADDR = 4,      /* destination address (LPM, IPv4 mapped into IPv6) */
	ENF_K_FILE = 5,      /* path of the opened file (LPM) */
	ENF_K_EXE = 6,       /* path of the executable (LPM) */
	ENF_K_MAX = 8,
};

/* What the kernel did; Python: sysward.enforce.abi.Act */
enum enf_act {
	ENF_ACT_KILLED = 1,
	ENF_ACT_WOULD_KILL = 2,
	ENF_ACT_DENIED = 3,
	ENF_ACT_WOULD_DENY = 4,
	ENF_ACT_FAILED = 5,    /* bpf_send_signal refused: err holds its result */
	ENF_ACT_PROTECTED = 6, /* a safety rule spared the process: reason says which */
};

enum enf_protect {
	ENF_PROT_NONE = 0,
	ENF_PROT_INIT = 1,
	ENF_PROT_AGENT = 2,
	ENF_PROT_KTHREAD = 3,
	ENF_PROT_NEVER_KILL = 4,
	ENF_PROT_TGID = 5,  /* a tgid user space listed in enf_protected */
};

/* the rule tables, rewritten as a whole on every (re)load: one element of enf_config */
struct enf_cfg {
	__u64 type_slots[ENF_T_MAX]; /* slots that can fire on each enforcement type */
	__u64 req_pos[ENF_K_MAX];    /* slots that need a hit in kind k */
	__u64 req_neg[ENF_K_MAX];    /* slots that need no hit in kind k */
	__u64 kill_slots;            /* slots whose action is kill */
	__u64 deny_slots;            /* slots whose action is deny */
	__u64 audit_slots;           /* slots that only report what they would do */
};

/* value of every set map: which slots' positive / negative tests the key satisfies */
struct enf_bits {
	__u64 pos;
	__u64 neg;
};

struct enf_path_key {
	__u32 prefixlen; /* bits */
	__u8 data[ENF_PATH_MAX];
};

struct enf_addr_key {
	__u32 prefixlen; /* bits; IPv4 a.b.c.d is ::ffff:a.b.c.d */
	__u8 addr[16];
};

struct enf_comm_key {
	char comm[SW_COMM_LEN];
};

/* one enforcement action, to user space */
struct enf_report {
	__u64 ts;       /* bpf_ktime_get_boot_ns */
	__u64 slots;    /* the slots that matched */
	__u64 cgroup_id;
	__u32 pid;      /* tgid */
	__u32 tid;
	__u32 uid;      /* effective */
	__s32 err;      /* bpf_send_signal result for FAILED */
	__u16 etype;    /* enum enf_type */
	__u8 action;    /* enum enf_act */
	__u8 reason;    /* enum enf_protect */
	__u16 port;     /* destination port (connect) */
	__u16 family;   /* destination family (connect) */
	__u8 addr[16];  /* destination address (connect; IPv4 mapped) */
	char comm[SW_COMM_LEN];
};

enum enf_counter {
	ENF_C_KILLED = 0,
	ENF_C_WOULD_KILL = 1,
	ENF_C_DENIED = 2,
	ENF_C_WOULD_DENY = 3,
	ENF_C_FAILED = 4,
	ENF_C_PROTECTED = 5,
	ENF_C_REPORT_LOST = 6,
	ENF_C_CHECKS = 7,     /* hook runs that had candidate slots */
	ENF_C_MAX = 8,
};

#endif /* SYSWARD_ENFORCE_H */
