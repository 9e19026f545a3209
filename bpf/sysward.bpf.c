// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sysward's sensors: one object with a sys_exit tracepoint program per event type (it reports
 * the event once, with its result, reading the arguments from the task's saved user registers)
 * plus sched_process_exec and sched_process_exit.  Only execve/execveat also have an entry
 * program that saves the arguments in a per-thread map: a successful exec has replaced the
 * registers and the memory the arguments pointed to by the time it returns.  User space loads
 * only the programs of the requested types; the `enabled` map switches types on and off
 * without reloading.
 *
 * Fixed-size records (integers, sockets) are reserved in the ring buffer and filled in place;
 * variable-size ones (paths, argv) are built in a per-CPU scratch buffer and copied out with
 * bpf_ringbuf_output at their real length, which keeps the ring buffer dense.
 */
#include "sw_paths.h"
#include "sw_prefilter.h"

/* GPL-compatible, as bpf_probe_read_* and the ring buffer helpers require (LICENSE) */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define O_WRONLY 01
#define O_ACCMODE 03
#define O_CREAT 0100
#define O_TRUNC 01000
#define SIGCHLD 17
#define CLONE_VM 0x100
#define CLONE_VFORK 0x4000

/* ------------------------------------------------------------------ record writers */

struct sw_rec_ints {
	struct sw_header h;
	struct sw_ints p;
};

struct sw_rec_sock {
	struct sw_header h;
	struct sw_sock p;
};

static __always_inline int emit_ints(struct sw_counters *c, struct task_struct *t, __u32 type,
				     __s64 res, __s64 i0, __s64 i1, __s64 i2, __s64 i3)
{
	bool drop;
	__u32 pf = pf_verdict(c, t, type, res, i0, i1, i2, i3, NULL, 0, &drop);
	if (drop)
		return 0;
	struct sw_rec_ints *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		c->lost++;
		return 0;
	}
	fill_header(&r->h, t, type, res);
	r->h.flags |= pf;
	r->h.size = sizeof(*r);
	r->p.i0 = i0;
	r->p.i1 = i1;
	r->p.i2 = i2;
	r->p.i3 = i3;
	bpf_ringbuf_submit(r, wake_flag(c));
	c->submitted++;
	return 0;
}

/* how a string argument of a sw_strs record is obtained */
enum { A_NONE, A_RAW, A_PATH, A_FD, A_CWD };

/* One string argument: A_RAW a user string as written; A_PATH a user path and, when it is
 * relative, the directory of `dirfd`; A_FD the path of descriptor `dirfd`; A_CWD the cwd. */
struct str_arg {
	__u64 uptr;
	__s64 dirfd;
	int kind;
};

/* What a sw_strs record carries besides its header: three integers, three strings. */
struct strs_in {
	__s64 i[3];
	struct str_arg s[3];
};

#define S_RAW(p) { .uptr = (p), .kind = A_RAW }
#define S_PATH(p, fd) { .uptr = (p), .dirfd = (fd), .kind = A_PATH }
#define S_FD(fd) { .dirfd = (fd), .kind = A_FD }
#define S_CWD { .kind = A_CWD }

static __always_inline __u32 put_arg(__u8 *buf, __u32 off, const struct str_arg *arg,
				     struct task_struct *t, __u16 *name_len, __u16 *dir_len,
				     __u32 *flags)
{
	__u32 n = 0;
	*name_len = 0;
	*dir_len = 0;
	if (arg->kind == A_RAW) {
		n = put_user_str(buf, off, (const void *)arg->uptr, flags);
		*name_len = n;
	} else if (arg->kind == A_PATH) {
		n = put_path_arg(buf, off, (const void *)arg->uptr, arg->dirfd, t, name_len, dir_len,
				 flags);
	} else if (arg->kind == A_FD) {
		struct file *f = fd_file(t, arg->dirfd);
		if (f)
			n = put_dentry_path(buf, off, &f->f_path, t, flags);
		*dir_len = n;
	} else if (arg->kind == A_CWD) {
		struct fs_struct *fs = BPF_CORE_READ(t, fs);
		n = put_dentry_path(buf, off, &fs->pwd, t, flags);
		*dir_len = n;
	}
	return n;
}

static __always_inline int emit_strs(struct sw_counters *c, struct task_struct *t, __u32 type,
				     __s64 res, const struct strs_in *in)
{
	bool drop;
	bool path0 = in->s[0].kind == A_PATH;
	__u32 pf = pf_verdict(c, t, type, res, in->i[0], in->i[1], in->i[2], 0,
			      path0 ? (const void *)in->s[0].uptr : NULL, in->s[0].dirfd, &drop);
	if (drop)
		return 0;
	struct sw_scratch *sc = scratch_buf();
	if (!sc) {
		c->lost++;
		return 0;
	}
	__u8 *buf = sc->buf;
	struct sw_header *h = (void *)buf;
	struct sw_strs *p = (void *)(buf + sizeof(*h));
	__u32 flags = 0;
	__u32 off = sizeof(*h) + sizeof(*p);

	fill_header(h, t, type, res);
	p->i0 = in->i[0];
	p->i1 = in->i[1];
	p->i2 = in->i[2];
	p->pad = 0;
	off += put_arg(buf, off, &in->s[0], t, &p->s0_name_len, &p->s0_dir_len, &flags);
	off += put_arg(buf, off, &in->s[1], t, &p->s1_name_len, &p->s1_dir_len, &flags);
	off += put_arg(buf, off, &in->s[2], t, &p->s2_name_len, &p->s2_dir_len, &flags);
	h->flags |= flags | pf;
	output_record(c, h, off);
	return 0;
}

/* In a SW_HANDLER (it uses the handler's c, task and type): a sw_strs record with result res,
 * integers i0..i2 and up to three string arguments (S_RAW, S_PATH, S_FD, S_CWD); the slots
 * not given stay empty (A_NONE is 0). */
