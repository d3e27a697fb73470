#!/bin/bash
# pattern: --container-env to keep host values the image would override (NCCL/W&B settings)
# expect: ^listed: HPCB_IMAGE=from-the-job NCCL_DEBUG=INFO$
# expect: ^not listed: HPCB_IMAGE=debian-python NCCL_DEBUG=INFO$
#SBATCH -n 1

export HPCB_IMAGE=from-the-job NCCL_DEBUG=INFO
IMG=nvcr.io#nvidia/pytorch:24.01-py3
srun --container-image=$IMG --container-env=HPCB_IMAGE,NCCL_DEBUG sh -c 'echo "listed: HPCB_IMAGE=$HPCB_IMAGE NCCL_DEBUG=$NCCL_DEBUG"'
srun --container-image=$IMG sh -c 'echo "not listed: HPCB_IMAGE=$HPCB_IMAGE NCCL_DEBUG=$NCCL_DEBUG"'
