// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* The enforcement unit: decides in the kernel, at the hook that saw the syscall, whether a
 * process is killed (bpf_send_signal(SIGKILL)) or a connection refused (cgroup connect/sendmsg
 * programs returning 0, i.e. EPERM).
 *
 * User space compiles each enforceable rule into "slots" (one per alternative of its
 * condition): a slot fires for an enforcement type when, for every field kind it tests, the
 * key of this event is (positive test) or is not (negative test) in that kind's set map.  Each
 * set map stores, per key, the bit masks of the slots whose positive / negative test the key
 * satisfies, so one lookup per kind decides for all slots at once.  A hook therefore costs one
 * array lookup when no slot concerns its type, and a few lookups otherwise; the path walks
 * (exe, opened file) only run when some candidate slot still needs them. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "enforce.h"
#include "sw_task.h"
#include "sw_kcond.h"
#include "sw_walk.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL"; /* bpf_send_signal is GPL-only */

#define SIGKILL 9
#define EPERM 1
#define PF_KTHREAD 0x00200000
#define ENF_MAP_LPM_TRIE 11
#define ENF_F_NO_PREALLOC 1

/* ---- load-time settings ---- */
const volatile __u32 agent_tgid = 0;  /* never killed */
const volatile __u32 host_pidns = 0;  /* pid namespace inode of the host (container test) */

/* ---- maps, filled by sysward.enforce.maps ---- */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enf_cfg);
} enf_config SEC(".maps");

#define PATH_TRIE(name, n)                                                                      \
	struct {                                                                                 \
		__uint(type, ENF_MAP_LPM_TRIE);                                                  \
		__uint(max_entries, n);                                                          \
		__uint(map_flags, ENF_F_NO_PREALLOC);                                            \
		__type(key, struct enf_path_key);                                                \
		__type(value, struct enf_bits);                                                  \
	} name SEC(".maps")

PATH_TRIE(enf_exe, 4096);
PATH_TRIE(enf_file, 4096);
PATH_TRIE(enf_never_kill, 1024); /* value.pos != 0: never kill this executable */

struct {
	__uint(type, ENF_MAP_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, ENF_F_NO_PREALLOC);
	__type(key, struct enf_addr_key);
	__type(value, struct enf_bits);
} enf_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct enf_comm_key);
	__type(value, struct enf_bits);
} enf_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct enf_bits);
} enf_uid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);  /* port, host order */
	__type(value, struct enf_bits);
} enf_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);  /* tgid */
	__type(value, __u32);
} enf_protected SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} enf_reports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ENF_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} enf_counters SEC(".maps");

/* Path buffer: the LPM key first, then room for one more component so that a read that starts
 * near the end of the key never writes out of the value. */
struct enf_scratch {
	struct enf_path_key key;
	__u8 spill[ENF_PATH_MAX];
	__u64 stack[64];             /* dentries, leaf first (ENF_PATH_DEPTH used) */
	__u32 depth;
	__u32 off;
	__u32 trunc;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct enf_scratch);
} enf_scratch SEC(".maps");

/* every shared struct once, so they land in the BTF the ABI test reads */
struct enf_abi_anchor {
	struct enf_cfg cfg;
	struct enf_bits bits;
	struct enf_path_key path;
	struct enf_addr_key addr;
	struct enf_comm_key comm;
	struct enf_report report;
	enum enf_type type;
	enum enf_kind kind;
	enum enf_act act;
	enum enf_protect protect;
	enum enf_counter counter;
	enum enf_bound bound;
};
struct enf_abi_anchor enf_abi_anchor __attribute__((unused));

/* the UAPI context of cgroup sock_addr programs (layout fixed by the kernel ABI) */
struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;
	__u32 user_ip6[4];
	__u32 user_port;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 msg_src_ip4;
	__u32 msg_src_ip6[4];
	__u64 sk;
};

/* kernel types this unit reads beyond the sensors' curated vmlinux.h */
struct linux_binprm {
	struct file *file;
} __attribute__((preserve_access_index));

