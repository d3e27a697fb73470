#!/bin/bash
# pattern: a docker-style NGC reference (registry/path:tag), "." and relative workdirs, //-paths
# needs: data
# expect: ^dot: /srv/app$
# expect: ^up: /srv$
# expect: ^abs: /srv/app$
# expect: ^target: hello$
#SBATCH -n 1

IMAGE=nvcr.io/nvidia/pytorch:24.01-py3
srun --container-image=$IMAGE --container-workdir=. sh -c 'echo dot: $(pwd)'
srun --container-image=$IMAGE --container-workdir=.. sh -c 'echo up: $(pwd)'
srun --container-image=$IMAGE --container-workdir=//srv//app/ sh -c 'echo abs: $(pwd)'
srun --container-image=$IMAGE --container-mounts=$PWD//data://mnt//in sh -c 'echo target: $(cat /mnt/in/hello.txt)'
