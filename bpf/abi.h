/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The wire format between sysward's BPF programs and its Python decoder: the ONE definition.
 *
 * Only fixed-width types, every struct laid out by hand with explicit padding fields, so the
 * same bytes mean the same thing in C and in Python.  src/sysward/events/types.py mirrors this
 * file and tests/unit/test_abi.py compares that mirror with the BTF of the compiled object
 * (sizes, field offsets, padding, and the value of every constant).  The constants are enums,
 * not #defines, for that reason: a #define never reaches BTF, an enum does.
 *
 * A record in the ring buffer is:   struct sw_header | payload struct | variable tail
 * The payload struct is chosen by the event type (see sw_layout_of in types.py).  Variable
 * parts (strings, paths, argv) follow the payload in the order of their *_len fields; each
 * length counts the bytes on the wire, including NUL terminators.
 *
 * Encodings of variable parts:
 *  - "dentry path": the components of a kernel path from the leaf up to the task's root, each
 *    NUL-terminated ("passwd\0etc\0" is /etc/passwd).  The decoder reverses them.  Mount points
 *    are crossed (struct mount), so bind mounts and overlays give the path the task sees.
 *  - "user string": NUL-terminated bytes copied from user memory.
 *  - "string list" (argv, env): NUL-separated strings, as in /proc/PID/cmdline.
 * A path-like argument is a pair (name, dir): name is the user string; dir is the dentry path
 * of the dirfd / cwd when name is relative, and empty when name is absolute.  On the wire the
 * name comes first, then its dir.
 */
#ifndef SYSWARD_ABI_H
#define SYSWARD_ABI_H

/* ---- bounds (docs/events.md repeats them) ---- */
enum sw_bound {
	SW_PATH_MAX = 4096,        /* bytes of one path (dentry part or user string) */
	SW_NAME_MAX = 256,         /* bytes of one path component, NUL included */
	SW_PATH_DEPTH = 48,        /* path components walked up from a dentry */
	SW_ARGV_MAX = 4096,        /* bytes of argv (NUL-separated) */
	SW_ENV_MAX = 2048,         /* bytes of the environment (NUL-separated) */
	SW_ARGC_MAX = 64,          /* argv entries read from user pointers (failed exec) */
	SW_STR_MAX = 256,          /* bytes of a plain string argument (fs type, memfd name...) */
	SW_UNIX_PATH_MAX = 108,    /* sun_path */
	SW_RECORD_MAX = 16384,     /* upper bound of one record (header + payload + tail) */
	SW_COMM_LEN = 16,          /* bytes of a task comm, NUL included (TASK_COMM_LEN) */
};

/* ---- event type ids (stable: they are the keys of the enable and counter maps) ---- */
enum sw_event_type {
	SW_EVT_NONE = 0,
	SW_EVT_EXECVE = 1,
	SW_EVT_EXECVEAT = 2,
	SW_EVT_CLONE = 3,
	SW_EVT_CLONE3 = 4,
	SW_EVT_FORK = 5,
	SW_EVT_VFORK = 6,
	SW_EVT_PROCEXIT = 7,
	SW_EVT_OPEN = 8,
	SW_EVT_OPENAT = 9,
	SW_EVT_OPENAT2 = 10,
	SW_EVT_CREAT = 11,
	SW_EVT_UNLINK = 12,
	SW_EVT_UNLINKAT = 13,
	SW_EVT_RENAME = 14,
	SW_EVT_RENAMEAT = 15,
	SW_EVT_RENAMEAT2 = 16,
	SW_EVT_CHMOD = 17,
	SW_EVT_FCHMODAT = 18,
	SW_EVT_FCHMOD = 19,
	SW_EVT_MKDIR = 20,
	SW_EVT_MKDIRAT = 21,
	SW_EVT_SYMLINK = 22,
	SW_EVT_SYMLINKAT = 23,
	SW_EVT_LINK = 24,
	SW_EVT_LINKAT = 25,
	SW_EVT_SOCKET = 26,
	SW_EVT_CONNECT = 27,
	SW_EVT_ACCEPT = 28,
	SW_EVT_ACCEPT4 = 29,
	SW_EVT_BIND = 30,
	SW_EVT_LISTEN = 31,
	SW_EVT_DUP = 32,
	SW_EVT_DUP2 = 33,
	SW_EVT_DUP3 = 34,
	SW_EVT_SETUID = 35,
	SW_EVT_SETGID = 36,
	SW_EVT_SETREUID = 37,
	SW_EVT_SETREGID = 38,
	SW_EVT_SETRESUID = 39,
	SW_EVT_SETRESGID = 40,
	SW_EVT_CAPSET = 41,
	SW_EVT_UNSHARE = 42,
	SW_EVT_SETNS = 43,
	SW_EVT_MOUNT = 44,
	SW_EVT_UMOUNT2 = 45,
	SW_EVT_PTRACE = 46,
	SW_EVT_MEMFD_CREATE = 47,
	SW_EVT_BPF = 48,
	SW_EVT_KILL = 49,
	SW_EVT_TGKILL = 50,
	SW_EVT_PROCESS_VM_WRITEV = 51,
	SW_EVT_INIT_MODULE = 52,
	SW_EVT_FINIT_MODULE = 53,
	SW_EVT_CHDIR = 54,
	SW_EVT_FCHDIR = 55,
	SW_EVT_SETXATTR = 56,
	SW_EVT_LSETXATTR = 57,
	SW_EVT_FSETXATTR = 58,
	SW_EVT_REMOVEXATTR = 59,
	SW_EVT_LREMOVEXATTR = 60,
	SW_EVT_FREMOVEXATTR = 61,
	SW_EVT_IOCTL = 62,
	SW_EVT_PRCTL = 63,
	SW_EVT_MAX = 64,
};