/* ------------------------------------------------------------------------------------------ */

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&enf_counters, &which);
	if (c)
		*c += 1;
}

static __always_inline struct enf_cfg *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&enf_config, &zero);
}

/* ---- paths: walk up from the leaf (remembering dentries), then write top-down ---- */

struct walk_up {
	struct enf_scratch *sc;
	struct sw_walk w;
};

static long up_step(__u32 i, struct walk_up *x)
{
	struct dentry *d = NULL;
	int step = sw_walk_next(&x->w, &d);
	if (step == SW_WALK_END)
		return 1;
	if (step == SW_WALK_CROSSED)
		return 0;
	struct enf_scratch *sc = x->sc;
	__u32 n = sc->depth;
	if (n >= ENF_PATH_DEPTH) {
		sc->trunc = 2; /* deeper than we look: the top is unknown */
		return 1;
	}
	__u64 k = n;
	asm volatile("%0 &= 63" : "+r"(k));
	sc->stack[k] = (__u64)d;
	sc->depth = n + 1;
	return x->w.dentry ? 0 : 1; /* a component that is its own parent is the last */
}

static long down_step(__u32 i, struct enf_scratch **psc)
{
	struct enf_scratch *sc = *psc;
	__u32 depth = sc->depth;
	if (i >= depth)
		return 1;
	__u64 idx = depth - 1 - i;
	asm volatile("%0 &= 63" : "+r"(idx)); /* a mask the verifier sees, whatever clang knew */
	struct dentry *d = (void *)sc->stack[idx];
	__u32 off = sc->off;
	if (off >= ENF_PATH_MAX - 1) {
		sc->trunc = 1; /* longer than the key: prefixes still compare */
		return 1;
	}
	sc->key.data[off & (ENF_PATH_MAX - 1)] = '/';
	off++;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	long n = bpf_probe_read_kernel_str(&sc->key.data[off & (ENF_PATH_MAX - 1)], ENF_PATH_MAX,
					   name);
	if (n <= 0)
		return 1;
	sc->off = off + n - 1;
	return 0;
}

/* Build the absolute path of p (as the task sees it: up to its root) into the scratch key.
 * Returns the scratch, or NULL when the path cannot be known (too deep). */
static __always_inline struct enf_scratch *path_key(struct path *p, struct task_struct *t)
{
	__u32 zero = 0;
	struct enf_scratch *sc = bpf_map_lookup_elem(&enf_scratch, &zero);
	if (!sc)
		return NULL;
	sc->depth = 0;
	sc->off = 0;
	sc->trunc = 0;
	struct walk_up w = {};
	w.sc = sc;
	if (!sw_walk_init(&w.w, p, t))
		return NULL;
	bpf_loop(ENF_PATH_DEPTH + 8, up_step, &w, 0);
	if (sc->trunc)
		return NULL;
	bpf_loop(ENF_PATH_DEPTH, down_step, &sc, 0);
	__u32 off = sc->off;
	if (off == 0) {
		sc->key.data[0] = '/';
		off = 1;
	}
	if (off < ENF_PATH_MAX) {
		sc->key.data[off & (ENF_PATH_MAX - 1)] = 0;
		sc->key.prefixlen = (off + 1) * 8; /* the NUL too: exact entries end with it */
	} else {
		sc->key.prefixlen = ENF_PATH_MAX * 8;
	}
	return sc;
}

static __always_inline struct enf_bits *path_lookup(void *map, struct path *p,
						     struct task_struct *t)
{
	struct enf_scratch *sc = path_key(p, t);
	if (!sc)
		return NULL;
	return bpf_map_lookup_elem(map, &sc->key);
}

static __always_inline struct path *exe_path(struct task_struct *t)
{
	struct file *exe = BPF_CORE_READ(t, mm, exe_file);
	if (!exe)
		return NULL;
	return &exe->f_path;
}

/* ---- matching ---- */

