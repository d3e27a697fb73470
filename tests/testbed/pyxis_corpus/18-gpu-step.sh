#!/bin/bash
# pattern: a single-GPU training step (--gres=gpu:1): the step sees its GPU, Apptainer gets --nv
# expect: ^host CUDA_VISIBLE_DEVICES=([01])$[\s\S]*^step sees CUDA_VISIBLE_DEVICES=\1$
# expect: Using legacy binds for nv GPU setup
#SBATCH --gres=gpu:1
#SBATCH -n 1

echo "host CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
APPTAINER_DEBUG=1 srun --container-image=nvcr.io#nvidia/cuda:12.4.1-base-ubuntu22.04 \
    sh -c 'echo "step sees CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"' 2>&1 | grep -E 'step sees|nv GPU setup'