#define EMIT_STRS(res, i0, i1, i2, ...)                                                        \
	emit_strs(c, task, type, (res),                                                          \
		  &(struct strs_in){ .i = { (i0), (i1), (i2) }, .s = { __VA_ARGS__ } })

/* Socket records are built in the per-CPU scratch buffer: the prefilter judges the filled
 * payload (its addresses and ports), so a rejected event costs no ring-buffer space; one
 * that passes gets its header and is copied out. */
static __always_inline struct sw_rec_sock *sock_begin(void)
{
	struct sw_scratch *sc = scratch_buf();
	if (!sc)
		return NULL;
	struct sw_rec_sock *r = (void *)sc->buf;
	__builtin_memset(&r->p, 0, sizeof(r->p));
	return r;
}

static __always_inline void sock_submit(struct sw_counters *c, struct task_struct *t, __u32 type,
					__s64 res, struct sw_rec_sock *r)
{
	bool drop;
	__u32 pf = pf_verdict_sock(c, t, type, res, &r->p, &drop);
	if (drop)
		return;
	fill_header(&r->h, t, type, res);
	r->h.flags |= pf;
	r->h.size = sizeof(*r);
	if (bpf_ringbuf_output(&events, r, sizeof(*r), wake_flag(c)))
		c->lost++;
	else
		c->submitted++;
}

/* ------------------------------------------------------------------ program macros */

#define SW_HANDLER(name)                                                                         \
	static __always_inline int name(struct trace_event_raw_sys_exit *ctx, __u32 type,          \
					struct sw_saved *a, struct sw_counters *c,                 \
					struct task_struct *task)

/* The body of an exit program: counts the call, filters it, reads its `nargs` arguments from
 * the saved user registers and runs `handler`. */
#define SW_EXIT_BODY(T, handler, nargs)                                                          \
	struct sw_counters *c = counter_of(T);                                                   \
	if (!c)                                                                                  \
		return 0;                                                                        \
	struct task_struct *task = bpf_get_current_task_btf();                                   \
	if (!wanted(c, T, task))                                                                 \
		return 0;                                                                        \
	struct sw_saved a;                                                                       \
	syscall_args(task, &a, nargs);                                                           \
	return handler(ctx, T, &a, c, task);

/* The exit program of one syscall. */
#define SW_SYSCALL(sc, T, handler, nargs)                                                        \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                                                 \
	int sw_exit_##sc(struct trace_event_raw_sys_exit *ctx)                                   \
	{                                                                                        \
		SW_EXIT_BODY(T, handler, nargs)                                                  \
	}

/* fork/clone: the child returns from the same syscall (result 0) and passes the same exit
 * tracepoint; only the parent's return is the event. */
#define SW_SYSCALL_FORK(sc, T, handler, nargs)                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                                                 \
	int sw_exit_##sc(struct trace_event_raw_sys_exit *ctx)                                   \
	{                                                                                        \
		if (ctx->ret == 0)                                                               \
			return 0;                                                                \
		SW_EXIT_BODY(T, handler, nargs)                                                  \
	}

/* Entry + exit pair (exec only): the entry saves the arguments in the `saved` map, the exit
 * takes them.  The entry reads no more than nargs arguments: the kernel refuses to attach a
 * program that reads past the end of the tracepoint's record. */
