// Two programs to graft into tailcall.bpf.c's jmp_table: graft_one counts into
// graft_hits[1], graft_two into graft_hits[2]. graft_hits must be the session's map (reused
// by name at load time), else the counts land in a copy nobody reads.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} graft_hits SEC(".maps");

static __always_inline int count(__u32 slot)
{
	__u64 *hits = bpf_map_lookup_elem(&graft_hits, &slot);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	return TC_ACT_OK;
}

SEC("tc")
int graft_one(struct __sk_buff *skb)
{
	return count(1);
}

SEC("classifier")
int graft_two(struct __sk_buff *skb)
{
	return count(2);
}

char LICENSE[] SEC("license") = "GPL";
