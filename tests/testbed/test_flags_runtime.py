"""hpcbridge's apptainer flag table (hpcbridge/render/exec_flags.json) against the real
Apptainer of the testbed: every action flag the table says this release has is accepted
by its command-line parser, and every flag the table says it lacks is refused as unknown.

(Replaces a test that compared the packaged table with a copy outside the repository.)
"""

from __future__ import annotations

import pytest

from hpcbridge.render.flags import available, flags_for, parse_version
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

# One line per flag: the flag, then whether the parser called it unknown.  The image does
# not exist, so an accepted flag ends in "could not open image", never in running anything.
PROBE = """\
for arg in "$@"; do
  if apptainer exec "$arg" /nonexistent/hpcbridge-probe.sif true 2>&1 | grep -q 'unknown flag'
  then echo "$arg unknown"; else echo "$arg known"; fi
done
"""


def test_action_flags_match_the_running_apptainer(testbed: Testbed) -> None:
    version = testbed.run_as_user(["apptainer", "--version"]).stdout.strip()
    assert parse_version(version), version
    table = {k: v for k, v in flags_for("apptainer", "action", "exec").items() if k[:2] == "--"}
    args = [f"{name}=x" if info.takes_value else name for name, info in table.items()]
    done = testbed.run_as_user(["sh", "-c", PROBE, "probe", *args], timeout=600)
    seen = {}
    for line in done.stdout.splitlines():
        arg, verdict = line.rsplit(" ", 1)
        seen[arg.split("=", 1)[0]] = verdict
    assert sorted(seen) == sorted(table)
    wrong = {
        name: f"table: {reason or 'available'}; {version}: {seen[name]}"
        for name, info in table.items()
        for reason in [available(info, "apptainer", version)]
        if (reason is None) != (seen[name] == "known")
    }
    assert wrong == {}