#define SW_SYSCALL_SAVED(sc, T, handler, nargs)                                                  \
	SEC("tracepoint/syscalls/sys_enter_" #sc)                                                \
	int sw_enter_##sc(struct trace_event_raw_sys_enter *ctx)                                 \
	{                                                                                        \
		return save_args(ctx, T, nargs);                                                 \
	}                                                                                        \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                                                 \
	int sw_exit_##sc(struct trace_event_raw_sys_exit *ctx)                                   \
	{                                                                                        \
		struct sw_saved a;                                                               \
		if (!take_args(T, &a))                                                           \
			return 0;                                                                \
		struct sw_counters *c = counter_of(T);                                           \
		if (!c)                                                                          \
			return 0;                                                                \
		c->seen++;                                                                       \
		struct task_struct *task = bpf_get_current_task_btf();                           \
		/* the filters see the new image's comm: the entry only saw the caller's */     \
		if (user_filtered(task)) {                                                       \
			c->filtered++;                                                           \
			return 0;                                                                \
		}                                                                                \
		return handler(ctx, T, &a, c, task);                                             \
	}

#define ARG(i) ((__s64)a->args[i])
#define IARG(i) ((__s64)(int)a->args[i])  /* an int-typed argument (fd, pid, signal) */
#define UARG(i) ((__s64)(__u32)a->args[i]) /* a uid_t / gid_t argument */

/* ------------------------------------------------------------------ files written */

/* Executables written since the sensors were loaded: the inodes of regular files opened for
 * writing (open family, success), with the comm of the last writer.  An LRU bounds it: under
 * a flood of writes the oldest fall out, and an exec of one of them is then not marked. */
struct sw_written_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

struct sw_written {
	__u64 ts;
	char comm[SW_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct sw_written_key);
	__type(value, struct sw_written);
} written SEC(".maps");

static __always_inline void written_key(struct inode *ino, struct sw_written_key *k)
{
	k->ino = BPF_CORE_READ(ino, i_ino);
	k->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	k->pad = 0;
}

/* An open that succeeded for writing: remember the file's inode when it is a regular file.
 * Runs before the prefilter (the open itself may interest no rule); a read-only open costs
 * one test of its flags. */
static __always_inline void note_written(struct task_struct *t, __s64 fd, __s64 flags)
{
#ifdef SW_NO_WRITE_TRACKING /* only to measure what the tracking costs (docs/performance.md) */
	return;
#endif
	if (fd < 0 || (flags & O_ACCMODE) == 0)
		return;
	struct file *f = fd_file(t, fd);
	if (!f)
		return;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if (!ino || (BPF_CORE_READ(ino, i_mode) & S_IFMT) != S_IFREG)
		return;
	struct sw_written_key k;
	written_key(ino, &k);
	/* A file written again (a log, a file being filled): refresh its writer in place.  The
	 * lookup marks the LRU entry as used; an update of an LRU hash costs ~0.5 us (measured,
	 * docs/performance.md), most of what a write open pays for this tracking. */
	struct sw_written *w = bpf_map_lookup_elem(&written, &k);
	if (w) {
		__builtin_memcpy(w->comm, t->comm, sizeof(w->comm));
		return;
	}
	struct sw_written v = {};
	v.ts = bpf_ktime_get_boot_ns();
	__builtin_memcpy(v.comm, t->comm, sizeof(v.comm));
	bpf_map_update_elem(&written, &k, &v, BPF_ANY);
}

/* ------------------------------------------------------------------ process */

struct argv_ctx {
	struct sw_scratch *sc;
	const __u64 *uargv;
	__u32 limit;
	__u32 done;
	__u32 truncated;
};

/* one argv entry of a failed exec, read through the user's pointer array */
static long argv_step(__u32 i, struct argv_ctx *x)
{
	__u64 ptr = 0;
	if (bpf_probe_read_user(&ptr, sizeof(ptr), x->uargv + i) || !ptr) {
		x->done = 1;
		return 1;
	}
	struct sw_scratch *sc = x->sc;
	if (!sc)
		return 1;
	__u32 off = sc->loop_off;
	if (off > x->limit) {
		x->truncated = 1;
		return 1;
	}
	long n = bpf_probe_read_user_str(at_off(sc->buf, off), SW_STR_MAX, (void *)ptr);
	if (n <= 0) {
		x->done = 1;
		return 1;
	}
	sc->loop_off = off + n;
	return 0;
}

/* copy [start, end) of the new image's memory (argv or environment area) */
static __always_inline __u32 put_user_area(__u8 *buf, __u32 off, __u64 start, __u64 end,
					   __u32 max, __u8 *truncated, __u32 *flags)
{
	if (off > SW_VAR_LIMIT || end <= start)
		return 0;
	__u64 len = end - start;
	if (len > max) {
		len = max;
		*truncated = 1;
		*flags |= SW_F_TRUNCATED;
	}
	if (bpf_probe_read_user(at_off(buf, off), len & (SW_PATH_MAX * 2 - 1),
				(void *)start))
		return 0;
	return len;
}

#define S_IWUSR 00200
#define S_IWGRP 00020
#define S_IWOTH 00002
#define SB_RDONLY 1
#define S_IMMUTABLE 8

/* Whether the task's user (real uid, real gid; supplementary groups are not looked at) may
 * write the inode: root may unless the file system is read-only or the inode immutable. */
static __always_inline bool exe_writable(struct inode *ino, const struct cred *cred)
{
	if ((BPF_CORE_READ(ino, i_sb, s_flags) & SB_RDONLY) ||
	    (BPF_CORE_READ(ino, i_flags) & S_IMMUTABLE))
		return false;
	__u32 uid = BPF_CORE_READ(cred, uid.val);
	umode_t mode = BPF_CORE_READ(ino, i_mode);
	if (uid == 0)
		return true;
	if (BPF_CORE_READ(ino, i_uid.val) == uid)
		return mode & S_IWUSR;
	if (BPF_CORE_READ(ino, i_gid.val) == BPF_CORE_READ(cred, gid.val))
		return mode & S_IWGRP;
	return mode & S_IWOTH;
}

static __always_inline __u32 exe_flags_of(struct file *exe, const struct cred *cred,
					  struct sw_exec *p)
{
	__u32 fl = 0;
	struct inode *ino = BPF_CORE_READ(exe, f_inode);
	if (!ino)
		return 0;
	if (BPF_CORE_READ(ino, __i_nlink) == 0) {
		char pfx[8] = {};
		const unsigned char *nm = BPF_CORE_READ(exe, f_path.dentry, d_name.name);
		bpf_probe_read_kernel(pfx, 6, nm);
		if (pfx[0] == 'm' && pfx[1] == 'e' && pfx[2] == 'm' && pfx[3] == 'f' &&
		    pfx[4] == 'd' && pfx[5] == ':')
			fl |= SW_EXE_FROM_MEMFD;
		else
			fl |= SW_EXE_DELETED;
	}
	if (bpf_core_type_exists(struct ovl_inode) &&
	    BPF_CORE_READ(ino, i_sb, s_magic) == OVERLAYFS_SUPER_MAGIC) {
		struct ovl_inode *oi = (void *)ino - bpf_core_field_offset(struct ovl_inode, vfs_inode);
		if (BPF_CORE_READ(oi, __upperdentry))
			fl |= SW_EXE_UPPER_LAYER;
	}
	if (exe_writable(ino, cred))
		fl |= SW_EXE_WRITABLE;
	struct sw_written_key k;
	written_key(ino, &k);
	struct sw_written *w = bpf_map_lookup_elem(&written, &k);
	if (w) {
		fl |= SW_EXE_WRITTEN;
		__builtin_memcpy(p->writer_comm, w->comm, sizeof(p->writer_comm));
	}
	return fl;
}

/* fds 0, 1 and 2 of the task: type, inode, device; the addresses of the first socket */
static __always_inline void put_stdio(struct task_struct *t, struct sw_exec *p)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	__u32 max = 0;
	struct file **arr = NULL;
	if (fdt) {
		max = BPF_CORE_READ(fdt, max_fds);
		arr = BPF_CORE_READ(fdt, fd);
	}
	p->sock_fd = SW_NO_SOCK_FD;
#pragma unroll
	for (int i = 0; i < SW_STDIO_FDS; i++) {
		struct file *f = NULL;
		p->fd_ino[i] = 0;
		p->fd_rdev[i] = 0;
		p->fd_type[i] = 0;
		if (arr && i < max)
			bpf_probe_read_kernel(&f, sizeof(f), arr + i);
		if (!f)
			continue;
		struct inode *ino = BPF_CORE_READ(f, f_inode);
		umode_t fmt = BPF_CORE_READ(ino, i_mode) & S_IFMT;
		struct sock *sk = file_sock(f);
		p->fd_type[i] = file_typechar(f, sk);
		p->fd_ino[i] = BPF_CORE_READ(ino, i_ino);
		if (fmt == S_IFCHR || fmt == S_IFBLK) {
			__u32 dev = BPF_CORE_READ(ino, i_rdev);
			__u32 major = dev >> 20, minor = dev & 0xfffff;
			/* the user-space dev_t encoding (st_rdev) */
			p->fd_rdev[i] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
		}
		__u8 ty = p->fd_type[i];
		if (sk && p->sock_fd == SW_NO_SOCK_FD && (ty == '4' || ty == '6' || ty == 'u')) {
			p->sock_fd = i;
			p->sock_family = BPF_CORE_READ(sk, __sk_common.skc_family);
			p->sock_sport = BPF_CORE_READ(sk, __sk_common.skc_num);
			p->sock_port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
			if (ty == '4') {
				__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
				__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
				__builtin_memcpy(p->sock_addr, &d, 4);
				__builtin_memcpy(p->sock_saddr, &s, 4);
			} else if (ty == '6') {
				BPF_CORE_READ_INTO(&p->sock_addr, sk,
						   __sk_common.skc_v6_daddr.in6_u.u6_addr8);
				BPF_CORE_READ_INTO(&p->sock_saddr, sk,
						   __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
			}
		}
	}
}

SW_HANDLER(h_exec)
{
	struct sw_scratch *sc = scratch_buf();
	if (!sc) {
		c->lost++;
		return 0;
	}
	__u8 *buf = sc->buf;
	struct sw_header *h = (void *)buf;
	struct sw_exec *p = (void *)(buf + sizeof(*h));
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	bool at = type == SW_EVT_EXECVEAT;
	__s64 res = ctx->ret;
	__u32 flags = a->flags;
	__u32 off = sizeof(*h) + sizeof(*p);

	fill_header(h, task, type, res);
	p->cap_effective = CRED_CAPS(cred, cap_effective);
	p->cap_permitted = CRED_CAPS(cred, cap_permitted);
	p->cap_inheritable = CRED_CAPS(cred, cap_inheritable);
	p->dirfd = at ? (int)a->args[0] : AT_FDCWD;
	p->flags = at ? a->args[4] : 0;
	p->exe_flags = 0;
	p->argv_len = 0;
	p->env_len = 0;
	p->argv_truncated = 0;
	p->env_truncated = 0;
	__builtin_memset(p->sock_addr, 0, sizeof(p->sock_addr));
	__builtin_memset(p->sock_saddr, 0, sizeof(p->sock_saddr));
	p->sock_family = 0;
	p->sock_port = 0;
	p->sock_sport = 0;
	p->pad = 0;
	__builtin_memset(p->writer_comm, 0, sizeof(p->writer_comm));
	put_stdio(task, p);
	if (res == 0) {
		/* the new image: its file, its argv and environment from the new mm */
		struct mm_struct *mm = BPF_CORE_READ(task, mm);
		struct file *exe = BPF_CORE_READ(mm, exe_file);
		flags |= SW_F_EXEC_OK;
		p->filename_len = 0;
		p->filename_dir_len = 0;
		if (exe) {
			p->filename_dir_len = put_dentry_path(buf, off, &exe->f_path, task, &flags);
			off += p->filename_dir_len;
			p->exe_flags = exe_flags_of(exe, cred, p);
		}
		__u32 n = put_user_area(buf, off, BPF_CORE_READ(mm, arg_start),
					BPF_CORE_READ(mm, arg_end), SW_ARGV_MAX, &p->argv_truncated,
					&flags);
		p->argv_len = n;
		off += n;
		if (capture_env) {
			n = put_user_area(buf, off, BPF_CORE_READ(mm, env_start),
					  BPF_CORE_READ(mm, env_end), SW_ENV_MAX, &p->env_truncated,
					  &flags);
			p->env_len = n;
			off += n;
		}
	} else {
		/* failed: the old image is still there, read what the caller asked for */
		off += put_path_arg(buf, off, (void *)a->args[at ? 1 : 0], p->dirfd, task,
				    &p->filename_len, &p->filename_dir_len, &flags);
		if (off <= SW_VAR_LIMIT) {
			struct argv_ctx x = {};
			x.sc = sc;
			x.uargv = (const __u64 *)a->args[at ? 2 : 1];
			x.limit = off + SW_ARGV_MAX - SW_STR_MAX;
			sc->loop_off = off;
			bpf_loop(SW_ARGC_MAX, argv_step, &x, 0);
			if (x.truncated || !x.done) {
				p->argv_truncated = 1;
				flags |= SW_F_TRUNCATED;
			}
			__u32 end = sc->loop_off;
			if (end > off && end - off <= SW_ARGV_MAX) {
				p->argv_len = end - off;
				off = end;
			}
		}
	}
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	p->cwd_len = put_dentry_path(buf, off, &fs->pwd, task, &flags);
	off += p->cwd_len;
	h->flags |= flags;
	output_record(c, h, off);
	return 0;
}

SW_SYSCALL_SAVED(execve, SW_EVT_EXECVE, h_exec, 3)
SW_SYSCALL_SAVED(execveat, SW_EVT_EXECVEAT, h_exec, 5)

/* The image was replaced: mark the saved exec as successful, and when a non-leader thread
 * exec'd, move its saved arguments to the leader's id (de_thread gave the caller the tgid). */
SEC("tracepoint/sched/sched_process_exec")
int sw_sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 old = (id & 0xffffffff00000000ull) | (__u32)ctx->old_pid;
	struct sw_saved *s = bpf_map_lookup_elem(&saved, &old);
	if (!s)
		return 0;
	s->flags |= SW_F_EXEC_OK;
	if (old != id) {
		struct sw_saved copy;
		__builtin_memcpy(&copy, s, sizeof(copy));
		bpf_map_update_elem(&saved, &id, &copy, BPF_ANY);
		bpf_map_delete_elem(&saved, &old);
	}
	return 0;
}

