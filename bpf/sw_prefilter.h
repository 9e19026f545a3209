/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The prefilter: the loaded rules' approvers, evaluated before a record is built.
 *
 * User space (src/sysward/enforce/prefilter) compiles, per event type, the rules into clauses
 * over kernel atoms and writes them into the maps below; src/sysward/enforce/prefilter/model.py
 * is this file's decision in Python, and the kernel test compares the two event by event.
 *
 * Cheapest first, stopping as soon as no clause is left:
 *   1. feature bits of the integer inputs (no helper call) select the allowed clauses;
 *   2. the comm (one hash lookup);
 *   3. the base name of the path argument (the user string is read and scanned);
 *   4. the full path: the user string when absolute, else the directory of dirfd/cwd walked
 *      up (sw_walk.h, the walk every path of sysward takes) and the name appended.
 * A key the kernel cannot know (an empty comm; a path with '.', '..' or '//' components or a
 * trailing '/', too long, relative to the root or to an unknown directory) leaves the clauses
 * of its kind alive: unknown means "may match".
 *
 * Socket records (pf_check_sock, on the filled sw_sock payload): feature bits of family,
 * ports and type; each end's address (pf_net, LPM of family + address) and port (pf_port),
 * an end without an IP address failing their positive tests and a relative unix path (which
 * may read as an address) leaving them alive; a unix socket's path (pf_path); the comm.
 *
 * A handler calls pf_check() with the inputs of the record it is about to build; adding an
 * event type is passing them (and, in Python, its entry in sysward.enforce.prefilter.atoms). */
#ifndef SYSWARD_SW_PREFILTER_H
#define SYSWARD_SW_PREFILTER_H

#include "sw_common.h"
#include "sw_task.h"
#include "sw_walk.h"
#include "sw_kcond.h"
#include "sw_discard.h"
#include "prefilter.h"

/* enum pf_setting, set by user space before load (kernel.prefilter) */
const volatile __u32 prefilter = PF_OFF;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_EVT_MAX);
	__type(key, __u32);
	__type(value, struct pf_type);
} pf_types SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PF_SETS);
	__type(key, struct pf_comm_key);
	__type(value, struct pf_bits);
} pf_comm SEC(".maps");

/* UAPI values the curated vmlinux.h does not declare */
#define PF_MAP_LPM_TRIE 11
#define PF_F_NO_PREALLOC 1

#define PF_LPM(name)                                                                           \
	struct {                                                                                 \
		__uint(type, PF_MAP_LPM_TRIE);                                                   \
		__uint(max_entries, PF_SETS);                                                    \
		__uint(map_flags, PF_F_NO_PREALLOC);                                              \
		__type(key, struct pf_lpm_key);                                                  \
		__type(value, struct pf_bits);                                                   \
	} name SEC(".maps")

PF_LPM(pf_path);
PF_LPM(pf_name);

/* socket records: addresses and networks of each end (LPM), ports of each end (hash) */
struct {
	__uint(type, PF_MAP_LPM_TRIE);
	__uint(max_entries, PF_SETS);
	__uint(map_flags, PF_F_NO_PREALLOC);
	__type(key, struct pf_net_key);
	__type(value, struct pf_bits);
} pf_net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PF_SETS);
	__type(key, struct pf_port_key);
	__type(value, struct pf_bits);
} pf_port SEC(".maps");

/* Keys are built here; each is followed by room for one more read of PF_KEY_DATA bytes, so a
 * read that starts near the end of a key stays inside the value. */
struct pf_scratch {
	struct pf_lpm_key key;  /* data: type id, the user string, NUL (the base name's key is
				 * made inside it, see pf_check) */
	__u8 spill0[PF_KEY_DATA];
	struct pf_lpm_key path; /* data: type id, directory + '/' + name, NUL */
	__u8 spill2[PF_KEY_DATA];
	__u64 stack[64];        /* dentries of the directory, leaf first */
	__u32 depth;
	__u32 off;
	__u32 trunc;
	__u32 dot;              /* some component starts with '.' */
	/* the scan of the user string */
	__u32 len;
	__u32 base;             /* offset of the base name in the string */
	__u32 bad;
	__u32 cur_len;
	__u32 all_dots;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pf_scratch);
} pf_scratch SEC(".maps");