/* sw_header.flags */
enum sw_header_flag {
	SW_F_TRUNCATED = 1,     /* some variable part hit its bound */
	SW_F_EXEC_OK = 2,       /* execve(at) that replaced the image (seen by sched_process_exec) */
	SW_F_PF_REJECT = 4,     /* kernel.prefilter audit: the prefilter would have dropped it */
	SW_F_LEADER_ALIVE = 8,  /* the thread group's leader has not begun to exit */
};

/* The high half of sw_header.flags: how many threads of the event's thread group are alive
 * (signal->live at the event: those that have not begun to exit), capped at
 * SW_THREADS_MAX.  The rules' proc.nthreads and proc.nchilds come from it. */
enum sw_header_threads {
	SW_THREADS_SHIFT = 16,
	SW_THREADS_MAX = 0xffff,
};

/* sw_exec.exe_flags (Python: sysward.events.types.ExeFlag; rendered under these names) */
enum sw_exe_flag {
	SW_EXE_FROM_MEMFD = 1,  /* the executable is a memfd (fileless execution) */
	SW_EXE_UPPER_LAYER = 2, /* it lives in the upper (writable) layer of an overlayfs */
	SW_EXE_DELETED = 4,     /* it has no links left */
	SW_EXE_WRITABLE = 8,    /* its user (real uid/gid of the task) may write it */
	SW_EXE_WRITTEN = 16,    /* it was opened for writing since the sensors were loaded */
};

/* sw_exec.sock_fd when none of fds 0..2 is an inet or unix socket */
enum sw_stdio_bound {
	SW_STDIO_FDS = 3,       /* fds 0, 1, 2 */
	SW_NO_SOCK_FD = 255,
};

/* Kernel constants the sensors decide on.  ioctl: only these requests are reported (every
 * other request is dropped at the top of the programs, counted as filtered, before any record
 * is built); their flags are FS_*_FL values (FS_IOC_FSSETXATTR's FS_XFLAG_* are mapped to
 * them in the kernel).  The ioctl record's i2 holds the new flags in its low 32 bits and, in
 * its high 32 bits, SW_IOCTL_OLD_KNOWN | the flags the inode had at entry (only those the
 * VFS keeps for every filesystem: sync, immutable, append, noatime, dirsync), or 0 when the
 * entry was not seen.  prctl: these options carry a name (arg2 is a user string). */
enum sw_kconst {
	SW_FS_IOC_SETFLAGS = 0x40086602,   /* _IOW('f', 2, long): chattr */
	SW_FS_IOC_FSSETXATTR = 0x401c5820, /* _IOW('X', 32, struct fsxattr) */
	SW_PR_SET_NAME = 15,
	SW_PR_GET_NAME = 16,
	SW_IOCTL_OLD_KNOWN = 0x40000000,
};

/* bits of the load-time global filter_flags: the config's `filters` */
enum sw_filter_flag {
	SW_FILTER_COMMS = 1,    /* drop events of tasks whose comm is in `ignore_comms` */
	SW_FILTER_HOST = 2,     /* containers only: drop events of tasks in the host mount namespace */
	SW_FILTER_CGROUPS = 4,  /* drop events of tasks whose cgroup v2 id is in `scope_cgroups` */
};

/* Every record starts with this.  Times are CLOCK_BOOTTIME ns (the decoder adds the
 * boot-to-epoch offset); ids are those of the initial namespaces. */
struct sw_header {
	__u64 ts;               /* 0: bpf_ktime_get_boot_ns() at syscall exit */
	__u64 cgroup_id;        /* 8 */
	__u64 start_time;       /* 16: thread group leader's start_boottime */
	__s64 res;              /* 24: syscall result */
	__u32 size;             /* 32: bytes of the whole record */
	__u16 type;             /* 36: enum sw_event_type */
	__u16 cpu;              /* 38 */
	__u32 pid;              /* 40: tgid */
	__u32 tid;              /* 44 */
	__u32 ppid;             /* 48: real_parent's tgid */
	__u32 uid;              /* 52 */
	__u32 gid;              /* 56 */
	__u32 euid;             /* 60 */
	__u32 egid;             /* 64 */
	__u32 loginuid;         /* 68 */
	__u32 pidns;            /* 72 */
	__u32 mntns;            /* 76 */
	__u32 tty;              /* 80: user-space dev_t of the controlling tty, 0 when none */
	__u32 flags;            /* 84: SW_F_* | live threads << SW_THREADS_SHIFT */
	char comm[SW_COMM_LEN];  /* 88 */
};                              /* 104 */

