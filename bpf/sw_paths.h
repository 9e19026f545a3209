/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Paths (dentry walks across mounts), user strings, fds and sockets. */
#ifndef SYSWARD_PATHS_H
#define SYSWARD_PATHS_H

#include "sw_common.h"
#include "sw_task.h"
#include "sw_walk.h"

/* State of one dentry walk; bpf_loop calls walk_step once per step so the verifier checks
 * the body once instead of once per iteration. */
struct walk_ctx {
	struct sw_scratch *sc;
	struct sw_walk w;
	__u32 limit;   /* last offset where another component may start */
	__u32 done;
	__u32 truncated;
};

static long walk_step(__u32 idx, struct walk_ctx *x)
{
	struct dentry *d = NULL;
	int step = sw_walk_next(&x->w, &d);
	if (step == SW_WALK_END) {
		x->done = 1;
		return 1;
	}
	if (step == SW_WALK_CROSSED)
		return 0;
	struct sw_scratch *sc = x->sc;
	if (!sc)
		return 1;
	__u32 off = sc->loop_off;
	if (off > x->limit) {
		x->truncated = 1;
		return 1;
	}
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	long n = bpf_probe_read_kernel_str(at_off(sc->buf, off), SW_NAME_MAX, name);
	if (n <= 0) {
		x->done = 1;
		return 1;
	}
	sc->loop_off = off + n;
	if (!x->w.dentry) {
		x->done = 1; /* the component was its own parent: the path is complete */
		return 1;
	}
	return 0;
}

/* Append the dentry path of p, leaf first, up to the task's root.  Returns the bytes written. */
static __always_inline __u32 put_dentry_path(__u8 *buf, __u32 off, struct path *p,
					     struct task_struct *t, __u32 *flags)
{
	if (off > SW_VAR_LIMIT) {
		*flags |= SW_F_TRUNCATED;
		return 0;
	}
	struct sw_scratch *sc = (void *)buf;
	struct walk_ctx x = {};
	if (!sw_walk_init(&x.w, p, t))
		return 0;
	x.sc = sc;
	sc->loop_off = off;
	x.limit = off + SW_PATH_MAX - SW_NAME_MAX;
	bpf_loop(SW_PATH_DEPTH, walk_step, &x, 0);
	if (x.truncated || !x.done)
		*flags |= SW_F_TRUNCATED;
	__u32 end = sc->loop_off;
	return end > off && end - off <= SW_PATH_MAX ? end - off : 0;
}

/* Append a NUL-terminated user string of at most max bytes; returns the bytes written. */
static __always_inline __u32 put_user_str(__u8 *buf, __u32 off, const void *src, __u32 *flags)
{
	if (off > SW_VAR_LIMIT || !src) {
		if (src)
			*flags |= SW_F_TRUNCATED;
		return 0;
	}
	long n = bpf_probe_read_user_str(at_off(buf, off), SW_PATH_MAX, src);
	return n > 0 ? n : 0;
}

/* Append the path of the directory a relative name is resolved against (dirfd or cwd). */
static __always_inline __u32 put_dir_of(__u8 *buf, __u32 off, __s64 dirfd, struct task_struct *t,
					__u32 *flags)
{
	if (dirfd == AT_FDCWD) {
		struct fs_struct *fs = BPF_CORE_READ(t, fs);
		return put_dentry_path(buf, off, &fs->pwd, t, flags);
	}
	struct file *f = fd_file(t, dirfd);
	if (!f)
		return 0;
	return put_dentry_path(buf, off, &f->f_path, t, flags);
}

/* A path argument: the user string, and when it is relative the directory it is relative to. */
static __always_inline __u32 put_path_arg(__u8 *buf, __u32 off, const void *uptr, __s64 dirfd,
					  struct task_struct *t, __u16 *name_len, __u16 *dir_len,
					  __u32 *flags)
{
	__u32 n = put_user_str(buf, off, uptr, flags);
	__u32 d = 0;
	*name_len = n;
	if (n > 1 && buf[off & SW_OFF_MASK] != '/')
		d = put_dir_of(buf, off + n, dirfd, t, flags);
	*dir_len = d;
	return n + d;
}

static __always_inline struct sock *file_sock(struct file *f)
{
	if (!f)
		return NULL;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *s = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(s, sk);
}

/* fd_type character of an open file, Falco style */
static __always_inline __u8 file_typechar(struct file *f, struct sock *sk)
{
	if (!f)
		return 0;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT;
	switch (mode) {
	case S_IFREG:
		return 'f';
	case S_IFDIR:
		return 'd';
	case S_IFIFO:
		return 'p';
	case S_IFCHR:
		return 'c';
	case S_IFBLK:
		return 'b';
	case S_IFLNK:
		return 'l';
	case S_IFSOCK: {
		__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
		return fam == AF_INET ? '4' : fam == AF_INET6 ? '6' : fam == AF_UNIX ? 'u' : fam == AF_NETLINK ? 'n' : 'o';
	}
	}
	return 'o';
}

/* Local and peer addresses of a socket into a sw_sock. */
static __always_inline void sock_addrs(struct sock *sk, struct sw_sock *p)
{
	if (!sk)
		return;
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	p->family = fam;
	p->sotype = BPF_CORE_READ(sk, sk_type);
	p->proto = BPF_CORE_READ(sk, sk_protocol);
	p->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	p->port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (fam == AF_INET) {
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(p->addr, &d, 4);
		__builtin_memcpy(p->saddr, &s, 4);
	} else if (fam == AF_INET6) {
		BPF_CORE_READ_INTO(&p->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&p->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	}
}

/* The address a user passed to connect/bind (remote for connect, local for bind). */
static __always_inline void user_sockaddr(const void *uaddr, __u64 len, struct sw_sock *p)
{
	__u16 fam = 0;
	if (!uaddr || len < 2 || bpf_probe_read_user(&fam, sizeof(fam), uaddr))
		return;
	p->family = fam;
	if (fam == AF_INET) {
		__u16 port = 0;
		bpf_probe_read_user(&port, 2, uaddr + 2);
		bpf_probe_read_user(p->addr, 4, uaddr + 4);
		p->port = __builtin_bswap16(port);
	} else if (fam == AF_INET6) {
		__u16 port = 0;
		bpf_probe_read_user(&port, 2, uaddr + 2);
		bpf_probe_read_user(p->addr, 16, uaddr + 8);
		p->port = __builtin_bswap16(port);
	} else if (fam == AF_UNIX) {
		long n = bpf_probe_read_user_str(p->upath, sizeof(p->upath), uaddr + 2);
		p->upath_len = n > 0 ? n : 0;
	}
}

#endif /* SYSWARD_PATHS_H */
