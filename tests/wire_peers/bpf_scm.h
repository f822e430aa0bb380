/* The bpf_scm v1 hand-off as iproute2 defined it, for test peers built at test time.
 *
 * struct bpf_elf_map (include/bpf_elf.h) in the layout of one release, chosen with
 * -DENTRY_SIZE=20|24|28|36; struct bpf_map_aux (include/bpf_scm.h) and struct bpf_elf_st
 * (include/bpf_util.h), which never changed. uds_ver stayed 1 through all of them.
 */
#ifndef BPF_SCM_TEST_H
#define BPF_SCM_TEST_H

#include <linux/types.h>
#include <stddef.h>
#include <sys/types.h>

#if ENTRY_SIZE == 20 /* iproute2 4.1 - 4.4 */
struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 id;
};
#elif ENTRY_SIZE == 24 /* iproute2 4.5 */
struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 id;
	__u32 pinning;
};
#elif ENTRY_SIZE == 28 /* iproute2 4.6 - 4.12 */
struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
};
#elif ENTRY_SIZE == 36 /* iproute2 4.13 and later */
struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
	__u32 inner_id;
	__u32 inner_idx;
};
#else
#error "ENTRY_SIZE must be 20, 24, 28 or 36"
#endif

_Static_assert(sizeof(struct bpf_elf_map) == ENTRY_SIZE, "struct bpf_elf_map size");

/* Fields a layout lacks read as 0 and are not written. */
#if ENTRY_SIZE >= 24
#define GET_PINNING(e) ((e)->pinning)
#define SET_PINNING(e, v) ((e)->pinning = (v))
#else
#define GET_PINNING(e) 0u
#define SET_PINNING(e, v) ((void)(v))
#endif
#if ENTRY_SIZE >= 28
#define GET_FLAGS(e) ((e)->flags)
#define SET_FLAGS(e, v) ((e)->flags = (v))
#else
#define GET_FLAGS(e) 0u
#define SET_FLAGS(e, v) ((void)(v))
#endif
#if ENTRY_SIZE >= 36
#define GET_INNER_ID(e) ((e)->inner_id)
#define GET_INNER_IDX(e) ((e)->inner_idx)
#define SET_INNER(e, id, idx) ((e)->inner_id = (id), (e)->inner_idx = (idx))
#else
#define GET_INNER_ID(e) 0u
#define GET_INNER_IDX(e) 0u
#define SET_INNER(e, id, idx) ((void)(id), (void)(idx))
#endif

#define BPF_SCM_AUX_VER 1
#define BPF_SCM_MAX_FDS 64
#define BPF_SCM_MAX_NAME 64

struct bpf_elf_st {
	dev_t st_dev;
	ino_t st_ino;
};

struct bpf_map_aux {
	unsigned short uds_ver;
	unsigned short num_ent;
	char obj_name[BPF_SCM_MAX_NAME];
	struct bpf_elf_st obj_st;
	struct bpf_elf_map ent[BPF_SCM_MAX_FDS];
};

_Static_assert(offsetof(struct bpf_map_aux, ent) == 88, "the header is 88 bytes");

#endif