/* every shared struct and enum once, for the BTF the ABI test reads */
struct pf_abi_anchor {
	struct pf_feat feat;
	struct pf_type type;
	struct pf_bits bits;
	struct pf_comm_key comm;
	struct pf_lpm_key lpm;
	struct pf_net_key net;
	struct pf_port_key port;
	enum pf_end end;
	enum pf_bound bound;
	enum pf_setting setting;
	enum pf_mode mode;
	enum pf_input input;
	enum pf_op op;
	enum pf_pathbit pathbit;
	enum pf_kind kind;
};
struct pf_abi_anchor pf_abi_anchor __attribute__((unused));

#define PF_KMASK (PF_K_MAX - 1)
#define PF_DMASK (PF_KEY_DATA - 1)

static __always_inline bool pf_needs(struct pf_type *cfg, __u64 cand, int k)
{
	return kc_needs(cand, cfg->req_pos[k & PF_KMASK], cfg->req_neg[k & PF_KMASK]);
}

/* narrow the candidates by one lookup's result (NULL: the key is in no set) */
static __always_inline __u64 pf_apply(struct pf_type *cfg, __u64 cand, int k, struct pf_bits *hit)
{
	return kc_apply(cand, cfg->req_pos[k & PF_KMASK], cfg->req_neg[k & PF_KMASK],
			hit ? hit->pos : 0, hit ? hit->neg : 0);
}

/* Input PF_IN_LOGINUID: -1 when unset, as user.loginuid shows it */
static __always_inline __s64 pf_loginuid(struct task_struct *t)
{
	__u32 l = t->loginuid.val;
	return l == 0xffffffffu ? -1 : (__s64)l;
}

static __always_inline bool pf_feat_holds(const struct pf_feat *f, const __s64 *in)
{
	__s64 x = in[f->input & 7];
	return f->op == PF_OP_LT ? x < f->value : (x & f->mask) == (__u64)f->value;
}

/* written out: at most PF_MAX_FEATURES tests, no loop for the verifier to follow */
#define PF_FEAT(i)                                                                             \
	if (n > (i) && pf_feat_holds(&cfg->feat[i], in))                                         \
		bits |= 1u << (i);

static __always_inline __u32 pf_feature_bits(struct pf_type *cfg, const __s64 *in)
{
	__u32 bits = 0;
	__u32 n = cfg->nfeat;
	PF_FEAT(0) PF_FEAT(1) PF_FEAT(2) PF_FEAT(3) PF_FEAT(4) PF_FEAT(5) PF_FEAT(6) PF_FEAT(7)
	return bits;
}

/* The scan of the user string: is it clean, where does its base name start, does a component
 * start with '.'.  The state lives in registers within a step (struct pf_scan) and in the
 * scratch value between steps. */
struct pf_scan {
	__u32 base;
	__u32 bad;
	__u32 cur_len;
	__u32 all_dots;
	__u32 dot;
};

/* byte i (ch) of the string; 1 when it makes the string unclean ('//', '/./', '/../') */
static __always_inline int pf_scan_byte(struct pf_scan *s, __u32 i, __u32 ch)
{
	if (ch == '/') {
		if (i > 0 && (s->cur_len == 0 || (s->cur_len <= 2 && s->all_dots))) {
			s->bad = 1;
			return 1;
		}
		s->base = i + 1;
		s->cur_len = 0;
		s->all_dots = 1;
		return 0;
	}
	if (s->cur_len == 0 && ch == '.')
		s->dot = 1;
	if (ch != '.')
		s->all_dots = 0;
	s->cur_len++;
	return 0;
}

#define PF_ONES 0x0101010101010101ull
#define PF_HIGH 0x8080808080808080ull
/* some byte of x is zero (exact, not only likely) */
#define PF_HASZERO(x) (((x) - PF_ONES) & ~(x) & PF_HIGH)

