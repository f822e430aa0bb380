// A tc classifier that writes one trace line per packet with bpf_printk, for
// `bpfsession debug`'s tests: "bpfsession-printk len=<skb->len>".
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int printk_len(struct __sk_buff *skb)
{
	bpf_printk("bpfsession-printk len=%u", skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
