#!/bin/bash -l
# pattern: JAX CI job: a login shell (its profile resets PATH), the image in a variable, -K
# expect: ^jax-ci: python 3\.11 ok on n[12]$
#SBATCH -N 1
#SBATCH -J ci-jax-gpu
#SBATCH -t 00:10:00

set -x
CONTAINER="ghcr.io#nvidia/jax:jax"
srun -K --container-image="$CONTAINER" --container-mounts="$PWD:/opt/ci" --container-workdir=/opt/ci \
    python3 -c 'import sys, socket; print("jax-ci: python %d.%d ok on %s" % (sys.version_info[:2] + (socket.gethostname(),)))'
