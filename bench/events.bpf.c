// The producer of bench/bench_events.py: one 12-byte record {u32 seq, u32 len, u32 magic}
// per run into a 64 MiB ring buffer (room for 2.7 M records: a filled ring measures the
// reader, not the producer) and a perf event array.
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
	__uint(max_entries, 64 * 1024 * 1024);
} bench_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} bench_perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_mode SEC(".maps");

SEC("tc")
int bench_emit(struct __sk_buff *skb)
{
	static __u32 seq;
	__u32 zero = 0;
	__u32 *mode = bpf_map_lookup_elem(&bench_mode, &zero);
	struct event e = { .seq = seq++, .len = skb->len, .magic = 0xb5e5b5e5 };

	if (mode && *mode)
		bpf_perf_event_output(skb, &bench_perf, BPF_F_CURRENT_CPU, &e, sizeof(e));
	else
		bpf_ringbuf_output(&bench_ring, &e, sizeof(e), 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
