"""The kernel layer: bpf(2), BTF and pidfd through ctypes. Nothing above it imports ctypes."""
