#!/usr/bin/env bash
# Set up a fresh Debian machine for bpfsession (idempotent): apt packages, bpffs, the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm bpftool libbpf-dev libcap-dev iproute2 tmux gcc python3-venv
              procps util-linux man-db groff-base zsh fish
              podman runc debootstrap catatonit netavark iptables)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# bpffs is not mounted at boot on this kind of machine.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.installed-compat-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    # compat: a plain .pth path entry instead of setuptools' import-hook finder, which
    # costs every start ~12 ms (pathlib, fnmatch): start-up time is measured (bench/).
    .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
    touch "$stamp"
fi
# Byte-compile once: where PYTHONDONTWRITEBYTECODE is set, every start would otherwise
# compile our modules again (~20 ms), and start-up is measured.
.venv/bin/python -m compileall -q bpfsession tui >/dev/null
# `pip install -e` skips data files: put the man page and completion where the venv's
# `man` and bash look for them (a wheel install places them itself).
install -Dm644 share/man/man8/bpfsession.8 .venv/share/man/man8/bpfsession.8
install -Dm644 share/bash-completion/completions/bpfsession \
    .venv/share/bash-completion/completions/bpfsession