/* Step w: bytes 8w..8w+7 of the string.  A word with neither '/' nor '.' only lengthens the
 * current component (no byte loop); a word with either is taken byte by byte.  Measured on
 * the project's VM: the per-byte bpf_loop cost 172 ns for a 13-byte path, this 74 ns. */
static long pf_scan_step(__u32 w, struct pf_scratch **psc)
{
	struct pf_scratch *sc = *psc;
	__u32 i0 = w * 8;
	__u32 len = sc->len;
	if (i0 >= len)
		return 1;
	__u32 n = len - i0;
	if (n > 8)
		n = 8;
	/* one load, unaligned (the string starts at data[1]); the verifier allows it where the
	 * architecture loads unaligned words (x86-64, arm64); clang would split it into bytes */
	const __u8 *p = &sc->key.data[(i0 + 1) & PF_DMASK];
	__u64 v;
	asm volatile("%0 = *(u64 *)(%1 + 0)" : "=r"(v) : "r"(p));
	if (n < 8)
		v &= (1ull << (n * 8)) - 1; /* past the string: zeros, neither '/' nor '.' */
	if (!PF_HASZERO(v ^ (PF_ONES * '/')) && !PF_HASZERO(v ^ (PF_ONES * '.'))) {
		sc->cur_len += n;
		sc->all_dots = 0;
		return 0;
	}
	struct pf_scan st = {sc->base, 0, sc->cur_len, sc->all_dots, sc->dot};
	int stop = 0;
#define PF_BYTE(j)                                                                             \
	if (!stop && n > (j))                                                                    \
		stop = pf_scan_byte(&st, i0 + (j), (v >> ((j) * 8)) & 0xff);
	PF_BYTE(0) PF_BYTE(1) PF_BYTE(2) PF_BYTE(3) PF_BYTE(4) PF_BYTE(5) PF_BYTE(6) PF_BYTE(7)
#undef PF_BYTE
	sc->base = st.base;
	sc->bad = st.bad;
	sc->cur_len = st.cur_len;
	sc->all_dots = st.all_dots;
	sc->dot = st.dot;
	return stop;
}

struct pf_walk {
	struct pf_scratch *sc;
	struct sw_walk w;
};

static long pf_up_step(__u32 i, struct pf_walk *x)
{
	struct dentry *d = NULL;
	int step = sw_walk_next(&x->w, &d);
	if (step == SW_WALK_END)
		return 1;
	if (step == SW_WALK_CROSSED)
		return 0;
	struct pf_scratch *sc = x->sc;
	__u32 n = sc->depth;
	if (n >= PF_DEPTH) {
		sc->trunc = 1; /* deeper than we look */
		return 1;
	}
	__u64 k = n;
	asm volatile("%0 &= 63" : "+r"(k));
	sc->stack[k] = (__u64)d;
	sc->depth = n + 1;
	return x->w.dentry ? 0 : 1;
}

static long pf_down_step(__u32 i, struct pf_scratch **psc)
{
	struct pf_scratch *sc = *psc;
	__u32 depth = sc->depth;
	if (i >= depth)
		return 1;
	__u64 idx = depth - 1 - i;
	asm volatile("%0 &= 63" : "+r"(idx));
	struct dentry *d = (void *)sc->stack[idx];
	__u32 off = sc->off;
	if (off >= PF_KEY_DATA - 2) {
		sc->trunc = 1;
		return 1;
	}
	sc->path.data[off & PF_DMASK] = '/';
	off++;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	long n = bpf_probe_read_kernel_str(&sc->path.data[off & PF_DMASK], PF_KEY_DATA, name);
	if (n <= 1) {
		sc->trunc = 1;
		return 1;
	}
	if (sc->path.data[off & PF_DMASK] == '.')
		sc->dot = 1;
	sc->off = off + n - 1;
	return 0;
}

