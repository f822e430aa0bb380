// Maps with BTF of every shape `bpfsession map` formats: ints of each width and sign,
// an enum, nested arrays, a bitfield, a union, a char string, nested structs; and each
// map kind: array, hash, lru_hash, percpu_array, percpu_hash, lpm_trie, prog_array,
// array_of_maps. Built by `clang -O2 -g -target bpf -c typed.bpf.c` for the map tests.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

enum color { RED = 0, GREEN = 5, BLUE = 7 };

union word {
	__u32 as_u32;
	__u8 bytes[4];
};

struct rec {
	__u32 id;
	enum color color;
	__u16 ports[2][3];
	unsigned int flag:1, level:3, spare:28;
	union word w;
	char name[8];
	__s64 delta;
	struct {
		__u8 a;
		__s8 b;
	} inner;
};

struct flow {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct small {
	__u16 a;
	__u8 b;
};

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct rec);
} t_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct flow);
	__type(value, struct rec);
} t_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} t_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __s64);
} t_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} t_pcpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __s16);
	__type(value, struct small);
} t_pcpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__type(key, struct lpm_v4);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} t_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} t_progs SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} t_inner_a SEC(".maps"), t_inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_map);
} t_outer SEC(".maps") = {
	.values = { [0] = &t_inner_a },
};

SEC("tc")
int typed_prog(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct flow f = {};
	__s16 k = 0;
	struct lpm_v4 lk = { 32, {} };
	void *inner;

	if (bpf_map_lookup_elem(&t_array, &zero) || bpf_map_lookup_elem(&t_hash, &f) ||
	    bpf_map_lookup_elem(&t_lru, &zero) || bpf_map_lookup_elem(&t_counts, &zero) || bpf_map_lookup_elem(&t_pcpu_array, &zero) ||
	    bpf_map_lookup_elem(&t_pcpu_hash, &k) || bpf_map_lookup_elem(&t_lpm, &lk))
		return TC_ACT_OK;
	inner = bpf_map_lookup_elem(&t_outer, &zero);
	if (inner && bpf_map_lookup_elem(inner, &zero))
		return TC_ACT_OK;
	bpf_tail_call(skb, &t_progs, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
