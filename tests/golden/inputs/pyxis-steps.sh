#!/bin/bash
#SBATCH --job-name=nccl-allreduce
#SBATCH -N 2 --gres=gpu:2 --container-mounts=/scratch/alice:/data:ro
#SBATCH --time=00:30:00
# srun steps carry the container options; this script runs on the host.
set -euo pipefail
IMAGE="nvcr.io#nvidia/pytorch:24.01-py3"
MOUNTS=/scratch/alice/datasets:/datasets:ro
SRUN_ARGS=(--mpi=pmix --ntasks-per-node=4 --container-image="$IMAGE" --container-mounts="$MOUNTS")
echo "host: $(hostname)"
srun -N2 --ntasks-per-node=1 hostname
srun "${SRUN_ARGS[@]}" --container-workdir=bench python3 allreduce.py --size 1G