/* What a hook knows besides the current task. */
struct enf_in {
	struct path *file;  /* opened file (open hooks) */
	struct path *exe;   /* overrides the task's exe (LSM exec: the program being loaded) */
	__u32 has_dest;
	__u32 port;
	__u16 family;
	__u8 addr[16];
};

/* the clause step every kernel condition of sysward takes (sw_kcond.h) */
static __always_inline bool needs(struct enf_cfg *cfg, __u64 cand, int k)
{
	return kc_needs(cand, cfg->req_pos[k & (ENF_K_MAX - 1)], cfg->req_neg[k & (ENF_K_MAX - 1)]);
}

static __always_inline __u64 apply(struct enf_cfg *cfg, __u64 cand, int k, struct enf_bits *hit)
{
	return kc_apply(cand, cfg->req_pos[k & (ENF_K_MAX - 1)], cfg->req_neg[k & (ENF_K_MAX - 1)],
			hit ? hit->pos : 0, hit ? hit->neg : 0);
}

static __always_inline __u64 match(struct enf_cfg *cfg, __u64 cand, struct task_struct *t,
				   struct enf_in *in)
{
	if (needs(cfg, cand, ENF_K_CONTAINER)) {
		__u32 ns = BPF_CORE_READ(t, nsproxy, pid_ns_for_children, ns.inum);
		struct enf_bits all = {~0ull, ~0ull};
		cand = apply(cfg, cand, ENF_K_CONTAINER, ns != host_pidns ? &all : NULL);
		if (!cand)
			return 0;
	}
	if (needs(cfg, cand, ENF_K_UID)) {
		__u32 euid = BPF_CORE_READ(t, real_cred, euid.val);
		cand = apply(cfg, cand, ENF_K_UID, bpf_map_lookup_elem(&enf_uid, &euid));
		if (!cand)
			return 0;
	}
	if (needs(cfg, cand, ENF_K_COMM)) {
		struct enf_comm_key ck = {};
		bpf_get_current_comm(ck.comm, sizeof(ck.comm));
		cand = apply(cfg, cand, ENF_K_COMM, bpf_map_lookup_elem(&enf_comm, &ck));
		if (!cand)
			return 0;
	}
	if (needs(cfg, cand, ENF_K_PORT)) {
		__u32 port = in->port;
		cand = apply(cfg, cand, ENF_K_PORT,
			     in->has_dest ? bpf_map_lookup_elem(&enf_port, &port) : NULL);
		if (!cand)
			return 0;
	}
	if (needs(cfg, cand, ENF_K_ADDR)) {
		struct enf_addr_key ak = {};
		ak.prefixlen = 128;
		__builtin_memcpy(ak.addr, in->addr, 16);
		cand = apply(cfg, cand, ENF_K_ADDR,
			     in->has_dest ? bpf_map_lookup_elem(&enf_addr, &ak) : NULL);
		if (!cand)
			return 0;
	}
	if (needs(cfg, cand, ENF_K_FILE)) {
		cand = apply(cfg, cand, ENF_K_FILE,
			     in->file ? path_lookup(&enf_file, in->file, t) : NULL);
		if (!cand)
			return 0;
	}
	if (needs(cfg, cand, ENF_K_EXE)) {
		struct path *p = in->exe ? in->exe : exe_path(t);
		cand = apply(cfg, cand, ENF_K_EXE, p ? path_lookup(&enf_exe, p, t) : NULL);
	}
	return cand;
}

/* ---- acting ---- */

static __always_inline void report(__u32 etype, __u64 slots, __u8 action, __u8 reason, long err,
				   struct task_struct *t, struct enf_in *in)
{
	struct enf_report *r = bpf_ringbuf_reserve(&enf_reports, sizeof(*r), 0);
	if (!r) {
		count(ENF_C_REPORT_LOST);
		return;
	}
	__u64 id = bpf_get_current_pid_tgid();
	r->ts = bpf_ktime_get_boot_ns();
	r->slots = slots;
	r->cgroup_id = bpf_get_current_cgroup_id();
	r->pid = id >> 32;
	r->tid = (__u32)id;
	r->uid = BPF_CORE_READ(t, real_cred, euid.val);
	r->err = err;
	r->etype = etype;
	r->action = action;
	r->reason = reason;
	r->port = in ? in->port : 0;
	r->family = in ? in->family : 0;
	if (in)
		__builtin_memcpy(r->addr, in->addr, 16);
	else
		__builtin_memset(r->addr, 0, 16);
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
}

