#!/usr/bin/env bash
# Installs the Debian packages the pipeline calls as binaries, idempotently.
# PLINK 2 (GWAS, QC) and PLINK 1.9 (sex check, clumping: Debian's plink2 2.00a3.5 lacks both).
# bedtools: ldsc's make_annot.py (BED peaks -> SNP annotations).
# `install_system_packages.sh test` adds what the tests need: munge and SLURM's daemons and client
# (tests/test_slurm.py brings up a private single-node SLURM with them).
set -euo pipefail

# command -> Debian package
declare -A wanted=( [plink2]=plink2 [plink1.9]=plink1.9 [bedtools]=bedtools )
if [ "${1:-}" = test ]; then
    wanted+=( [munged]=munge [slurmctld]=slurmctld [slurmd]=slurmd [sbatch]=slurm-client )
fi

missing=()
for cmd in "${!wanted[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${wanted[$cmd]}")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present (${!wanted[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "system packages missing: ${missing[*]}" >&2
    echo "Installing them needs root. Run:  sudo apt-get install -y ${missing[*]}" >&2
    echo "(or put the binaries on PATH, or use the per-stage conda envs: envs/*.yaml)" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system packages missing: ${missing[*]}, and this is not a Debian/Ubuntu machine (no apt-get)." >&2
    echo "Install them with your package manager or use the conda envs in envs/." >&2
    exit 1
fi

echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "system packages: installed ${missing[*]}"
