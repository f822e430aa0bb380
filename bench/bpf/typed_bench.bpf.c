// The typed maps of bench/bench_dump_typed.py: a 5-tuple key and a struct of counters,
// as flow monitors keep them, in a hash, an array and a per-CPU hash.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef ENTRIES
#define ENTRIES 1000000
#endif

struct flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u32 first_seen;
	__u32 last_seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENTRIES);
	__type(key, struct flow);
	__type(value, struct counters);
} b_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ENTRIES);
	__type(key, __u32);
	__type(value, struct counters);
} b_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, ENTRIES);
	__type(key, struct flow);
	__type(value, struct counters);
} b_pcpu SEC(".maps");

SEC("tc")
int typed_bench(struct __sk_buff *skb)
{
	struct flow f = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(&b_hash, &f) || bpf_map_lookup_elem(&b_array, &zero) ||
	    bpf_map_lookup_elem(&b_pcpu, &f))
		return 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
