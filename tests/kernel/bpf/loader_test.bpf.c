// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* Test-only program for the loader tests: one tracepoint on getppid that records the calling
 * process into a ring buffer and counts its hits per CPU, so a test can trigger exactly the
 * events it expects with os.getppid().  Compiled by the tests into their tmp_path.
 * With -DLOADER_TEST_BROKEN it also contains a program the verifier must reject. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* load-time settings (.rodata), written by user space between open and load */
const volatile __u32 target_tgid = 0;   /* only this process is recorded */
const volatile __u64 magic = 0;         /* copied into every record */
const volatile __u32 burst = 1;         /* records submitted per getppid() call */
const volatile __u32 no_wakeup = 0;     /* submit with BPF_RB_NO_WAKEUP */
const volatile __u32 discard_every = 0; /* when > 0, discard record i when i % discard_every == 0 */

/* plain globals (.data / .bss) */
__u64 data_cookie = 7;
__u64 bss_hits;

struct record {
	__u32 tgid;
	__u32 cpu;
	__u64 magic;
	__u64 seq;
	__u64 data_cookie;
	__u8 fill[32];
};  /* 64 bytes */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

enum { CNT_HITS = 0, CNT_SUBMITTED = 1, CNT_LOST = 2, CNT_DISCARDED = 3, CNT_MAX = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} scratch SEC(".maps");

static __always_inline void bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 seq;
	__u32 i;

	if (tgid != target_tgid)
		return 0;
	bump(CNT_HITS);
	bss_hits++;
	seq = bss_hits;
	for (i = 0; i < 4096; i++) {
		struct record *r;

		if (i >= burst)
			break;
		r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
		if (!r) {
			bump(CNT_LOST);
			continue;
		}
		r->tgid = tgid;
		r->cpu = bpf_get_smp_processor_id();
		r->magic = magic;
		r->seq = seq * 10000 + i;
		r->data_cookie = data_cookie;
		__builtin_memset(r->fill, 0xab, sizeof(r->fill));
		if (discard_every && i % discard_every == 0) {
			bpf_ringbuf_discard(r, no_wakeup ? BPF_RB_NO_WAKEUP : 0);
			bump(CNT_DISCARDED);
			continue;
		}
		bpf_ringbuf_submit(r, no_wakeup ? BPF_RB_NO_WAKEUP : 0);
		bump(CNT_SUBMITTED);
	}
	return 0;
}

SEC("cgroup/connect4")
int allow_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

#ifdef LOADER_TEST_BROKEN
/* dereferences a hash map value without the NULL check the verifier insists on (a hash
 * lookup, unlike a constant-key array lookup, can always return NULL) */
SEC("tracepoint/syscalls/sys_enter_getppid")
int bad_deref(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&scratch, &k);

	*v += 1;
	return 0;
}
#endif

#ifdef LOADER_TEST_LSM
/* allows everything; used to check that `sysward doctor` tells the truth about LSM programs */
SEC("lsm/file_open")
int allow_file_open(unsigned long long *ctx)
{
	return 0;
}
#endif