/* The path of a relative name's directory into sc->path (data[1..off)); false if unknown. */
static __always_inline bool pf_dir_path(struct pf_scratch *sc, struct task_struct *t,
					__s64 dirfd)
{
	struct path *p;
	if (dirfd == AT_FDCWD) {
		struct fs_struct *fs = BPF_CORE_READ(t, fs);
		p = &fs->pwd;
	} else {
		struct file *f = fd_file(t, dirfd);
		if (!f)
			return false;
		p = &f->f_path;
	}
	struct pf_walk x = {};
	x.sc = sc;
	sc->depth = 0;
	sc->trunc = 0;
	sc->off = 1;
	if (!sw_walk_init(&x.w, p, t))
		return false;
	bpf_loop(PF_DEPTH + 8, pf_up_step, &x, 0);
	if (sc->trunc || sc->depth == 0)
		return false; /* too deep, or the root: the decoder leaves such a name relative */
	bpf_loop(PF_DEPTH, pf_down_step, &sc, 0);
	return !sc->trunc;
}

/* The comm stage: the candidates left once the task's comm is looked up (an empty comm is
 * unknown: they all stay). */
static __always_inline __u64 pf_comm_stage(struct pf_type *cfg, __u64 cand, struct task_struct *t,
				     __u32 type)
{
	if (!cand || !pf_needs(cfg, cand, PF_K_COMM))
		return cand;
	struct pf_comm_key ck = {};
	ck.type = type;
	__builtin_memcpy(ck.comm, t->comm, sizeof(ck.comm));
	if (!ck.comm[0])
		return cand;
	return pf_apply(cfg, cand, PF_K_COMM, bpf_map_lookup_elem(&pf_comm, &ck));
}

/* The approver of `type` for an event with these inputs: true when it is rejected.
 * upath/dirfd: the path argument (put_path_arg's), upath NULL when the type has none. */
