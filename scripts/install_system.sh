#!/usr/bin/env bash
# Install the Debian packages the test suite needs (run as root on Debian 12):
#  - slurmctld/slurmd/slurm-client/munge: a real one-node SLURM cluster (tests/slurm/cluster.sh)
#  - texlive-latex-base/-recommended: pdflatex, to compile the generated LaTeX tables
# Idempotent: does nothing (not even apt-get update) when all tools are already on PATH.
set -euo pipefail

# slurmctld/slurmd/munged live in /usr/sbin, which may be missing from a non-login PATH.
export PATH="$PATH:/usr/sbin:/sbin"

missing=0
for tool in sinfo slurmctld slurmd munged pdflatex; do
    command -v "$tool" >/dev/null 2>&1 || { missing=1; break; }
done
if [ "$missing" = 0 ]; then
    echo "install_system: slurm, munge and pdflatex already installed"
    exit 0
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client munge \
    texlive-latex-base texlive-latex-recommended

# The packages' postinst may start system-wide munge/slurm services (when an init
# system runs); the tests run their own private daemons, so stop those if present.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now slurmd slurmctld munge >/dev/null 2>&1 || true
fi
echo "install_system: done"
