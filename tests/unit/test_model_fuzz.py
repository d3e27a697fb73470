"""Property tests: whatever a job file or --set holds, the answer is a JobSpec or a JobSpecError.

No other exception (TypeError, KeyError, AttributeError ...) may escape the job
builder, so the CLI always prints one clear line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcbridge.errors import JobSpecError
from hpcbridge.job.load import job_from_dict
from hpcbridge.job.schema import SCHEMA
from hpcbridge.job.spec import JobSpec

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
SCALAR = st.one_of(
    TEXT,
    st.integers(min_value=-5, max_value=10**7),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(datetime.time(1, 2, 3)),
    st.sampled_from(["0-9%2", "01:00:00", "4G", "/tmp", "{task}", "srun", "pmix", "ro", "gpu:2"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(TEXT | st.sampled_from(["src", "dst"]), inner, max_size=3),
    ),
    max_leaves=6,
)


def table_strategy(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(sorted(schema)), VALUE, max_size=4)


JOB = st.fixed_dictionaries(
    {"image": st.just("busybox"), "command": st.just(["echo", "{task}"])},
    optional={
        key: (table_strategy(sub) if isinstance(sub, dict) else VALUE)
        for key, sub in SCHEMA.items()
        if key not in ("image", "command", "script", "inputs", "inputs_file")
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JOB)
def test_any_job_mapping_gives_a_spec_or_a_job_spec_error(
    tmp_path_factory: Any, data: dict[str, Any]
) -> None:
    job_dir: Path = tmp_path_factory.getbasetemp()
    try:
        spec = job_from_dict(data, job_dir=str(job_dir))
    except JobSpecError as exc:
        assert exc.message and "\n" not in exc.message.replace("\\n", "")
        return
    assert isinstance(spec, JobSpec)
    spec.to_dict()


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(TEXT | st.sampled_from(["image", "command", "script"]), VALUE, max_size=4))
def test_any_top_level_mapping(tmp_path_factory: Any, data: dict[str, Any]) -> None:
    with contextlib.suppress(JobSpecError):
        job_from_dict(data, job_dir=str(tmp_path_factory.getbasetemp()))


KEYS = sorted(
    [k for k, v in SCHEMA.items() if not isinstance(v, dict)]
    + [f"{k}.{s}" for k, v in SCHEMA.items() if isinstance(v, dict) for s in v]
    + ["env.X", "env.1", "resources", "nope.x", "mpi.type.x"]
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS) | TEXT, TEXT), max_size=4))
def test_any_set_gives_a_spec_or_a_job_spec_error(
    tmp_path_factory: Any, sets: list[tuple[str, str]]
) -> None:
    job_dir: Path = tmp_path_factory.getbasetemp()
    with contextlib.suppress(JobSpecError):
        job_from_dict(
            {"image": "busybox", "command": ["true"]},
            job_dir=str(job_dir),
            sets=[f"{k}={v}" for k, v in sets],
        )
