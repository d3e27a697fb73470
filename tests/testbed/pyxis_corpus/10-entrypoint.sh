#!/bin/bash
# pattern: --container-entrypoint: the image's ENTRYPOINT runs with srun's command as its arguments
# needs: sqsh
# expect: ^entrypoint args: one two$
# expect: ^greeting: hello world$
# expect: ^enroot entrypoint: world$
# expect: ^enroot entrypoint: from-env$
# expect: ^without: plain$
#SBATCH -n 1

srun --container-image=nvcr.io#nvidia/cuda:12.4.1-base-ubuntu22.04 --container-entrypoint one two
srun --container-image=./pytorch.sqsh --container-entrypoint world
PYXIS_CONTAINER_ENTRYPOINT=1 srun --container-image=./pytorch.sqsh from-env
srun --container-image=./pytorch.sqsh echo without: plain