SW_HANDLER(h_clone)
{
	return emit_ints(c, task, type, ctx->ret, ARG(0), 0, 0, 0);
}

SW_HANDLER(h_clone3)
{
	__u64 fl = 0;
	bpf_probe_read_user(&fl, sizeof(fl), (void *)a->args[0]); /* clone_args.flags */
	return emit_ints(c, task, type, ctx->ret, fl, 0, 0, 0);
}

SW_HANDLER(h_fork)
{
	return emit_ints(c, task, type, ctx->ret, SIGCHLD, 0, 0, 0);
}

SW_HANDLER(h_vfork)
{
	return emit_ints(c, task, type, ctx->ret, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0);
}

SW_SYSCALL_FORK(clone, SW_EVT_CLONE, h_clone, 5)
SW_SYSCALL_FORK(clone3, SW_EVT_CLONE3, h_clone3, 2)
SW_SYSCALL_FORK(fork, SW_EVT_FORK, h_fork, 0)
SW_SYSCALL_FORK(vfork, SW_EVT_VFORK, h_vfork, 0)

/* Reported once per process: when its last thread exits. */
SEC("tracepoint/sched/sched_process_exit")
int sw_sched_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	bool group_dead;
	if (bpf_core_field_exists(ctx->group_dead))
		group_dead = BPF_CORE_READ(ctx, group_dead);
	else
		group_dead = BPF_CORE_READ(t, signal, live.counter) == 0;
	if (!group_dead)
		return 0;
	__u32 type = SW_EVT_PROCEXIT;
	struct sw_counters *c = counter_of(type);
	if (!c)
		return 0;
	c->seen++;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid || !type_enabled(type)) {
		c->filtered++;
		return 0;
	}
	int code = BPF_CORE_READ(t, exit_code);
	return emit_ints(c, t, type, 0, (code >> 8) & 0xff, code & 0x7f, (code & 0x80) != 0, 0);
}

