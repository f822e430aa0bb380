#!/usr/bin/env bash
# The end-to-end demo (as root): netns `blue` with a veth, a clang-built tc program with BTF
# maps on it, its maps handed to a `bpfsession new --netns blue` session, traffic, the
# session's view of the counters moving, then everything removed again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

NS=${DEMO_NETNS:-blue}
UDS=${DEMO_UDS:-/tmp/bpf-uds}
HOST_IF=bsdemo0 NS_IF=bsdemo1 HOST_IP=10.213.250.1 NS_IP=10.213.250.2
work=$(mktemp -d /tmp/bpfsession-demo.XXXXXX)
made_ns=
session_pid=

cleanup() {
    [ -n "$session_pid" ] && kill "$session_pid" 2>/dev/null && wait "$session_pid" 2>/dev/null
    ip link del "$HOST_IF" 2>/dev/null || true
    [ -n "$made_ns" ] && ip netns del "$NS" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if ip netns list | grep -qw "^$NS"; then
    echo "demo: netns $NS already exists; remove it (ip netns del $NS) or set DEMO_NETNS" >&2
    exit 1
fi

step "build the tc program (clang -target bpf, BTF maps)"
clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu \
    -c bpf/counter.bpf.c -o "$work/counter.o"
llvm-objdump -h "$work/counter.o" | grep -E ' (tc|\.maps|\.BTF) '

step "netns $NS with a veth, the program on $NS_IF ingress"
ip netns add "$NS" && made_ns=1
ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
ip addr add "$HOST_IP/24" dev "$HOST_IF" && ip link set "$HOST_IF" up
ip -n "$NS" addr add "$NS_IP/24" dev "$NS_IF" && ip -n "$NS" link set "$NS_IF" up
ip netns exec "$NS" tc qdisc add dev "$NS_IF" clsact
ip netns exec "$NS" tc filter add dev "$NS_IF" ingress bpf da obj "$work/counter.o" sec tc
ip netns exec "$NS" tc filter show dev "$NS_IF" ingress

cat > "$work/fmt.py" <<'PY'
import json, sys
for e in json.load(sys.stdin):
    k, v = e["formatted"]["key"], e["formatted"]["value"]
    print(f"[session]   0x{k:04x}: {v['packets']:4} packets {v['bytes']:6} bytes")
PY
export DEMO_FMT="$work/fmt.py"

step "bpfsession new --netns $NS imp $UDS run <a script that shows its maps>"
bpfsession new --netns "$NS" --name demo --timeout 30 imp "$UDS" run sh -c '
    echo "[session] netns: $(ip netns identify $$) pid $$, BPF_NUM_MAPS=$BPF_NUM_MAPS, BPF_OBJ=$BPF_OBJ"
    env | grep "^BPF_MAP" | sort | sed "s/^/[session]   /"
    for fd in $(env | sed -n "s/^BPF_MAP[0-9]*=//p"); do
        echo "[session]   fd $fd: $(grep -E "^map_(type|id)" /proc/self/fdinfo/$fd | tr "\n\t" "  ")"
    done
    for round in 1 2 3; do
        sleep 1
        echo "[session] round $round: bpfsession map dump -j name proto_stats, by ethertype:"
        bpfsession map dump -j name proto_stats | python3 "$DEMO_FMT"
    done
    echo "[session] and as bpftool prints it, through the inherited fd: map dump BPF_MAP0"
    bpfsession map dump BPF_MAP0 | head -7 | sed "s/^/[session]   /"' &
session_pid=$!
for _ in $(seq 100); do [ -S "$UDS" ] && break; sleep 0.05; done

step "bpfsession send --netns $NS --dev $NS_IF --ingress $UDS"
bpfsession send -j --netns "$NS" --dev "$NS_IF" --ingress "$UDS"
sleep 0.3

step "bpfsession list"
bpfsession list

step "traffic: UDP from the host to $NS_IP, counted by the program in $NS"
python3 - "$NS_IP" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(30):
    s.sendto(b"hello from the host", (sys.argv[1], 9))
    time.sleep(0.1)
PY

wait "$session_pid"
status=$?
session_pid=
step "the session exited with status $status; cleaning up"