/* Safety: who is never killed, whatever a rule says. */
static __always_inline __u8 protected_reason(struct task_struct *t, __u32 tgid)
{
	if (tgid == 1)
		return ENF_PROT_INIT;
	if (tgid == agent_tgid)
		return ENF_PROT_AGENT;
	if ((BPF_CORE_READ(t, flags) & PF_KTHREAD) || !BPF_CORE_READ(t, mm))
		return ENF_PROT_KTHREAD;
	if (bpf_map_lookup_elem(&enf_protected, &tgid))
		return ENF_PROT_TGID;
	struct path *p = exe_path(t);
	if (p) {
		struct enf_bits *nk = path_lookup(&enf_never_kill, p, t);
		if (nk && nk->pos)
			return ENF_PROT_NEVER_KILL;
	}
	return ENF_PROT_NONE;
}

/* The body of every kill hook. */
static __always_inline int enforce_kill(__u32 etype, struct enf_in *in)
{
	struct enf_cfg *cfg = config();
	if (!cfg)
		return 0;
	__u64 cand = cfg->type_slots[etype & (ENF_T_MAX - 1)] & cfg->kill_slots;
	if (!cand)
		return 0;
	count(ENF_C_CHECKS);
	struct task_struct *t = (void *)bpf_get_current_task();
	__u64 hit = match(cfg, cand, t, in);
	if (!hit)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u8 why = protected_reason(t, tgid);
	if (why != ENF_PROT_NONE) {
		count(ENF_C_PROTECTED);
		report(etype, hit, ENF_ACT_PROTECTED, why, 0, t, in);
		return 0;
	}
	if (!(hit & ~cfg->audit_slots)) {
		count(ENF_C_WOULD_KILL);
		report(etype, hit, ENF_ACT_WOULD_KILL, 0, 0, t, in);
		return 0;
	}
	long rc = bpf_send_signal(SIGKILL);
	if (rc) {
		count(ENF_C_FAILED);
		report(etype, hit, ENF_ACT_FAILED, 0, rc, t, in);
	} else {
		count(ENF_C_KILLED);
		report(etype, hit, ENF_ACT_KILLED, 0, 0, t, in);
	}
	return 0;
}

/* The body of every deny hook: true when the operation must be refused. */
static __always_inline bool enforce_deny(__u32 etype, struct enf_in *in, bool kill_too)
{
	struct enf_cfg *cfg = config();
	if (!cfg)
		return false;
	__u64 acting = cfg->deny_slots | (kill_too ? cfg->kill_slots : 0);
	__u64 cand = cfg->type_slots[etype & (ENF_T_MAX - 1)] & acting;
	if (!cand)
		return false;
	count(ENF_C_CHECKS);
	struct task_struct *t = (void *)bpf_get_current_task();
	__u64 hit = match(cfg, cand, t, in);
	if (!hit)
		return false;
	__u64 deny = hit & cfg->deny_slots;
	/* kill slots are reported by their kill hook; here they only stop the packet leaving */
	bool refuse = hit & ~cfg->audit_slots;
	if (deny) {
		if (deny & ~cfg->audit_slots) {
			count(ENF_C_DENIED);
			report(etype, deny, ENF_ACT_DENIED, 0, 0, t, in);
		} else {
			count(ENF_C_WOULD_DENY);
			report(etype, deny, ENF_ACT_WOULD_DENY, 0, 0, t, in);
		}
	}
	return refuse;
}

/* ---- exec: the new program dies before its first instruction ---- */

SEC("tracepoint/sched/sched_process_exec")
int enf_exec(void *ctx)
{
	struct enf_in in = {};
	return enforce_kill(ENF_T_EXEC, &in);
}

