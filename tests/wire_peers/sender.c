/* A bpf_scm v1 sender of one layout (-DENTRY_SIZE), as iproute2's bpf_map_set_send:
 * every datagram repeats the header with num_ent = the total, carries at most 64 entries
 * and as many fds in one SCM_RIGHTS message.
 *
 * usage: sender UDS OBJ ST_DEV ST_INO FD:TYPE:KEY:VALUE:MAX:FLAGS:ID:PINNING:INNER_ID:INNER_IDX...
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

int main(int argc, char **argv)
{
	static struct bpf_elf_map ent[MAX_MAPS];
	static int fds[MAX_MAPS];
	struct bpf_map_aux aux;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	unsigned int n = argc - 5, i, chunk;
	int sock;

	if (argc < 6 || n > MAX_MAPS) {
		fprintf(stderr, "usage: %s UDS OBJ ST_DEV ST_INO FD:TYPE:...\n", argv[0]);
		return 2;
	}
	for (i = 0; i < n; i++) {
		unsigned int v[10];

		if (sscanf(argv[5 + i], "%u:%u:%u:%u:%u:%u:%u:%u:%u:%u", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) != 10) {
			fprintf(stderr, "bad entry %s\n", argv[5 + i]);
			return 2;
		}
		fds[i] = v[0];
		ent[i].type = v[1];
		ent[i].size_key = v[2];
		ent[i].size_value = v[3];
		ent[i].max_elem = v[4];
		SET_FLAGS(&ent[i], v[5]);
		ent[i].id = v[6];
		SET_PINNING(&ent[i], v[7]);
		SET_INNER(&ent[i], v[8], v[9]);
	}

	memset(&aux, 0, sizeof(aux));
	aux.uds_ver = BPF_SCM_AUX_VER;
	aux.num_ent = n;
	strncpy(aux.obj_name, argv[2], sizeof(aux.obj_name) - 1);
	aux.obj_st.st_dev = strtoull(argv[3], NULL, 0);
	aux.obj_st.st_ino = strtoull(argv[4], NULL, 0);

	strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
	sock = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("connect");
		return 1;
	}
	for (i = 0; i < n; i += chunk) {
		char cbuf[CMSG_SPACE(sizeof(int) * BPF_SCM_MAX_FDS)];
		struct iovec iov;
		struct msghdr msg = { 0 };
		struct cmsghdr *cmsg;

		chunk = n - i < BPF_SCM_MAX_FDS ? n - i : BPF_SCM_MAX_FDS;
		memcpy(aux.ent, &ent[i], sizeof(ent[0]) * chunk);
		iov.iov_base = &aux;
		iov.iov_len = offsetof(struct bpf_map_aux, ent) + sizeof(ent[0]) * chunk;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * chunk);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * chunk);
		memcpy(CMSG_DATA(cmsg), &fds[i], sizeof(int) * chunk);
		if (sendmsg(sock, &msg, 0) <= 0) {
			perror("sendmsg");
			return 1;
		}
	}
	close(sock);
	return 0;
}
