// Every BTF kind `bpfsession map dump` formats, for byte-for-byte comparisons with
// bpftool over many random entries (tests/test_map_btf_kinds.py): ints of every size and
// sign, char/bool, 128-bit ints, enums of 1, 4 and 8 bytes (clang 14 emits no ENUM64),
// typedef/const/volatile, bitfields within and across bytes, char arrays, unions,
// nested structs and arrays, pointers; in hash, array, per-CPU and global-data maps.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned int u32_t;
typedef const volatile u32_t cv_u32;
typedef char name_t[5];

enum __attribute__((packed)) tiny { T0, T1 = 200 };
enum neg { NEG = -5, ZERO = 0, POS = 5 };
enum wide { W1 = 1, W2 = 0xffffffffffULL };

struct kinds {
	__u8 u8;
	__s8 s8;
	__u16 u16;
	__s16 s16;
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	char c;
	unsigned char uc;
	signed char sc;
	_Bool b;
	unsigned __int128 u128;
	__int128 s128;
	enum tiny tiny;
	enum neg neg;
	enum wide wide;
	u32_t td;
	cv_u32 cv;
	volatile __u16 vol;
	const __u8 ro;
	unsigned int bf1:1, bf3:3, bf12:12, bf16:16;
	unsigned long long bf40:40, bf24:24;
	__u8 odd;
	unsigned int cross:13, rest:19;
	char name[6];
	unsigned char raw[3];
	const char cname[4];
	name_t tname;
	union {
		__u32 x;
		__u16 h[2];
		struct {
			__u8 a, b;
		} s;
	} un;
	struct {
		struct {
			__u16 deep[2];
		} in;
		__s8 z;
	} nest;
	__u32 matrix[2][2];
	void *ptr;
};

struct key5 {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	char tag;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct key5);
	__type(value, struct kinds);
} k_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct kinds);
} k_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct key5);
	__type(value, struct kinds);
} k_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, enum neg);
} k_pcpu_enum SEC(".maps");

struct kinds k_global = { .u8 = 1, .name = "glob" };
__u64 k_counter = 7;

SEC("tc")
int kinds_prog(struct __sk_buff *skb)
{
	struct key5 k = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(&k_hash, &k) || bpf_map_lookup_elem(&k_array, &zero) ||
	    bpf_map_lookup_elem(&k_pcpu, &k) || bpf_map_lookup_elem(&k_pcpu_enum, &zero))
		return 1;
	k_counter++;
	return k_global.u8;
}

char LICENSE[] SEC("license") = "GPL";