/* ---- open: at syscall exit, the file is open but the opener never runs again ---- */

static __always_inline int open_exit(struct trace_event_raw_sys_exit *ctx)
{
	long fd = ctx->ret;
	if (fd < 0)
		return 0;
	struct enf_cfg *cfg = config();
	if (!cfg || !(cfg->type_slots[ENF_T_OPEN] & cfg->kill_slots))
		return 0;
	struct task_struct *t = (void *)bpf_get_current_task();
	struct file *f = fd_file(t, fd);
	struct enf_in in = {};
	in.file = f ? &f->f_path : NULL;
	return enforce_kill(ENF_T_OPEN, &in);
}

SEC("tracepoint/syscalls/sys_exit_open")
int enf_exit_open(struct trace_event_raw_sys_exit *ctx) { return open_exit(ctx); }
SEC("tracepoint/syscalls/sys_exit_openat")
int enf_exit_openat(struct trace_event_raw_sys_exit *ctx) { return open_exit(ctx); }
SEC("tracepoint/syscalls/sys_exit_openat2")
int enf_exit_openat2(struct trace_event_raw_sys_exit *ctx) { return open_exit(ctx); }
SEC("tracepoint/syscalls/sys_exit_creat")
int enf_exit_creat(struct trace_event_raw_sys_exit *ctx) { return open_exit(ctx); }

/* ---- connect ---- */

static __always_inline void v4_mapped(__u8 *out, __u32 ip4_be)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &ip4_be, 4);
}

/* kill: at syscall entry, from the address the caller passed */
SEC("tracepoint/syscalls/sys_enter_connect")
int enf_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	struct enf_cfg *cfg = config();
	if (!cfg || !(cfg->type_slots[ENF_T_CONNECT] & cfg->kill_slots))
		return 0;
	const void *ua = (const void *)ctx->args[1];
	__u16 fam = 0, port = 0;
	if (!ua || ctx->args[2] < 2 || bpf_probe_read_user(&fam, sizeof(fam), ua))
		return 0;
	struct enf_in in = {};
	in.family = fam;
	if (fam == 2) {
		__u32 a = 0;
		bpf_probe_read_user(&port, 2, ua + 2);
		bpf_probe_read_user(&a, 4, ua + 4);
		v4_mapped(in.addr, a);
	} else if (fam == 10) {
		bpf_probe_read_user(&port, 2, ua + 2);
		bpf_probe_read_user(in.addr, 16, ua + 8);
	} else {
		return 0;
	}
	in.port = __builtin_bswap16(port);
	in.has_dest = 1;
	return enforce_kill(ENF_T_CONNECT, &in);
}

/* deny: cgroup socket-address hooks; returning 0 makes connect()/sendmsg() fail with EPERM */
static __always_inline int sock_addr4(struct bpf_sock_addr *ctx)
{
	struct enf_in in = {};
	in.family = 2;
	in.has_dest = 1;
	in.port = __builtin_bswap16((__u16)ctx->user_port);
	v4_mapped(in.addr, ctx->user_ip4);
	return enforce_deny(ENF_T_CONNECT, &in, true) ? 0 : 1;
}

static __always_inline int sock_addr6(struct bpf_sock_addr *ctx)
{
	struct enf_in in = {};
	in.family = 10;
	in.has_dest = 1;
	in.port = __builtin_bswap16((__u16)ctx->user_port);
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2],
	      w3 = ctx->user_ip6[3];
	__builtin_memcpy(in.addr, &w0, 4);
	__builtin_memcpy(in.addr + 4, &w1, 4);
	__builtin_memcpy(in.addr + 8, &w2, 4);
	__builtin_memcpy(in.addr + 12, &w3, 4);
	return enforce_deny(ENF_T_CONNECT, &in, true) ? 0 : 1;
}

