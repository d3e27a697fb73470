"""Facts about Slurm, Apptainer and the registry, checked on the real testbed.

These tests never call hpcbridge: they pin how the tools hpcbridge drives behave
(and that the testbed itself works), so a change of Slurm or Apptainer shows up
here rather than as a puzzling product failure.  Every test in this folder gets
the markers ``facts`` and ``testbed`` (tests/facts/conftest.py).
"""
