# pattern: sbatch --wrap with a one-line containerized step
# mode: wrap
# wrap: srun --container-image=ubuntu:24.04 sh -c 'echo wrapped in $HPCB_IMAGE'
# expect: ^wrapped in busybox$
