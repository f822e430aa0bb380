// counter.bpf.c with its maps pinned by name: loaded by tc (iproute2 with libbpf), they
// appear as /sys/fs/bpf/tc/globals/proto_stats and .../total_pkts, and a reloaded program
// reuses them. docs/k8s/daemonset.yaml's loader sends them with `bpfsession send --pinned`.
// Built by `clang -O2 -g -target bpf -c counter-pinned.bpf.c`.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct counter);
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
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
