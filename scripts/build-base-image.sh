#!/usr/bin/env bash
# Build a Python base image for images/Dockerfile from Debian packages alone, for machines
# that reach a Debian mirror but no container registry (air-gapped builds). As root:
#
#   scripts/build-base-image.sh [IMAGE]          default IMAGE: localhost/bpfsession-base:bookworm
#   podman build -f images/Dockerfile --build-arg PYTHON_IMAGE=IMAGE -t bpfsession .
#
# Environment: MIRROR (default http://deb.debian.org/debian), SUITE (default bookworm),
# ENGINE (default podman; docker works too). Needs debootstrap. About a minute.
#
# The image is Debian's python3 (3.11 on bookworm) with pip, the headers that python-prctl
# compiles against, and the CA certificates: the same role as python:3.11-slim, with pip
# allowed to install into the system interpreter (PIP_BREAK_SYSTEM_PACKAGES=1, as there is
# nothing else in the image it could break).
set -euo pipefail

IMAGE=${1:-localhost/bpfsession-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
ENGINE=${ENGINE:-podman}

if [ "$(id -u)" != 0 ]; then
    echo "build-base-image: debootstrap needs root" >&2
    exit 1
fi
command -v debootstrap >/dev/null || { echo "build-base-image: install debootstrap" >&2; exit 1; }

root=$(mktemp -d /var/tmp/bpfsession-base.XXXXXX)
trap 'rm -rf --one-file-system "$root"' EXIT

debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-dev,ca-certificates \
    "$SUITE" "$root" "$MIRROR" >/dev/null
# What debootstrap leaves that an image should not carry.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

tar --numeric-owner -C "$root" -c . | "$ENGINE" import --quiet \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE from $MIRROR: python3, pip, headers, CA certificates" \
    - "$IMAGE" >/dev/null
echo "$IMAGE"
