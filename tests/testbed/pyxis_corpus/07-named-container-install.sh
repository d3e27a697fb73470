#!/bin/bash
# pattern: "pip install" into a named container in one step, use it in the next (pyxis wiki FAQ)
# needs: wheel
# expect: ^installed on n1$
# expect: ^installed on n2$
# expect: ^n1: hpcb_demo 1\.0 says hello from a wheel$
# expect: ^n2: hpcb_demo 1\.0 says hello from a wheel$
# expect: ^fresh container: ModuleNotFoundError$
#SBATCH -N 2
#SBATCH --ntasks-per-node=1

CONT=nvcr.io#nvidia/pytorch:24.01-py3
SITE=/usr/local/lib/python3.11/dist-packages
# debian-python has no pip and no network here: installing a wheel is unpacking it into site-packages
# (steps start in the image's WorkingDir, as with pyxis: paths into the job's directory are absolute)
srun --container-image=$CONT --container-name=pyenv \
    sh -c "python3 -m zipfile -e $PWD/wheels/hpcb_demo-1.0-py3-none-any.whl $SITE && echo installed on \$(hostname)"
srun --container-name=pyenv \
    python3 -c 'import hpcb_demo, socket; print(socket.gethostname() + ":", "hpcb_demo", hpcb_demo.__version__, "says", hpcb_demo.MESSAGE)'
srun -N1 -n1 --container-image=$CONT python3 -c 'import hpcb_demo' 2>&1 | grep -o ModuleNotFoundError | sed 's/^/fresh container: /'
