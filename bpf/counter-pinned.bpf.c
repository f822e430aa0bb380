// counter.bpf.c with its maps pinned by name: loaded by tc (iproute2 with libbpf), they
// appear as /sys/fs/bpf/tc/globals/proto_stats and .../total_pkts, and a reloaded program
// reuses them. docs/k8s/daemonset.yaml's loader sends them with `bpfsession send --pinned`.
// Built by `clang -O2 -g -target bpf -c counter-pinned.bpf.c`.
#define COUNTER_PIN_BY_NAME
#include "counter.bpf.c"