/* ------------------------------------------------------------------ files */

SW_HANDLER(h_open)
{
	note_written(task, ctx->ret, ARG(1));
	return EMIT_STRS(ctx->ret, AT_FDCWD, ARG(1), ARG(2), S_PATH(a->args[0], AT_FDCWD));
}

SW_HANDLER(h_openat)
{
	note_written(task, ctx->ret, ARG(2));
	return EMIT_STRS(ctx->ret, IARG(0), ARG(2), ARG(3), S_PATH(a->args[1], IARG(0)));
}

SW_HANDLER(h_openat2)
{
	__u64 how[2] = {}; /* struct open_how: flags, mode, resolve */
	bpf_probe_read_user(how, sizeof(how), (void *)a->args[2]);
	note_written(task, ctx->ret, how[0]);
	return EMIT_STRS(ctx->ret, IARG(0), how[0], how[1], S_PATH(a->args[1], IARG(0)));
}

SW_HANDLER(h_creat)
{
	note_written(task, ctx->ret, O_WRONLY);
	return EMIT_STRS(ctx->ret, AT_FDCWD, O_CREAT | O_WRONLY | O_TRUNC, ARG(1),
			 S_PATH(a->args[0], AT_FDCWD));
}

SW_SYSCALL(open, SW_EVT_OPEN, h_open, 3)
SW_SYSCALL(openat, SW_EVT_OPENAT, h_openat, 4)
SW_SYSCALL(openat2, SW_EVT_OPENAT2, h_openat2, 4)
SW_SYSCALL(creat, SW_EVT_CREAT, h_creat, 2)

/* unlink: i0 flags, i1 dirfd */
SW_HANDLER(h_unlink)
{
	return EMIT_STRS(ctx->ret, 0, AT_FDCWD, 0, S_PATH(a->args[0], AT_FDCWD));
}

SW_HANDLER(h_unlinkat)
{
	return EMIT_STRS(ctx->ret, ARG(2), IARG(0), 0, S_PATH(a->args[1], IARG(0)));
}

SW_SYSCALL(unlink, SW_EVT_UNLINK, h_unlink, 1)
SW_SYSCALL(unlinkat, SW_EVT_UNLINKAT, h_unlinkat, 3)

/* rename / link: s0 old, s1 new, i0 flags */
SW_HANDLER(h_rename2)
{
	return EMIT_STRS(ctx->ret, 0, 0, 0,
			 S_PATH(a->args[0], AT_FDCWD), S_PATH(a->args[1], AT_FDCWD));
}

SW_HANDLER(h_renameat)
{
	__s64 fl = type == SW_EVT_RENAMEAT2 || type == SW_EVT_LINKAT ? ARG(4) : 0;
	return EMIT_STRS(ctx->ret, fl, 0, 0,
			 S_PATH(a->args[1], IARG(0)), S_PATH(a->args[3], IARG(2)));
}

SW_SYSCALL(rename, SW_EVT_RENAME, h_rename2, 2)
SW_SYSCALL(renameat, SW_EVT_RENAMEAT, h_renameat, 4)
SW_SYSCALL(renameat2, SW_EVT_RENAMEAT2, h_renameat, 5)
SW_SYSCALL(link, SW_EVT_LINK, h_rename2, 2)
SW_SYSCALL(linkat, SW_EVT_LINKAT, h_renameat, 5)

