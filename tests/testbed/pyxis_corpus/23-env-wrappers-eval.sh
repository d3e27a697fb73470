#!/bin/bash
# pattern: steps launched through wrappers (timeout, env, eval) and a function, the srun command in a variable
# expect: ^timeout: busybox$
# expect: ^eval: busybox$
# expect: ^function: debian-python$
#SBATCH -n 1

SRUN="srun --ntasks=1"
timeout 300 $SRUN --container-image=ubuntu:24.04 sh -c 'echo "timeout: $HPCB_IMAGE"'
eval "$SRUN --container-image=ubuntu:24.04 sh -c 'echo \"eval: \$HPCB_IMAGE\"'"
run_in() { srun --container-image="$1" sh -c 'echo "function: $HPCB_IMAGE"'; }
run_in nvcr.io#nvidia/pytorch:24.01-py3