/* Types whose arguments are plain integers: ids, flags, pids, signals, capabilities. */
struct sw_ints {
	__s64 i0;
	__s64 i1;
	__s64 i2;
	__s64 i3;
};                              /* 32 */

/* Types with up to three string/path arguments and three integers.
 * Tail: s0_name, s0_dir, s1_name, s1_dir, s2_name, s2_dir. */
struct sw_strs {
	__s64 i0;
	__s64 i1;
	__s64 i2;
	__u16 s0_name_len;
	__u16 s0_dir_len;
	__u16 s1_name_len;
	__u16 s1_dir_len;
	__u16 s2_name_len;
	__u16 s2_dir_len;
	__u32 pad;
};                              /* 40 */

/* Socket types and dup*: addresses from the user sockaddr or from the struct sock. */
struct sw_sock {
	__s64 fd;               /* socket fd (dup*: oldfd) */
	__s64 i1;               /* listen backlog, accept4 flags, dup2/dup3 newfd */
	__s64 i2;               /* dup3 flags */
	__u8 addr[16];          /* remote (peer) address; IPv4 in the first 4 bytes */
	__u8 saddr[16];         /* local address */
	__u16 family;
	__u16 port;             /* host byte order */
	__u16 sport;
	__u16 sotype;           /* SOCK_STREAM ... */
	__u16 proto;            /* IPPROTO_TCP ... */
	__u8 fd_type;           /* dup*: 'f' file, 'd' dir, '4' / '6' / 'u' socket, 'p' pipe ... */
	__u8 upath_len;         /* bytes used in upath (AF_UNIX) */
	__u32 pad;
	char upath[SW_UNIX_PATH_MAX];
	__u32 pad2;
};                              /* 184 */

/* execve / execveat.  Tail: filename, filename_dir, argv, env, cwd (a dentry path).
 * On success filename is empty and filename_dir is the dentry path of the new mm->exe_file;
 * on failure filename is the requested user string (dir set when it is relative). */
struct sw_exec {
	__u64 cap_effective;
	__u64 cap_permitted;
	__u64 cap_inheritable;
	__s32 dirfd;
	__u32 flags;
	__u32 exe_flags;
	__u16 filename_len;
	__u16 filename_dir_len;
	__u16 argv_len;
	__u16 env_len;
	__u16 cwd_len;
	__u8 argv_truncated;
	__u8 env_truncated;
	/* fds 0, 1 and 2 of the new image (after close-on-exec) */
	__u64 fd_ino[SW_STDIO_FDS];     /* 48: inode numbers: a pipe's or socket's identity */
	__u32 fd_rdev[SW_STDIO_FDS];    /* 72: device number of a character/block device (st_rdev) */
	__u8 fd_type[SW_STDIO_FDS];     /* 84: fd_type character as dup reports it, 0: not open */
	__u8 sock_fd;                   /* 87: the first of them that is an inet/unix socket */
	__u8 sock_addr[16];             /* 88: its peer address */
	__u8 sock_saddr[16];            /* 104: its local address */
	__u16 sock_family;              /* 120 */
	__u16 sock_port;                /* 122: peer port */
	__u16 sock_sport;               /* 124: local port */
	__u16 pad;                      /* 126 */
	char writer_comm[SW_COMM_LEN];  /* 128: SW_EXE_WRITTEN: comm of its last writer */
};                              /* 144 */

/* Per-CPU counters, one slot per event type.  seen = filtered + rejected + submitted + lost. */
struct sw_counters {
	__u64 seen;             /* syscalls of this type that reached the sensor */
	__u64 filtered;         /* dropped on purpose in the kernel (disabled type, own pid, comm) */
	__u64 submitted;        /* written to the ring buffer */
	__u64 lost;             /* ring buffer full, or no slot to save the arguments */
	__u64 rejected;         /* dropped by the prefilter: no loaded rule could match it */
	__u64 discarded;        /* of rejected: by a discarder (a learned path, sw_discard.h) */
};

/* Every wire struct and constant enum once, so that all of them land in the object's BTF
 * (the ABI test reads them from there); sysward.bpf.o instantiates it. */
struct sw_abi_anchor {
	struct sw_header header;
	struct sw_ints ints;
	struct sw_strs strs;
	struct sw_sock sock;
	struct sw_exec exec;
	struct sw_counters counters;
	enum sw_event_type type;
	enum sw_bound bound;
	enum sw_header_flag header_flag;
	enum sw_header_threads header_threads;
	enum sw_exe_flag exe_flag;
	enum sw_stdio_bound stdio_bound;
	enum sw_filter_flag filter_flag;
	enum sw_kconst kconst;
};

#endif /* SYSWARD_ABI_H */
