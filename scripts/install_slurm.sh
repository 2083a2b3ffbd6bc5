#!/usr/bin/env bash
# Install a minimal single-node SLURM + munge from the Debian repositories so that the
# `slurm`-marked tests (tests/support/slurm_cluster.py) can start a throw-away cluster.
#
# Idempotent: exits immediately when slurmctld, slurmd, munged and sbatch are already present.
# Never fails the caller: if we are not root or apt-get is missing it prints why and exits 0
# (the slurm tests then skip themselves).
#
# Services are NOT started by the packages (a temporary policy-rc.d forbids it); the test
# fixture runs its own munged/slurmctld/slurmd with private config in a temp dir.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
# Debian puts the daemons in /usr/sbin, which is not always on a non-root PATH.
export PATH="$PATH:/usr/sbin:/sbin"

have_all() {
    local b
    for b in slurmctld slurmd munged sbatch; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

# Not `sbatch --version`: without a slurm.conf it tries DNS SRV config lookup and fails.
slurm_version() {
    dpkg-query -W -f='slurm ${Version}' slurm-client 2>/dev/null || echo "slurm (unknown version)"
}

if have_all; then
    echo "install_slurm: slurm + munge already installed ($(slurm_version))"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_slurm: not root, cannot install ${PACKAGES[*]}; slurm tests will be skipped"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm: apt-get not available, cannot install ${PACKAGES[*]};" \
        "slurm tests will be skipped"
    exit 0
fi

# Keep package maintainer scripts from starting munge/slurm services.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    created_policy=1
fi
cleanup() {
    if [[ "$created_policy" -eq 1 ]]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT

echo "install_slurm: installing ${PACKAGES[*]} ..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
    echo "install_slurm: apt-get update failed; slurm tests will be skipped"
    exit 0
fi
if ! apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" </dev/null; then
    echo "install_slurm: apt-get install failed; slurm tests will be skipped"
    exit 0
fi

if have_all; then
    echo "install_slurm: done ($(slurm_version))"
else
    echo "install_slurm: packages installed but binaries still missing; slurm tests will skip"
fi
exit 0
