#!/bin/bash
# pattern: a generic launcher: the image and the command come from the script's arguments
# needs: sqsh
# script-args: ./pytorch.sqsh python3 -c "print('args: image from $1')"
# expect: ^args: image from \$1$
#SBATCH -n 1

IMAGE=$1
shift
srun --container-image="$IMAGE" "$@"
