// A tc classifier that writes one 12-byte record per run into a ring buffer (ev_ring)
// and a perf event array (ev_perf): {u32 seq, u32 len, u32 magic}, seq counting runs
// (ev_seq). Driven by `bpftool prog run ... repeat N` in the `map events` tests.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u32 seq;
	__u32 len;
	__u32 magic;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} ev_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} ev_perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ev_seq SEC(".maps");

SEC("tc")
int emit(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&ev_seq, &zero);
	struct event e = { .len = skb->len, .magic = 0xb5e5b5e5 };

	if (!seq)
		return TC_ACT_OK;
	e.seq = __sync_fetch_and_add(seq, 1);
	bpf_ringbuf_output(&ev_ring, &e, sizeof(e), 0);
	bpf_perf_event_output(skb, &ev_perf, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
