#!/bin/bash
#SBATCH --job-name=pyxis-train
#SBATCH --nodes=1
#SBATCH --time=01:00:00
#SBATCH --container-mounts=/scratch/alice:/data:ro,./results:/results
#SBATCH --container-workdir=/workspace
# Everything below runs inside the container, byte for byte.
set -e
echo "host $(hostname), args: $*"
python3 train.py --data /data --out /results "$@"
echo 'it'"'"'s done: $HOME stays literal here'
