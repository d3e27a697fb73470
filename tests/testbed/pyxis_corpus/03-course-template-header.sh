#!/bin/bash
# pattern: a course's job template: the image in #SBATCH lines, the whole script runs in the container
# expect: ^python 3\.11\.\d+ in debian-python, cwd /srv/app$
# expect: ^job \d+ on n[12]$
#SBATCH --job-name=course-hw1
#SBATCH --container-image=nvcr.io\#nvidia/pytorch:24.01-py3
#SBATCH --container-mounts=/tmp:/scratch
#SBATCH --time=00:05:00

python3 -c 'import sys, os; print("python", sys.version.split()[0], "in", os.environ["HPCB_IMAGE"] + ", cwd", os.getcwd())'
echo "job $SLURM_JOB_ID on $(hostname)"
