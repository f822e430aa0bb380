// A tc classifier with BTF-defined maps: per-L3-protocol packet/byte counters.
// Built by `clang -O2 -g -target bpf -c counter.bpf.c`; used by the demo and the tests.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// counter-pinned.bpf.c defines COUNTER_PIN_BY_NAME: the same maps, pinned by name.
#ifdef COUNTER_PIN_BY_NAME
#define COUNTER_PINNING __uint(pinning, LIBBPF_PIN_BY_NAME);
#else
#define COUNTER_PINNING
#endif

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct counter);
	COUNTER_PINNING
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	COUNTER_PINNING
} total_pkts SEC(".maps");

SEC("tc")
int count_proto(struct __sk_buff *skb)
{
	__u32 proto = bpf_ntohs(skb->protocol);
	__u32 zero = 0;
	struct counter *c, init = { 1, skb->len };
	__u64 *total;

	c = bpf_map_lookup_elem(&proto_stats, &proto);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, skb->len);
	} else {
		bpf_map_update_elem(&proto_stats, &proto, &init, BPF_NOEXIST);
	}
	total = bpf_map_lookup_elem(&total_pkts, &zero);
	if (total)
		__sync_fetch_and_add(total, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