SEC("cgroup/connect4")
int enf_connect4(struct bpf_sock_addr *ctx) { return sock_addr4(ctx); }
SEC("cgroup/connect6")
int enf_connect6(struct bpf_sock_addr *ctx) { return sock_addr6(ctx); }
SEC("cgroup/sendmsg4")
int enf_sendmsg4(struct bpf_sock_addr *ctx) { return sock_addr4(ctx); }
SEC("cgroup/sendmsg6")
int enf_sendmsg6(struct bpf_sock_addr *ctx) { return sock_addr6(ctx); }

/* ---- syscalls judged on the process alone: kill at entry (the call itself still runs) ---- */

#define KILL_AT_ENTRY(sc, etype)                                                                \
	SEC("tracepoint/syscalls/sys_enter_" #sc)                                                \
	int enf_enter_##sc(void *ctx)                                                            \
	{                                                                                        \
		struct enf_in in = {};                                                           \
		return enforce_kill(etype, &in);                                                 \
	}

KILL_AT_ENTRY(ptrace, ENF_T_PTRACE)
KILL_AT_ENTRY(setuid, ENF_T_SETUID)
KILL_AT_ENTRY(setreuid, ENF_T_SETUID)
KILL_AT_ENTRY(setresuid, ENF_T_SETUID)
KILL_AT_ENTRY(setgid, ENF_T_SETGID)
KILL_AT_ENTRY(setregid, ENF_T_SETGID)
KILL_AT_ENTRY(setresgid, ENF_T_SETGID)
KILL_AT_ENTRY(unshare, ENF_T_UNSHARE)
KILL_AT_ENTRY(setns, ENF_T_SETNS)
KILL_AT_ENTRY(memfd_create, ENF_T_MEMFD)
KILL_AT_ENTRY(bpf, ENF_T_BPF)
KILL_AT_ENTRY(mount, ENF_T_MOUNT)
KILL_AT_ENTRY(init_module, ENF_T_MODULE)
KILL_AT_ENTRY(finit_module, ENF_T_MODULE)
KILL_AT_ENTRY(process_vm_writev, ENF_T_VMWRITE)
KILL_AT_ENTRY(capset, ENF_T_CAPSET)

/* ---- BPF LSM: a real refusal (EPERM) where the kernel lets LSM programs attach.  User space
 * loads these only after sysward.kernel.probe found LSM programs usable.
 *
 * Since Linux 6.12 the verifier accepts from an LSM program only a return value it can prove
 * to lie in [-MAX_ERRNO, 0]: an earlier module's verdict is passed on clamped, and each verdict
 * is a constant set in its own branch (the empty asm keeps clang from folding
 * `deny ? -EPERM : 0` into a negation, whose result the verifier does not bound). ---- */

#define LSM_MAX_ERRNO 4095

static __always_inline int lsm_passed(int ret)
{
	long r = ret;
	/* opaque from here: the register compared below is the one returned, not the raw
	 * 64-bit context word clang would otherwise return (same low half, unbounded) */
	asm volatile("" : "+r"(r));
	if (r < -LSM_MAX_ERRNO || r > 0)
		return -EPERM; /* fail closed on a value no hook returns */
	return (int)r;
}

static __always_inline int lsm_verdict(bool deny)
{
	long v = 0;
	if (deny) {
		v = -EPERM; /* as a 64-bit -1: an int constant may be emitted as 0xffffffff */
		asm volatile("" : "+r"(v));
	}
	return (int)v;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(enf_lsm_exec, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return lsm_passed(ret);
	struct file *f = BPF_CORE_READ(bprm, file);
	struct enf_in in = {};
	in.exe = f ? &f->f_path : NULL;
	return lsm_verdict(enforce_deny(ENF_T_EXEC, &in, false));
}

SEC("lsm/file_open")
int BPF_PROG(enf_lsm_open, struct file *file, int ret)
{
	if (ret)
		return lsm_passed(ret);
	struct enf_in in = {};
	in.file = &file->f_path;
	return lsm_verdict(enforce_deny(ENF_T_OPEN, &in, false));
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(enf_lsm_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return lsm_passed(ret);
	struct enf_in in = {};
	return lsm_verdict(enforce_deny(ENF_T_PTRACE, &in, false));
}