/* chmod / mkdir: s0 path, i0 mode, i1 fd (fchmod) */
SW_HANDLER(h_chmod)
{
	return EMIT_STRS(ctx->ret, ARG(1), 0, 0, S_PATH(a->args[0], AT_FDCWD));
}

SW_HANDLER(h_chmodat)
{
	return EMIT_STRS(ctx->ret, ARG(2), 0, 0, S_PATH(a->args[1], IARG(0)));
}

SW_HANDLER(h_fchmod)
{
	return EMIT_STRS(ctx->ret, ARG(1), IARG(0), 0, S_FD(IARG(0)));
}

SW_SYSCALL(chmod, SW_EVT_CHMOD, h_chmod, 2)
SW_SYSCALL(fchmodat, SW_EVT_FCHMODAT, h_chmodat, 3)
SW_SYSCALL(fchmod, SW_EVT_FCHMOD, h_fchmod, 2)
SW_SYSCALL(mkdir, SW_EVT_MKDIR, h_chmod, 2)
SW_SYSCALL(mkdirat, SW_EVT_MKDIRAT, h_chmodat, 3)

/* symlink: s0 target (not resolved: it is stored as written), s1 linkpath */
SW_HANDLER(h_symlink)
{
	return EMIT_STRS(ctx->ret, 0, 0, 0, S_RAW(a->args[0]), S_PATH(a->args[1], AT_FDCWD));
}

SW_HANDLER(h_symlinkat)
{
	return EMIT_STRS(ctx->ret, 0, 0, 0, S_RAW(a->args[0]), S_PATH(a->args[2], IARG(1)));
}

SW_SYSCALL(symlink, SW_EVT_SYMLINK, h_symlink, 2)
SW_SYSCALL(symlinkat, SW_EVT_SYMLINKAT, h_symlinkat, 3)

/* chdir / fchdir: the new cwd after success, the requested one otherwise */
SW_HANDLER(h_chdir)
{
	if (ctx->ret == 0)
		return EMIT_STRS(0, 0, 0, 0, S_CWD);
	return EMIT_STRS(ctx->ret, 0, 0, 0, S_PATH(a->args[0], AT_FDCWD));
}

SW_HANDLER(h_fchdir)
{
	if (ctx->ret == 0)
		return EMIT_STRS(0, IARG(0), 0, 0, S_CWD);
	return EMIT_STRS(ctx->ret, IARG(0), 0, 0, S_FD(IARG(0)));
}

SW_SYSCALL(chdir, SW_EVT_CHDIR, h_chdir, 1)
SW_SYSCALL(fchdir, SW_EVT_FCHDIR, h_fchdir, 1)

/* ------------------------------------------------------------------ network */

SW_HANDLER(h_socket)
{
	return emit_ints(c, task, type, ctx->ret, IARG(0), IARG(1), IARG(2), 0);
}

SW_SYSCALL(socket, SW_EVT_SOCKET, h_socket, 3)