static __always_inline bool pf_check(struct task_struct *t, __u32 type, __s64 res, __s64 i0,
				     __s64 i1, __s64 i2, __s64 i3, const void *upath, __s64 dirfd)
{
	if (prefilter == PF_OFF)
		return false;
	__u32 key = type;
	struct pf_type *cfg = bpf_map_lookup_elem(&pf_types, &key);
	if (!cfg || cfg->mode != PF_FILTER)
		return false;
	__s64 in[8] = {i0, i1, i2, i3, res, t->real_cred->euid.val, -1, pf_loginuid(t)};
	__u64 cand = cfg->clauses & cfg->allow[pf_feature_bits(cfg, in) & (PF_ALLOW - 1)];
	if (!cand)
		return true;
	/* The stages narrow the same candidates whatever their order (the model's order is
	 * comm, name, path); the base name goes first here: it rejects most events, and a
	 * rejected one then costs no comm lookup. */
	bool need_name = pf_needs(cfg, cand, PF_K_NAME);
	bool need_path = pf_needs(cfg, cand, PF_K_PATH) || pf_needs(cfg, cand, PF_K_PATHBITS);
	if (!upath || !(need_name || need_path))
		return !pf_comm_stage(cfg, cand, t, type);
	__u32 zero = 0;
	struct pf_scratch *sc = bpf_map_lookup_elem(&pf_scratch, &zero);
	if (!sc)
		return false;
	long n = bpf_probe_read_user_str(&sc->key.data[1], PF_KEY_DATA - 1, upath);
	if (n <= 1 || n >= PF_KEY_DATA - 1)
		return !pf_comm_stage(cfg, cand, t, type); /* empty, unreadable or too long: unknown */
	__u32 len = n - 1;
	sc->len = len;
	sc->base = 0;
	sc->bad = 0;
	sc->cur_len = 0;
	sc->all_dots = 1;
	sc->dot = 0;
	bpf_loop(PF_KEY_DATA / 8, pf_scan_step, &sc, 0);
	/* the last component: not '.' or '..', and no trailing '/' (but "/" itself) */
	if (sc->bad || (sc->cur_len == 0 && len > 1) ||
	    (sc->cur_len > 0 && sc->cur_len <= 2 && sc->all_dots))
		return !pf_comm_stage(cfg, cand, t, type);
	bool absolute = sc->key.data[1] == '/';
	if (need_name) {
		/* The base name's key is made in place, not copied: the byte before the name
		 * (its '/', or the type slot data[0] when there is none) becomes the type id and
		 * the four before that the prefix length; they are put back after the lookup,
		 * since the full path is read from the same bytes (saves a helper call). */
		__u64 base = sc->base;
		asm volatile("%0 &= 255" : "+r"(base)); /* PF_DMASK, kept for the verifier */
		__u32 blen = len - base;
		__u8 *k = (__u8 *)&sc->key + base;
		__u64 saved;
		__u32 bits = (blen + 2) * 8;
		asm volatile("%0 = *(u64 *)(%1 + 0)" : "=r"(saved) : "r"(k));
		asm volatile("*(u32 *)(%0 + 0) = %1" : : "r"(k), "r"(bits) : "memory");
		k[4] = type;
		struct pf_bits *hit = bpf_map_lookup_elem(&pf_name, k);
		asm volatile("*(u64 *)(%0 + 0) = %1" : : "r"(k), "r"(saved) : "memory");
		cand = pf_apply(cfg, cand, PF_K_NAME, hit);
		if (!cand)
			return true;
	}
	cand = pf_comm_stage(cfg, cand, t, type);
	if (!cand)
		return true;
	if (!(pf_needs(cfg, cand, PF_K_PATH) || pf_needs(cfg, cand, PF_K_PATHBITS)))
		return false;
	struct pf_lpm_key *full;
	if (absolute) {
		sc->key.data[0] = type;
		sc->key.prefixlen = (len + 2) * 8;
		full = &sc->key;
	} else {
		if (!pf_dir_path(sc, t, dirfd))
			return false;
		__u32 off = sc->off;
		if (off + 1 + len > PF_KEY_DATA - 2)
			return false; /* too long: unknown */
		sc->path.data[0] = type;
		sc->path.data[off & PF_DMASK] = '/';
		bpf_probe_read_kernel(&sc->path.data[(off + 1) & PF_DMASK], (len + 1) & PF_DMASK,
				      &sc->key.data[1]);
		sc->path.prefixlen = (off + len + 2) * 8;
		full = &sc->path;
	}
	in[PF_IN_PATHBITS] = sc->dot ? PF_PB_DOT : 0;
	cand &= cfg->allow[pf_feature_bits(cfg, in) & (PF_ALLOW - 1)];
	if (cand && pf_needs(cfg, cand, PF_K_PATH))
		cand = pf_apply(cfg, cand, PF_K_PATH, bpf_map_lookup_elem(&pf_path, full));
	return !cand;
}

/* One end of a socket record: its address (pf_net) and port (pf_port) narrow the clauses
 * that test them; an absent end fails their positive tests, an unknown one leaves them. */
static __always_inline __u64 pf_end_stage(struct pf_type *cfg, __u64 cand, __u32 type, int akind,
					  int pkind, int state, __u16 fam, const __u8 *addr,
					  __u16 port)
{
	if (!cand || !(pf_needs(cfg, cand, akind) || pf_needs(cfg, cand, pkind)))
		return cand;
	if (state == PF_END_UNKNOWN)
		return cand;
	if (state == PF_END_ABSENT) {
		cand = pf_apply(cfg, cand, akind, NULL);
		return pf_apply(cfg, cand, pkind, NULL);
	}
	struct pf_net_key nk = {};
	nk.data[0] = type;
	nk.data[1] = akind;
	nk.data[2] = fam;
	if (fam == AF_INET) {
		__builtin_memcpy(&nk.data[3], addr, 4);
		nk.prefixlen = 24 + 32;
	} else {
		__builtin_memcpy(&nk.data[3], addr, 16);
		nk.prefixlen = 24 + 128;
	}
	cand = pf_apply(cfg, cand, akind, bpf_map_lookup_elem(&pf_net, &nk));
	struct pf_port_key pk = {.type = type, .kind = pkind, .port = port};
	return pf_apply(cfg, cand, pkind, bpf_map_lookup_elem(&pf_port, &pk));
}

