// A tc classifier that writes one trace line per packet with bpf_printk, for
// `bpfsession debug`'s tests: "bpfsession-printk token=<printk_token[0]> len=<skb->len>".
// The test sets the token, so that lines of an earlier run still waiting in the global
// trace buffer never pass for this run's.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} printk_token SEC(".maps");

SEC("tc")
int printk_len(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *token = bpf_map_lookup_elem(&printk_token, &zero);

	bpf_printk("bpfsession-printk token=%u len=%u", token ? *token : 0, skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