/* connect / bind: the address the caller passed, plus what the socket says about itself */
SW_HANDLER(h_connect)
{
	struct sw_rec_sock *r = sock_begin();
	if (!r) {
		c->lost++;
		return 0;
	}
	struct sock *sk = file_sock(fd_file(task, IARG(0)));
	r->p.fd = IARG(0);
	user_sockaddr((void *)a->args[1], a->args[2], &r->p);
	if (sk) {
		r->p.sotype = BPF_CORE_READ(sk, sk_type);
		r->p.proto = BPF_CORE_READ(sk, sk_protocol);
		r->p.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (r->p.family == AF_INET) {
			__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
			__builtin_memcpy(r->p.saddr, &s, 4);
		} else if (r->p.family == AF_INET6) {
			BPF_CORE_READ_INTO(&r->p.saddr, sk,
					   __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		}
	}
	sock_submit(c, task, type, ctx->ret, r);
	return 0;
}

SW_SYSCALL(connect, SW_EVT_CONNECT, h_connect, 3)
SW_SYSCALL(bind, SW_EVT_BIND, h_connect, 3)

SW_HANDLER(h_accept)
{
	struct sw_rec_sock *r = sock_begin();
	if (!r) {
		c->lost++;
		return 0;
	}
	r->p.fd = IARG(0);
	r->p.i1 = type == SW_EVT_ACCEPT4 ? ARG(3) : 0;
	if (ctx->ret >= 0) {
		sock_addrs(file_sock(fd_file(task, ctx->ret)), &r->p);
	}
	sock_submit(c, task, type, ctx->ret, r);
	return 0;
}

SW_SYSCALL(accept, SW_EVT_ACCEPT, h_accept, 3)
SW_SYSCALL(accept4, SW_EVT_ACCEPT4, h_accept, 4)

/* listen: the bound local address goes to addr/port */
SW_HANDLER(h_listen)
{
	struct sw_rec_sock *r = sock_begin();
	if (!r) {
		c->lost++;
		return 0;
	}
	r->p.fd = IARG(0);
	r->p.i1 = IARG(1);
	sock_addrs(file_sock(fd_file(task, IARG(0))), &r->p);
	__builtin_memcpy(r->p.addr, r->p.saddr, 16);
	r->p.port = r->p.sport;
	sock_submit(c, task, type, ctx->ret, r);
	return 0;
}

SW_SYSCALL(listen, SW_EVT_LISTEN, h_listen, 2)

/* dup*: what the duplicated fd is; for sockets its addresses (a shell on a socket) */
SW_HANDLER(h_dup)
{
	struct sw_rec_sock *r = sock_begin();
	if (!r) {
		c->lost++;
		return 0;
	}
	struct file *f = fd_file(task, IARG(0));
	struct sock *sk = file_sock(f);
	r->p.fd = IARG(0);
	r->p.i1 = type == SW_EVT_DUP ? 0 : IARG(1);
	r->p.i2 = type == SW_EVT_DUP3 ? ARG(2) : 0;
	r->p.fd_type = file_typechar(f, sk);
	sock_addrs(sk, &r->p);
	sock_submit(c, task, type, ctx->ret, r);
	return 0;
}

SW_SYSCALL(dup, SW_EVT_DUP, h_dup, 1)
SW_SYSCALL(dup2, SW_EVT_DUP2, h_dup, 2)
SW_SYSCALL(dup3, SW_EVT_DUP3, h_dup, 3)

/* ------------------------------------------------------------------ privilege, isolation */

SW_HANDLER(h_id1)
{
	return emit_ints(c, task, type, ctx->ret, UARG(0), 0, 0, 0);
}

SW_HANDLER(h_id2)
{
	return emit_ints(c, task, type, ctx->ret, UARG(0), UARG(1), 0, 0);
}

SW_HANDLER(h_id3)
{
	return emit_ints(c, task, type, ctx->ret, UARG(0), UARG(1), UARG(2), 0);
}

SW_SYSCALL(setuid, SW_EVT_SETUID, h_id1, 1)
SW_SYSCALL(setgid, SW_EVT_SETGID, h_id1, 1)
SW_SYSCALL(setreuid, SW_EVT_SETREUID, h_id2, 2)
SW_SYSCALL(setregid, SW_EVT_SETREGID, h_id2, 2)
SW_SYSCALL(setresuid, SW_EVT_SETRESUID, h_id3, 3)
SW_SYSCALL(setresgid, SW_EVT_SETRESGID, h_id3, 3)

/* capset: the thread's sets after the call */
SW_HANDLER(h_capset)
{
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	return emit_ints(c, task, type, ctx->ret, CRED_CAPS(cred, cap_effective),
			 CRED_CAPS(cred, cap_permitted),
			 CRED_CAPS(cred, cap_inheritable), 0);
}

SW_SYSCALL(capset, SW_EVT_CAPSET, h_capset, 2)

SW_HANDLER(h_int1)
{
	return emit_ints(c, task, type, ctx->ret, ARG(0), 0, 0, 0);
}

SW_HANDLER(h_intint)
{
	return emit_ints(c, task, type, ctx->ret, IARG(0), IARG(1), 0, 0);
}

SW_HANDLER(h_int3)
{
	return emit_ints(c, task, type, ctx->ret, IARG(0), IARG(1), IARG(2), 0);
}

SW_HANDLER(h_ptrace)
{
	return emit_ints(c, task, type, ctx->ret, ARG(0), IARG(1), 0, 0);
}

SW_HANDLER(h_pid)
{
	return emit_ints(c, task, type, ctx->ret, IARG(0), 0, 0, 0);
}

SW_SYSCALL(unshare, SW_EVT_UNSHARE, h_int1, 1)
SW_SYSCALL(setns, SW_EVT_SETNS, h_intint, 2)
SW_SYSCALL(ptrace, SW_EVT_PTRACE, h_ptrace, 4)
SW_SYSCALL(bpf, SW_EVT_BPF, h_pid, 3)
SW_SYSCALL(kill, SW_EVT_KILL, h_intint, 2)
SW_SYSCALL(tgkill, SW_EVT_TGKILL, h_int3, 3)
SW_SYSCALL(process_vm_writev, SW_EVT_PROCESS_VM_WRITEV, h_pid, 1)

/* mount: s0 dev (as written), s1 dir, s2 fs type, i0 flags */
SW_HANDLER(h_mount)
{
	return EMIT_STRS(ctx->ret, ARG(3), 0, 0,
			 S_RAW(a->args[0]), S_PATH(a->args[1], AT_FDCWD), S_RAW(a->args[2]));
}

/* umount2 (the x86-64 tracepoint is named sys_enter_umount): s0 target, i0 flags */
SW_HANDLER(h_umount)
{
	return EMIT_STRS(ctx->ret, ARG(1), 0, 0, S_PATH(a->args[0], AT_FDCWD));
}

SW_HANDLER(h_memfd)
{
	return EMIT_STRS(ctx->ret, ARG(1), 0, 0, S_RAW(a->args[0]));
}

SW_SYSCALL(mount, SW_EVT_MOUNT, h_mount, 5)
SW_SYSCALL(umount, SW_EVT_UMOUNT2, h_umount, 2)
SW_SYSCALL(memfd_create, SW_EVT_MEMFD_CREATE, h_memfd, 2)

/* kernel modules: only where the kernel has these tracepoints (user space skips them
 * otherwise).  init_module: s0 uargs; finit_module: s0 uargs, i0 fd, i1 flags */
SW_HANDLER(h_init_module)
{
	return EMIT_STRS(ctx->ret, 0, 0, 0, S_RAW(a->args[2]));
}

SW_HANDLER(h_finit_module)
{
	return EMIT_STRS(ctx->ret, IARG(0), ARG(2), 0, S_RAW(a->args[1]));
}

SW_SYSCALL(init_module, SW_EVT_INIT_MODULE, h_init_module, 3)
SW_SYSCALL(finit_module, SW_EVT_FINIT_MODULE, h_finit_module, 3)

/* ------------------------------------------------------------------ attributes, names */

/* setxattr / lsetxattr (path, name, value, size, flags): s0 path, s1 name, i0 flags, i1 size;
 * fsetxattr: the same with the descriptor's path, i2 fd.  The *removexattr calls: no flags. */
SW_HANDLER(h_setxattr)
{
	return EMIT_STRS(ctx->ret, IARG(4), ARG(3), 0, S_PATH(a->args[0], AT_FDCWD),
			 S_RAW(a->args[1]));
}

SW_HANDLER(h_fsetxattr)
{
	return EMIT_STRS(ctx->ret, IARG(4), ARG(3), IARG(0), S_FD(IARG(0)), S_RAW(a->args[1]));
}

SW_HANDLER(h_removexattr)
{
	return EMIT_STRS(ctx->ret, 0, 0, 0, S_PATH(a->args[0], AT_FDCWD), S_RAW(a->args[1]));
}

SW_HANDLER(h_fremovexattr)
{
	return EMIT_STRS(ctx->ret, 0, 0, IARG(0), S_FD(IARG(0)), S_RAW(a->args[1]));
}

SW_SYSCALL(setxattr, SW_EVT_SETXATTR, h_setxattr, 5)
SW_SYSCALL(lsetxattr, SW_EVT_LSETXATTR, h_setxattr, 5)
SW_SYSCALL(fsetxattr, SW_EVT_FSETXATTR, h_fsetxattr, 5)
SW_SYSCALL(removexattr, SW_EVT_REMOVEXATTR, h_removexattr, 2)
SW_SYSCALL(lremovexattr, SW_EVT_LREMOVEXATTR, h_removexattr, 2)
SW_SYSCALL(fremovexattr, SW_EVT_FREMOVEXATTR, h_fremovexattr, 2)

/* ioctl: only the inode attribute requests (enum sw_kconst).  Every other request -- most
 * ioctls are terminal, socket and device traffic -- returns after one comparison of a register
 * at entry, and at exit after that comparison and the type's counters (filtered). */
static __always_inline bool ioctl_wanted(__u64 req)
{
	__u32 r = req;
	return r == SW_FS_IOC_SETFLAGS || r == SW_FS_IOC_FSSETXATTR;
}

/* the flags the VFS keeps for every filesystem (S_SYNC, S_NOATIME, S_APPEND, S_IMMUTABLE,
 * S_DIRSYNC of include/linux/fs.h) as their FS_*_FL values */
static __always_inline __u32 vfs_attr_flags(struct file *f)
{
	__u32 i = BPF_CORE_READ(f, f_inode, i_flags);
	__u32 fl = 0;
	if (i & 1)
		fl |= 0x8;      /* FS_SYNC_FL */
	if (i & 2)
		fl |= 0x80;     /* FS_NOATIME_FL */
	if (i & 4)
		fl |= 0x20;     /* FS_APPEND_FL */
	if (i & 8)
		fl |= 0x10;     /* FS_IMMUTABLE_FL */
	if (i & 64)
		fl |= 0x10000;  /* FS_DIRSYNC_FL */
	return fl;
}

/* struct fsxattr's fsx_xflags (FS_XFLAG_*) as FS_*_FL */
static __always_inline __u32 xflags_to_fl(__u32 x)
{
	__u32 fl = 0;
	if (x & 0x8)
		fl |= 0x10;        /* IMMUTABLE */
	if (x & 0x10)
		fl |= 0x20;        /* APPEND */
	if (x & 0x20)
		fl |= 0x8;         /* SYNC */
	if (x & 0x40)
		fl |= 0x80;        /* NOATIME */
	if (x & 0x80)
		fl |= 0x40;        /* NODUMP */
	if (x & 0x200)
		fl |= 0x20000000;  /* PROJINHERIT */
	if (x & 0x8000)
		fl |= 0x02000000;  /* DAX */
	return fl;
}

/* The attributes before the call are gone by its exit: the entry keeps them (and only for
 * the wanted requests, so the `saved` map sees no other ioctl). */
SEC("tracepoint/syscalls/sys_enter_ioctl")
int sw_enter_ioctl(struct trace_event_raw_sys_enter *ctx)
{
	if (!ioctl_wanted(ctx->args[1]))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid || !type_enabled(SW_EVT_IOCTL))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *f = fd_file(task, (int)ctx->args[0]);
	struct sw_saved s = {};
	s.type = SW_EVT_IOCTL;
	s.args[0] = f ? (SW_IOCTL_OLD_KNOWN | vfs_attr_flags(f)) : 0;
	bpf_map_update_elem(&saved, &id, &s, BPF_ANY); /* a miss only loses the old flags */
	return 0;
}

