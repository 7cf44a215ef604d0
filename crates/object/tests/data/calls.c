// Test object for the engine bridge (bpfpatch-object tests/engine.rs): relocated calls and
// function addresses inside one section (.text), calls and callbacks across sections, several
// programs in one section, data of every kind (.maps, .rodata, .bss, an extern kfunc), line info.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} table SEC(".maps");

const volatile __u64 scale = 3;
__u64 total;

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

__noinline int leaf(int x)
{
	if (x > 100)
		return x - scale;
	return x * 2 + 1;
}

static int each(__u32 i, void *ctx)
{
	__u64 *acc = ctx;
	*acc += leaf(i);
	return 0;
}

__noinline int walk(int n)
{
	__u64 acc = 0;
	bpf_loop(n & 7, each, &acc, 0);
	return leaf((int)acc) + leaf(n);
}

SEC("xdp")
int first(struct xdp_md *ctx)
{
	__u32 k = ctx->ingress_ifindex;
	__u64 *v = bpf_map_lookup_elem(&table, &k);
	if (v)
		total += *v;
	bpf_loop(3, each, &total, 0);
	return walk(k) > 5 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int second(struct xdp_md *ctx)
{
	int r;
	bpf_rcu_read_lock();
	r = leaf(ctx->rx_queue_index) + (int)scale;
	bpf_rcu_read_unlock();
	return r & 1 ? XDP_PASS : XDP_ABORTED;
}

char _license[] SEC("license") = "GPL";
