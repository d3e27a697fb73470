#!/bin/bash
# pattern: nccl-tests all_reduce_perf across nodes, srun options collected in a bash array
# expect: ^hello rank=0 size=2 host=n1 node=n1 flavour=openmpi$
# expect: ^hello rank=1 size=2 host=n2 node=n2 flavour=openmpi$
#SBATCH --job-name=nccl-allreduce
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=00:10:00

CONT="ghcr.io#coreweave/nccl-tests:12.4.1"
SRUN_ARGS=(
    --mpi=pmix
    --container-image="${CONT}"
    --container-mounts="${PWD}:/results"
)
export NCCL_DEBUG=WARN
srun "${SRUN_ARGS[@]}" /opt/hello-ompi