/* i0 fd, i1 request, i2 the flags (see enum sw_kconst), s0 the descriptor's path */
SW_HANDLER(h_ioctl)
{
	__u32 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (void *)a->args[2]);
	if ((__u32)a->args[1] == SW_FS_IOC_FSSETXATTR)
		v = xflags_to_fl(v); /* fsx_xflags is the first field of struct fsxattr */
	__u64 old = a->args[3];
	return EMIT_STRS(ctx->ret, IARG(0), (__s64)(__u32)a->args[1], (__s64)(v | (old << 32)),
			 S_FD(IARG(0)));
}

SEC("tracepoint/syscalls/sys_exit_ioctl")
int sw_exit_ioctl(struct trace_event_raw_sys_exit *ctx)
{
	__u32 type = SW_EVT_IOCTL;
	struct task_struct *task = bpf_get_current_task_btf();
	struct sw_saved a;
	syscall_args(task, &a, 3);
	struct sw_counters *c = counter_of(type);
	if (!c)
		return 0;
	if (!ioctl_wanted(a.args[1])) {
		c->seen++;
		c->filtered++;
		return 0;
	}
	struct sw_saved s;
	a.args[3] = take_args(type, &s) ? s.args[0] : 0;
	if (!wanted(c, type, task))
		return 0;
	return h_ioctl(ctx, type, &a, c, task);
}

/* prctl: i0 option, i1 arg2 as a number; s0 arg2 as a string for the options that name the
 * task (PR_SET_NAME: the new comm, of which the kernel keeps the first 15 bytes) */
SW_HANDLER(h_prctl)
{
	__s64 opt = IARG(0);
	bool named = opt == SW_PR_SET_NAME || opt == SW_PR_GET_NAME;
	return EMIT_STRS(ctx->ret, opt, named ? 0 : ARG(1), 0,
			 { .uptr = a->args[1], .kind = named ? A_RAW : A_NONE });
}

SW_SYSCALL(prctl, SW_EVT_PRCTL, h_prctl, 2)
