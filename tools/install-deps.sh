#!/bin/sh
# Installs the Debian packages singlora builds with, when they are missing.
# OpenBLAS: the OpenMP build (libopenblas-openmp-dev). Inside our own OpenMP parallel regions it
# runs single-threaded instead of oversubscribing the cores; outside them it uses OMP_NUM_THREADS.
set -e
# Open MPI (libopenmpi-dev, openmpi-bin): `make MPI=1` -> ./singlora-mpi and the multi-process tests.
PKGS="gcc make libc6-dev libgomp1 libopenblas-openmp-dev libcjson-dev libstb-dev libopenmpi-dev openmpi-bin"
# `install-deps.sh fuzz` (make deps-fuzz): clang with libFuzzer and its OpenMP, for make fuzz
[ "$1" = fuzz ] && PKGS="$PKGS clang libclang-rt-dev libomp-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all installed ($PKGS)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing:$missing" >&2
    echo "deps: run as root:  sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing
