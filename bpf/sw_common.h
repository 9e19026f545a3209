/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Maps, load-time settings, counters, syscall arguments and the record header. */
#ifndef SYSWARD_COMMON_H
#define SYSWARD_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "abi.h"

/* ---- load-time settings (set by user space between open and load) ---- */
const volatile __u32 self_tgid = 0;          /* the agent: its own syscalls are filtered */
const volatile __u64 wake_bytes = 8 << 20;   /* force a wakeup above this much unread data */
const volatile __u32 filter_flags = 0;       /* enum sw_filter_flag: the config's `filters` */
const volatile __u64 host_mntns = 0;         /* inode of the host's mount namespace */
const volatile __u32 capture_env = 1;        /* 0: execs carry no environment (no rule reads it) */


/* ---- maps ---- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);       /* resized by user space (--ringbuf-mb) */
} events SEC(".maps");

/* per-type on/off switch: changes without reloading */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_EVT_MAX);
	__type(key, __u32);
	__type(value, __u32);
} enabled SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SW_EVT_MAX);
	__type(key, __u32);
	__type(value, struct sw_counters);
} counters SEC(".maps");

/* filters.namespaces / filters.labels: cgroup v2 ids of containers out of scope, written by the
 * agent as it learns from the container runtime which pod a container belongs to (and
 * removed when the container is gone) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} scope_cgroups SEC(".maps");

/* filters.ignore_comms: task names whose events are dropped here, before the ring buffer */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[SW_COMM_LEN]);
	__type(value, __u8);
} ignore_comms SEC(".maps");

/* Arguments of a syscall as the exit handlers see them.  Most come from the task's saved user
 * registers at exit (syscall_args); only exec saves them at entry, in the `saved` map. */
struct sw_saved {
	__u64 args[6];
	__u32 type;
	__u32 flags;
};

/* execve/execveat only: the arguments saved at entry, keyed by pid_tgid, consumed at exit
 * (after a successful exec the registers hold the new image's start state, not the args) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sw_saved);
} saved SEC(".maps");

/* Variable-size records are built here, then copied out with bpf_ringbuf_output.  Appends start
 * at an offset <= SW_VAR_LIMIT and write at most SW_PATH_MAX bytes, so the record stays under
 * SW_RECORD_MAX; the mask keeps the verifier's view of the offset bounded. */
#define SW_OFF_MASK (SW_RECORD_MAX - 1)
#define SW_VAR_LIMIT (SW_RECORD_MAX - SW_PATH_MAX - 8)
#define SW_SCRATCH_SIZE (SW_RECORD_MAX + SW_PATH_MAX + SW_NAME_MAX)

/* buf + off, with off masked in a way the compiler cannot drop (it may know that off is already
 * small, but the verifier may have lost that knowledge on a stack spill) */
static __always_inline __u8 *at_off(__u8 *buf, __u32 off)
{
	__u64 o = off;
	asm volatile("%0 &= %1" : "+r"(o) : "i"(SW_OFF_MASK));
	return buf + o;
}

struct sw_scratch {
	__u8 buf[SW_SCRATCH_SIZE];
	/* The write offset of a bpf_loop walk lives here, not on the stack: a value loaded from a
	 * map has no tracked range, so the verifier sees every iteration of the callback as the
	 * same state and converges instead of exploring each possible offset. */
	__u32 loop_off;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_scratch);
} scratch SEC(".maps");

struct sw_abi_anchor sw_abi_anchor __attribute__((unused));

#define AT_FDCWD -100
#define PF_EXITING 0x00000004 /* task_struct.flags: the task has begun do_exit() */
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFLNK 0120000
#define S_IFREG 0100000
#define S_IFBLK 0060000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFIFO 0010000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define AF_NETLINK 16
#define OVERLAYFS_SUPER_MAGIC 0x794c7630

static __always_inline struct sw_counters *counter_of(__u32 type)
{
	return bpf_map_lookup_elem(&counters, &type);
}

