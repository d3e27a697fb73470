#!/usr/bin/env bash
# Install the Debian packages hpcbridge's tests and demo need; idempotent and
# quick when everything is already there (one dpkg-query, no apt-get update).
set -euo pipefail

PACKAGES=(
  # Slurm 22.05, its authentication, accounting database
  slurm-wlm slurmdbd munge mariadb-server
  # image tooling: squashing, SIF inspection, registry and image building
  squashfs-tools squashfuse fuse3 siftool skopeo umoci docker-registry zstd busybox-static
  # running the sid Apptainer rootless and the sid Slurm 26.05 (bwrap clients, unshare +
  # pivot_root daemons: util-linux); building their root filesystems
  bubblewrap debootstrap uidmap util-linux
  # MPI for the hybrid model on the testbed
  openmpi-bin libopenmpi-dev libpmix2 mpich libmpich-dev
  # misc
  # module files written by `hpcbridge wrap --module` are tested with Lmod
  lmod
  # shell completion is tested through the real shells
  zsh fish
  # the HTML report is checked in a real headless browser (docs/report.md)
  chromium
  iproute2 procps psmisc python3-venv ca-certificates
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# policy-rc.d keeps package scripts from starting daemons (no systemd here anyway)
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.hpcbridge
chmod +x /usr/sbin/policy-rc.d.hpcbridge
if [ ! -e /usr/sbin/policy-rc.d ]; then
  cp /usr/sbin/policy-rc.d.hpcbridge /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
rm -f /usr/sbin/policy-rc.d.hpcbridge
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
