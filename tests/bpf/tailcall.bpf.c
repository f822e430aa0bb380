// A tc classifier that counts each packet in graft_hits[0] and then tail-calls slot 0 of
// jmp_table, where `bpfsession graft` (or `tc exec bpf graft`) puts a program. Used with
// tests/bpf/graft.bpf.c, whose programs count into the same graft_hits map.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jmp_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} graft_hits SEC(".maps");

SEC("tc")
int tail_entry(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *hits = bpf_map_lookup_elem(&graft_hits, &zero);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	bpf_tail_call(skb, &jmp_table, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
