#!/bin/bash
# pattern: build an environment in one step, --container-save it, run the saved squashfs in the next
# expect: ^saved: \d+ bytes$
# expect: ^from the saved image: built in step 1$
# expect: hpcbridge: saved container build to
#SBATCH -n 1

IMG=nvcr.io#nvidia/pytorch:24.01-py3
srun --container-image=$IMG --container-name=build sh -c 'echo "built in step 1" > /opt/marker'
srun --container-name=build --container-save=./env.sqsh true
echo "saved: $(stat -c %s env.sqsh) bytes"
srun --container-image=./env.sqsh sh -c 'echo "from the saved image: $(cat /opt/marker)"'
