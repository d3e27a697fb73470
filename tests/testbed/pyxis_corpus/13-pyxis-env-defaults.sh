#!/bin/bash
# pattern: PYXIS_CONTAINER_* variables as defaults for every srun step of the script
# needs: data
# expect: ^in container: debian-python, /data/hello.txt=hello$
# expect: ^on the host again: no image variable$
# expect: ^line option wins: busybox$
#SBATCH -n 1

export PYXIS_CONTAINER_IMAGE=nvcr.io#nvidia/pytorch:24.01-py3
export PYXIS_CONTAINER_MOUNTS=$PWD/data:/data
srun sh -c 'echo "in container: $HPCB_IMAGE, /data/hello.txt=$(cat /data/hello.txt)"'
srun --container-image=ubuntu:24.04 sh -c 'echo "line option wins: $HPCB_IMAGE"'
unset PYXIS_CONTAINER_IMAGE PYXIS_CONTAINER_MOUNTS
srun sh -c 'echo "on the host again: ${HPCB_IMAGE:-no image variable}"'
