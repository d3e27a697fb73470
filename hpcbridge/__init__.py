"""hpcbridge: run Docker/OCI images as Apptainer jobs on Slurm."""

__version__ = "0.1.0"
