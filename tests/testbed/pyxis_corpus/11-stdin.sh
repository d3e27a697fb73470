#!/bin/bash
# pattern: sbatch reading the script from standard input (a heredoc in a launcher)
# mode: stdin
# args: --job-name=from-stdin
# expect: ^stdin job from-stdin: Debian GNU/Linux 12 \(bookworm\)$
srun --container-image=nvcr.io#nvidia/pytorch:24.01-py3 \
    sh -c '. /etc/os-release; echo "stdin job $SLURM_JOB_NAME: $PRETTY_NAME"'
