"""pyxis compatibility: pyxis-style batch scripts and srun steps run through Apptainer.

options   pyxis' option table; one reader for command lines, #SBATCH and srun lines
values    the values: mounts, image references, workdir, names, rewrite rules
args      the hpcbridge sbatch command line and a script's #SBATCH header
srun      srun's option table: split a line into Slurm options, pyxis options, command
shell     a forgiving lexer of batch scripts (words, quoting, expansions kept)
scan      a script's srun steps, expanded with its variables, at submit time
steps     the container steps known at submit time: images, mounts, saves, notes
resources the job's partition and GPU request against the site (the GPU flag)
shim      the run-time srun shim and per-task step program (bash templates)
script    the generated batch script (templates/pyxis.sh.j2)

The I/O side (conversion, records, sbatch) is hpcbridge.submit.pyxis*; see docs/pyxis.md.
"""
