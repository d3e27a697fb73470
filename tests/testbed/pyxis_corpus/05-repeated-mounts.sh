#!/bin/sh
# pattern: a course template: two #SBATCH --container-mounts lines (they accumulate)
# (the whole script runs in the image, busybox: so its interpreter is /bin/sh, as pyxis needs)
# needs: data
# expect: ^header mounts: hello \| 3 lines$
#SBATCH --container-image=ubuntu:24.04
#SBATCH --container-mounts=./data/hello.txt:/in/hello.txt:ro
#SBATCH --container-mounts=./data/train.txt:/in/train.txt:ro

echo "header mounts: $(cat /in/hello.txt) | $(wc -l </in/train.txt) lines"
