// Test object for the DWARF remapping (bpfpatch-object tests/dwarf.rs): two program sections and
// .text subprograms, an inlined helper (range lists), loops and locals with location lists, so
// that .debug_line, .debug_addr, .debug_info, .debug_rnglists, .debug_loclists and .debug_frame
// all name the code.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline __u64 mix(__u64 a, __u64 b)
{
	a ^= b << 7;
	a += b * 31;
	return a ^ (a >> 11);
}

__noinline int sum(int n)
{
	int acc = 0;
	for (int i = 0; i < (n & 15); i++)
		acc += i * 3 + (acc >> 2);
	return acc;
}

SEC("xdp")
int count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 k = (end - data) & 3;
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (!v)
		return XDP_PASS;
	*v = mix(*v, k) + sum(k);
	if (*v > 1000)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("tc")
int classify(struct __sk_buff *skb)
{
	__u64 h = skb->len;
	for (int i = 0; i < 4; i++)
		h = mix(h, skb->mark + i);
	return (int)(h & 1) + sum((int)h);
}

char _license[] SEC("license") = "GPL";
