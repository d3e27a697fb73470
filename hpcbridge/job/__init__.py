"""The job file and what it becomes: a validated, frozen :class:`~hpcbridge.job.spec.JobSpec`.

Modules, in the order data flows through them:

* :mod:`~hpcbridge.job.load` -- ``load_job(path, sets)`` / ``job_from_dict``: reads
  the TOML file and lists inputs (the package's only I/O), then builds.
* :mod:`~hpcbridge.job.schema` -- ``SCHEMA``, the one table of job-file keys and
  their kinds; unknown-key checks; ``apply_sets`` for ``--set key=value``.
* :mod:`~hpcbridge.job.build` -- ``build_job``: a parsed mapping -> ``JobSpec``.
* :mod:`~hpcbridge.job.sections` -- the builders of binds, env, resources, GPU,
  MPI, dependencies, modules and ``extra_sbatch`` lines.
* :mod:`~hpcbridge.job.fields` -- readers of single values (string, line, list...).
* :mod:`~hpcbridge.job.values` -- the small value languages of job files:
  per-task placeholders (``{task}``, ``{input}``...), signal specs, "did you
  mean" hints.
* :mod:`~hpcbridge.job.spec` -- the frozen dataclasses (``JobSpec``,
  ``Resources``, ``Bind``, ``MpiSpec``, ``GpuSpec``, ``Dependency``).

Slurm's value syntax (time limits, memory sizes, array specs) is
:mod:`hpcbridge.slurm_syntax`, shared with the configuration, the renderer and
the scheduler.
"""