static __always_inline bool type_enabled(__u32 type)
{
	__u32 *on = bpf_map_lookup_elem(&enabled, &type);
	return on && *on;
}

/* Never wake the reader per event: it drains on its own timer (every 5 ms by default).  Above wake_bytes of
 * unread data, fall back to the kernel's adaptive notification (a wakeup only when the reader
 * has caught up and may be sleeping), so a slow reader is woken early without paying a forced
 * wakeup on every record while it works through a backlog.  The fill level is asked only on
 * every 16th record of a type and CPU: one helper call less per event (its saving was within
 * the measurement noise on the project's VM), and a reader that sleeps past the threshold is
 * woken at most 15 records later. */
static __always_inline __u64 wake_flag(struct sw_counters *c)
{
	if (c->submitted & 15)
		return BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wake_bytes ? 0 : BPF_RB_NO_WAKEUP;
}

/* The optional filters of the config (`filters:`); off unless user space set filter_flags,
 * so the common case costs one test of a load-time constant (the verifier drops the rest). */
static __always_inline bool user_filtered(struct task_struct *t)
{
	if (!filter_flags)
		return false;
	if ((filter_flags & SW_FILTER_HOST) && t->nsproxy->mnt_ns->ns.inum == host_mntns)
		return true;
	if (filter_flags & SW_FILTER_CGROUPS) {
		__u64 cg = bpf_get_current_cgroup_id();
		if (bpf_map_lookup_elem(&scope_cgroups, &cg))
			return true;
	}
	if (filter_flags & SW_FILTER_COMMS) {
		char comm[SW_COMM_LEN] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (bpf_map_lookup_elem(&ignore_comms, comm))
			return true;
	}
	return false;
}

/* Is this call wanted?  Counts it as seen, and as filtered when it is not. */
static __always_inline bool wanted(struct sw_counters *c, __u32 type, struct task_struct *t)
{
	c->seen++;
	if (t->tgid == self_tgid || !type_enabled(type) || user_filtered(t)) {
		c->filtered++;
		return false;
	}
	return true;
}

/* ---- syscall arguments from the saved user registers ----
 * On entry the kernel saves the user registers in the task's pt_regs, and nothing writes the
 * argument slots before the sys_exit tracepoint runs (the result goes to its own register on
 * x86-64; signal delivery and ptrace's exit stop come after the tracepoint; arm64 keeps the
 * first argument in orig_x0, which libbpf's macro reads).  So the exit program reads the
 * arguments there and needs no entry program and no per-thread map: no hash
 * update/lookup/delete per call, no stale entries, no "no slot" losses.  The exception is a
 * successful exec, which resets the registers for the new image during the call:
 * execve/execveat keep their entry program (save_args).  libbpf's PT_REGS_PARM*_SYSCALL know
 * each architecture's syscall registers; no handler reads more than five arguments. */
static __always_inline void syscall_args(struct task_struct *t, struct sw_saved *a,
					 const int nargs)
{
	/* a trusted BTF pointer: plain loads where the architecture's macro allows them */
	struct pt_regs *r = (void *)bpf_task_pt_regs(t);
	a->type = 0;
	a->flags = 0;
	a->args[0] = nargs > 0 ? PT_REGS_PARM1_SYSCALL(r) : 0;
	a->args[1] = nargs > 1 ? PT_REGS_PARM2_SYSCALL(r) : 0;
	a->args[2] = nargs > 2 ? PT_REGS_PARM3_SYSCALL(r) : 0;
	a->args[3] = nargs > 3 ? PT_REGS_PARM4_SYSCALL(r) : 0;
	a->args[4] = nargs > 4 ? PT_REGS_PARM5_SYSCALL(r) : 0;
	a->args[5] = 0;
}

