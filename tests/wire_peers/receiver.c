/* A bpf_scm v1 receiver of one layout (-DENTRY_SIZE), as iproute2's bpf_map_set_recv:
 * binds UDS, then reads datagrams of at most 64 entries until num_ent maps arrived,
 * taking the number of entries in each from its SCM_RIGHTS fds.
 *
 * usage: receiver UDS
 * prints READY once bound, then OBJ, ST, NUM and one line per map:
 *   ENT TYPE KEY VALUE MAX FLAGS ID PINNING INNER_ID INNER_IDX KERNEL_MAP_ID
 * (fields its layout lacks as 0; the kernel map id from /proc/self/fdinfo).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bpf_scm.h"

#define MAX_MAPS 1024

static unsigned int map_id(int fd)
{
	char path[64], line[256];
	unsigned int id = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "map_id: %u", &id) == 1)
			break;
	fclose(f);
	return id;
}

int main(int argc, char **argv)
{
	static struct bpf_elf_map ent[MAX_MAPS];
	static int fds[MAX_MAPS];
	struct bpf_map_aux aux;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	unsigned int needed = 1, got = 0, i;
	int sock;

	if (argc != 2)
		return 2;
	strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
	sock = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("bind");
		return 1;
	}
	printf("READY\n");
	fflush(stdout);

	while (got < needed) {
		char cbuf[CMSG_SPACE(sizeof(int) * BPF_SCM_MAX_FDS)];
		struct iovec iov = { .iov_base = &aux, .iov_len = sizeof(aux) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cmsg;
		unsigned int n;

		if (recvmsg(sock, &msg, 0) <= 0) {
			perror("recvmsg");
			return 1;
		}
		cmsg = CMSG_FIRSTHDR(&msg);
		if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS || (msg.msg_flags & MSG_CTRUNC) ||
		    aux.uds_ver != BPF_SCM_AUX_VER) {
			fprintf(stderr, "bad datagram\n");
			return 1;
		}
		n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n == 0 || got + n > MAX_MAPS) {
			fprintf(stderr, "bad fd count %u\n", n);
			return 1;
		}
		memcpy(&fds[got], CMSG_DATA(cmsg), sizeof(int) * n);
		memcpy(&ent[got], aux.ent, sizeof(ent[0]) * n);
		got += n;
		needed = aux.num_ent;
	}

	printf("OBJ %s\n", aux.obj_name);
	printf("ST %llu %llu\n", (unsigned long long)aux.obj_st.st_dev,
	       (unsigned long long)aux.obj_st.st_ino);
	printf("NUM %u\n", got);
	for (i = 0; i < got; i++)
		printf("ENT %u %u %u %u %u %u %u %u %u %u\n", ent[i].type, ent[i].size_key,
		       ent[i].size_value, ent[i].max_elem, GET_FLAGS(&ent[i]), ent[i].id,
		       GET_PINNING(&ent[i]), GET_INNER_ID(&ent[i]), GET_INNER_IDX(&ent[i]),
		       map_id(fds[i]));
	unlink(argv[1]);
	return 0;
}
