#!/bin/bash
# pattern: NVIDIA HPC-Benchmarks HPL: srun --mpi=pmix, several ranks per node, a mounted .dat directory
# needs: data
# expect: ^hello rank=0 size=4 host=n1
# expect: ^hello rank=1 size=4 host=n1
# expect: ^hello rank=2 size=4 host=n2
# expect: ^hello rank=3 size=4 host=n2
# absent: CMA
#SBATCH -N 2
#SBATCH --ntasks-per-node=2
#SBATCH --time=00:10:00

CONT='nvcr.io#nvidia/hpc-benchmarks:24.03'
MOUNT="${PWD}/data:/my-dat-files"
echo "Running on hosts: $(echo $(scontrol show hostname))"
srun --mpi=pmix --container-image="${CONT}" --container-mounts="${MOUNT}" /opt/hello-ompi | sort
