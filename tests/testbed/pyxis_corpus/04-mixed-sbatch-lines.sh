#!/bin/bash
# pattern: Slurm and pyxis options on one #SBATCH line (e.g. "-N 2 --gres=gpu:4 --container-image=...")
# expect: ^nodes=2 gpus=[01] image=debian-python$
# expect: ^mounted: hello$
#SBATCH -N 2 --gres=gpu:1 --container-image=nvcr.io\#nvidia/pytorch:24.01-py3
#SBATCH --ntasks-per-node=1 --container-mounts=./data:/data
# needs: data

echo "nodes=$SLURM_JOB_NUM_NODES gpus=${CUDA_VISIBLE_DEVICES:-none} image=$HPCB_IMAGE"
echo "mounted: $(cat /data/hello.txt)"
