"""The local testbed: Slurm 22.05 (munge, slurmctld, slurmd per fake node, optional
slurmdbd + MariaDB) and, next to it, Slurm 26.05 from Debian sid (sid.py: pivot_root
sandbox, cgroup limits, rate limiting), the real Apptainer, an OCI registry and test images.

Use ``python -m tests.testbed up|down|status|env|demo|leftovers`` by hand, or the
``testbed`` pytest fixture (tests/conftest.py) which gives a :class:`tests.testbed.api.Testbed`.
See docs/testbed.md.
"""

from __future__ import annotations
