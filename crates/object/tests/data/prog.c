// Test object for bpfpatch-object: two program sections and .text subprograms, with every kind
// of instruction-pointing table clang emits: map and global-data ld_imm64 relocations
// (R_BPF_64_64), calls into .text through relocations (R_BPF_64_32), a callback address
// (ld_imm64 R_BPF_64_64 against .text), func_info, line_info and CO-RE relocations.
// Rebuild with ./build.sh (clang-19, libbpf-dev headers).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

__u64 hits = 0;
const volatile __u32 limit = 7;

struct pair {
	int a;
	int b;
} __attribute__((preserve_access_index));

static __noinline int mix(int x)
{
	int s = 0;
	for (int i = 0; i < (x & 15); i++)
		s += i * x;
	return s;
}

__noinline int bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);
	if (!v)
		return -1;
	__sync_fetch_and_add(v, 1);
	hits++;
	return mix((int)*v);
}

static int loop_cb(__u32 idx, void *data)
{
	int *acc = data;
	*acc += mix(idx);
	return *acc > 1000;
}

SEC("xdp")
int prog_xdp(struct xdp_md *ctx)
{
	int acc = 0;
	__u32 len = ctx->data_end - ctx->data;
	if (len > limit)
		acc = bump(len & 3);
	bpf_loop(4, loop_cb, &acc, 0);
	return acc > 0 ? XDP_PASS : XDP_DROP;
}

SEC("tc")
int prog_tc(struct __sk_buff *skb)
{
	struct pair *p = (void *)(long)skb->data;
	int b = __builtin_preserve_access_index(p->b);
	if (skb->len < 8)
		return 0;
	return bump(b & 1) + mix(skb->len);
}

char _license[] SEC("license") = "GPL";