/* The approver of a socket record's type (its payload already filled): true when rejected.
 * Inputs i0..i3: family, port, sport, socket type | protocol << 16 (atoms.py's view). */
static __always_inline bool pf_check_sock(struct task_struct *t, __u32 type, __s64 res,
					  const struct sw_sock *p)
{
	if (prefilter == PF_OFF)
		return false;
	__u32 key = type;
	struct pf_type *cfg = bpf_map_lookup_elem(&pf_types, &key);
	if (!cfg || cfg->mode != PF_FILTER)
		return false;
	__u16 fam = p->family;
	__s64 in[8] = {fam, p->port, p->sport, p->sotype | ((__s64)p->proto << 16), res,
		       t->real_cred->euid.val, -1, pf_loginuid(t)};
	__u64 cand = cfg->clauses & cfg->allow[pf_feature_bits(cfg, in) & (PF_ALLOW - 1)];
	if (!cand)
		return true;
	bool ip = fam == AF_INET || fam == AF_INET6;
	int astate = ip ? PF_END_PRESENT : PF_END_ABSENT;
	if (fam == AF_UNIX && p->upath[0] && p->upath[0] != '/')
		astate = PF_END_UNKNOWN;
	cand = pf_end_stage(cfg, cand, type, PF_K_ADDR, PF_K_PORT, astate, fam, p->addr, p->port);
	cand = pf_end_stage(cfg, cand, type, PF_K_SADDR, PF_K_SPORT,
			    ip ? PF_END_PRESENT : PF_END_ABSENT, fam, p->saddr, p->sport);
	if (cand && pf_needs(cfg, cand, PF_K_PATH)) {
		/* a unix socket's path (fd.name); any other socket's name is no path */
		struct pf_bits *hit = NULL;
		if (fam == AF_UNIX && p->upath[0]) {
			__u32 zero = 0;
			struct pf_scratch *sc = bpf_map_lookup_elem(&pf_scratch, &zero);
			if (!sc)
				return false;
			long n = bpf_probe_read_kernel_str(&sc->key.data[1], sizeof(p->upath),
							   p->upath);
			if (n <= 1)
				return false;
			sc->key.data[0] = type;
			sc->key.prefixlen = (n + 1) * 8;
			hit = bpf_map_lookup_elem(&pf_path, &sc->key);
		}
		cand = pf_apply(cfg, cand, PF_K_PATH, hit);
	}
	return !pf_comm_stage(cfg, cand, t, type);
}

/* In a handler, before the record is built: drop (PF_ON, counted) or mark (PF_AUDIT) an event
 * its type's approver rejects.  Returns the header flags to add; sets *drop. */
static __always_inline __u32 pf_verdict(struct sw_counters *c, struct task_struct *t, __u32 type,
					__s64 res, __s64 i0, __s64 i1, __s64 i2, __s64 i3,
					const void *upath, __s64 dirfd, bool *drop)
{
	*drop = false;
	if (prefilter == PF_OFF)
		return 0;
	/* learned discarders first (PF_ON only: the audit mode compares the approvers alone) */
	if (prefilter == PF_ON && pf_discarded(type, upath)) {
		c->rejected++;
		c->discarded++;
		*drop = true;
		return 0;
	}
	if (!pf_check(t, type, res, i0, i1, i2, i3, upath, dirfd))
		return 0;
	if (prefilter == PF_AUDIT)
		return SW_F_PF_REJECT;
	c->rejected++;
	*drop = true;
	return 0;
}

/* pf_verdict for a socket record whose payload is filled */
static __always_inline __u32 pf_verdict_sock(struct sw_counters *c, struct task_struct *t,
					     __u32 type, __s64 res, const struct sw_sock *p,
					     bool *drop)
{
	*drop = false;
	if (prefilter == PF_OFF || !pf_check_sock(t, type, res, p))
		return 0;
	if (prefilter == PF_AUDIT)
		return SW_F_PF_REJECT;
	c->rejected++;
	*drop = true;
	return 0;
}

#endif /* SYSWARD_SW_PREFILTER_H */
