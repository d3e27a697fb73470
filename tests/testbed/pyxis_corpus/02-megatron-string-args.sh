#!/bin/bash
# pattern: Megatron/NeMo pretraining launcher: common srun flags in one string, bash -c "..." command
# needs: data
# expect: ^rank 0 read 3 samples from /data/train.txt in /workspace$
#SBATCH -N 1
#SBATCH --ntasks-per-node=1
#SBATCH -t 10

DATA_DIR=$PWD/data
COMMON_SRUN_ARGS="--container-image=nvcr.io#nvidia/nemo:24.07 --container-mounts=${DATA_DIR}:/data:ro,${PWD}:/workspace --container-workdir=/workspace"
run_cmd="python3 -c \"import os; n=len(open('/data/train.txt').read().split()); print('rank', os.environ['SLURM_PROCID'], 'read', n, 'samples from /data/train.txt in', os.getcwd())\""
srun -l --kill-on-bad-exit=1 $COMMON_SRUN_ARGS bash -c "${run_cmd}" | sed 's/^0: //'
