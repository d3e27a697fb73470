#!/bin/bash
# pattern: a pipeline mixing host steps (staging, hostname) and container steps, repeated mounts on one srun
# needs: data
# expect: ^host step: n1$
# expect: ^host step: n2$
# expect: ^container step: hello \+ 3 lines \(busybox\)$
# expect: ^host line after the steps$
#SBATCH -N 2 --ntasks-per-node=1

srun -N2 --ntasks-per-node=1 sh -c 'echo "host step: $(hostname)"' | sort
srun -N1 -n1 --container-image=ubuntu:24.04 \
    --container-mounts=$PWD/data/hello.txt:/a.txt:ro --container-mounts=$PWD/data/train.txt:/b.txt:ro \
    sh -c 'echo "container step: $(cat /a.txt) + $(wc -l < /b.txt) lines ($HPCB_IMAGE)"'
echo "host line after the steps"
