"""bpfsession: hand eBPF map fds to supervised shells and agents (iproute2 bpf_scm v1)."""

__version__ = "0.1.0"
