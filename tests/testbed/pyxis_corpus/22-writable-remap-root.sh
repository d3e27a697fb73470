#!/bin/bash
# pattern: interactive-style tweaks: --container-remap-root --container-writable, --no-container-mount-home
# expect: ^uid in container: 0, wrote /usr/local/x$
# expect: ^read-only by default: cannot write$
# expect: ^home not mounted: no /home/hpcbtest/\.cache$
#SBATCH -n 1

IMG=nvcr.io#nvidia/pytorch:24.01-py3
srun --container-image=$IMG --container-remap-root --container-writable \
    sh -c 'touch /usr/local/x && echo "uid in container: $(id -u), wrote /usr/local/x"'
srun --container-image=$IMG sh -c 'touch /usr/local/x 2>/dev/null || echo "read-only by default: cannot write"'
# (Apptainer still binds the working directory, which may be under $HOME: look beside it)
srun --container-image=$IMG --no-container-mount-home --container-workdir=/ \
    sh -c 'test -e "$HOME/.cache" || echo "home not mounted: no $HOME/.cache"'