/* execve/execveat entry: decide whether this call is wanted and save its arguments */
static __always_inline int save_args(struct trace_event_raw_sys_enter *ctx, __u32 type,
				     const int nargs)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sw_counters *c = counter_of(type);
	if (!c)
		return 0;
	if ((__u32)(id >> 32) == self_tgid || !type_enabled(type)) {
		c->seen++;
		c->filtered++;
		return 0;
	}
	struct sw_saved s = {};
	s.type = type;
	if (nargs > 0)
		s.args[0] = ctx->args[0];
	if (nargs > 1)
		s.args[1] = ctx->args[1];
	if (nargs > 2)
		s.args[2] = ctx->args[2];
	if (nargs > 3)
		s.args[3] = ctx->args[3];
	if (nargs > 4)
		s.args[4] = ctx->args[4];
	if (nargs > 5)
		s.args[5] = ctx->args[5];
	if (bpf_map_update_elem(&saved, &id, &s, BPF_ANY)) {
		c->seen++;
		c->lost++;
	}
	return 0;
}

/* syscall exit: fetch (and forget) the arguments saved at entry */
static __always_inline bool take_args(__u32 type, struct sw_saved *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sw_saved *s = bpf_map_lookup_elem(&saved, &id);
	if (!s)
		return false;
	__builtin_memcpy(out, s, sizeof(*out));
	bpf_map_delete_elem(&saved, &id);
	return out->type == type;
}

/* The header of every record, from the current task (a trusted BTF pointer from
 * bpf_get_current_task_btf()): its fields are plain CO-RE relocated loads, no
 * bpf_probe_read_kernel, and no helper call where a load does the same (pid and tid come from
 * the task, not from bpf_get_current_pid_tgid()). */
static __always_inline void fill_header(struct sw_header *h, struct task_struct *t, __u32 type,
					__s64 res)
{
	const struct cred *cred = t->real_cred;
	struct nsproxy *ns = t->nsproxy;
	struct signal_struct *sig = t->signal;
	struct task_struct *leader = t->group_leader;
	struct tty_struct *tty = sig->tty;
	__u32 live = sig->live.counter;

	h->ts = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->start_time = leader->start_boottime;
	h->res = res;
	h->type = type;
	h->cpu = bpf_get_smp_processor_id();
	h->pid = t->tgid;
	h->tid = t->pid;
	h->ppid = t->real_parent->tgid;
	h->uid = cred->uid.val;
	h->gid = cred->gid.val;
	h->euid = cred->euid.val;
	h->egid = cred->egid.val;
	h->loginuid = t->loginuid.val;
	h->pidns = ns->pid_ns_for_children->ns.inum;
	h->mntns = ns->mnt_ns->ns.inum;
	h->tty = 0;
	if (tty) {
		struct tty_driver *drv = tty->driver;
		__u32 major = drv->major;
		__u32 minor = drv->minor_start + tty->index;
		/* the user-space dev_t encoding (st_rdev) */
		h->tty = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
	}
	/* the thread count rides in the high half of flags (the record writers OR their bits
	 * in); a leader that began to exit no longer counts as alive (PF_EXITING is set just
	 * before it leaves signal->live, so for that instant the count still includes it) */
	if (live > SW_THREADS_MAX)
		live = SW_THREADS_MAX;
	h->flags = live << SW_THREADS_SHIFT;
	if (!(leader->flags & PF_EXITING))
		h->flags |= SW_F_LEADER_ALIVE;
	__builtin_memcpy(h->comm, t->comm, sizeof(h->comm));
}

static __always_inline struct sw_scratch *scratch_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* copy a built record out of the scratch buffer; count the outcome */
static __always_inline void output_record(struct sw_counters *c, struct sw_header *h, __u32 size)
{
	__u64 sz = size;
	/* appends keep size below SW_RECORD_MAX; the mask makes that visible to the verifier */
	asm volatile("%0 &= %1" : "+r"(sz) : "i"(SW_OFF_MASK));
	if (sz < sizeof(struct sw_header))
		return;
	h->size = sz;
	if (bpf_ringbuf_output(&events, h, sz, wake_flag(c)))
		c->lost++;
	else
		c->submitted++;
}

#endif /* SYSWARD_COMMON_H */
