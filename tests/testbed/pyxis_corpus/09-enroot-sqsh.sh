#!/bin/bash
# pattern: an enroot squashfs image next to the job (enroot import -o pytorch.sqsh ...), ./ and ${PWD}/ forms
# needs: sqsh
# expect: ^relative: MYVAR=made by enroot import, in /workspace$
# expect: ^pwd form: MYVAR=made by enroot import$
#SBATCH -n 1

srun --container-image=./pytorch.sqsh sh -c 'echo "relative: MYVAR=$MYVAR, in $(pwd)"'
srun --container-image=${PWD}/pytorch.sqsh sh -c 'echo "pwd form: MYVAR=$MYVAR"'
