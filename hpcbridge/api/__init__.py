"""The library the command line calls: one function per command, typed results, no printing.

Every function loads the layered configuration itself (and, for submissions,
opens the state store); errors are :class:`~hpcbridge.errors.HpcbridgeError`
subclasses.  The modules import the heavy parts of hpcbridge only when a
function runs, so importing :mod:`hpcbridge.api` stays cheap.

The result types of the submission and tracking functions are re-exported
here; the others live beside the code that makes them (``ConvertResult`` in
:mod:`hpcbridge.images.convert`, ``Listing``/``CachedImage``/``Pruned`` in
:mod:`hpcbridge.images.inventory`, ``Wrapped`` in :mod:`hpcbridge.wrap`,
``Export`` in :mod:`hpcbridge.submit.bundle`, ``PyxisPlan`` in
:mod:`hpcbridge.submit.pyxis`, ``TrialRun`` in :mod:`hpcbridge.scheduler.base`,
``Translation`` in :mod:`hpcbridge.recipe`, ``Report`` in :mod:`hpcbridge.report.build`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hpcbridge.api.images import (
    convert,
    human_size,
    images_inspect,
    images_list,
    images_prune,
    wrap,
)

if TYPE_CHECKING:
    from hpcbridge.api.jobs import (
        Rendered,
        cancel,
        export,
        pyxis_plan,
        pyxis_script,
        pyxis_submit,
        pyxis_trial,
        render_script,
        rerun,
        rerun_bundle,
        resubmit,
        resubmit_script,
        srun_dry_run,
        srun_exec,
        srun_plan,
        submit,
    )
    from hpcbridge.api.report import HtmlReport, report, report_html, rerun_right_size
    from hpcbridge.api.tools import (
        ConfigView,
        DoctorReport,
        config_check,
        config_example,
        config_examples,
        config_notes,
        config_show,
        doctor,
        looks_like_def,
        recipe,
    )
    from hpcbridge.api.tracking import (
        StatusReport,
        TaskLog,
        Watch,
        follow_logs,
        list_submissions,
        logs,
        status,
        watch,
    )
    from hpcbridge.submit.results import BundleOrigin, Cancellation, Submission
    from hpcbridge.tracking.record import Record
    from hpcbridge.tracking.summary import Progress, SubmissionStatus, TaskStatus
    from hpcbridge.tracking.watch import WatchSnapshot

#: Everything but the image functions is imported on first use (PEP 562): a command
#: imports only the part of the library it calls (``hpcbridge convert`` of a cached
#: image takes ~0.1 s in all; the rest of the library would add ~10 ms).
_LAZY_MODULES: dict[str, tuple[str, ...]] = {
    "hpcbridge.api.jobs": (
        "Rendered",
        "cancel",
        "export",
        "pyxis_plan",
        "pyxis_script",
        "pyxis_submit",
        "pyxis_trial",
        "render_script",
        "rerun",
        "rerun_bundle",
        "resubmit",
        "resubmit_script",
        "srun_dry_run",
        "srun_exec",
        "srun_plan",
        "submit",
    ),
    "hpcbridge.api.report": ("HtmlReport", "report", "report_html", "rerun_right_size"),
    "hpcbridge.api.tools": (
        "ConfigView",
        "DoctorReport",
        "config_check",
        "config_example",
        "config_examples",
        "config_notes",
        "config_show",
        "doctor",
        "looks_like_def",
        "recipe",
    ),
    "hpcbridge.api.tracking": (
        "StatusReport",
        "TaskLog",
        "Watch",
        "follow_logs",
        "list_submissions",
        "logs",
        "status",
        "watch",
    ),
    "hpcbridge.submit.results": ("BundleOrigin", "Cancellation", "Submission"),
    "hpcbridge.tracking.record": ("Record",),
    "hpcbridge.tracking.summary": ("Progress", "SubmissionStatus", "TaskStatus"),
    "hpcbridge.tracking.watch": ("WatchSnapshot",),
}
_LAZY_TYPES = {name: module for module, names in _LAZY_MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY_TYPES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BundleOrigin",
    "Cancellation",
    "ConfigView",
    "DoctorReport",
    "HtmlReport",
    "Progress",
    "Record",
    "Rendered",
    "StatusReport",
    "Submission",
    "SubmissionStatus",
    "TaskLog",
    "TaskStatus",
    "Watch",
    "WatchSnapshot",
    "cancel",
    "config_check",
    "config_example",
    "config_examples",
    "config_notes",
    "config_show",
    "convert",
    "doctor",
    "export",
    "follow_logs",
    "human_size",
    "images_inspect",
    "images_list",
    "images_prune",
    "list_submissions",
    "logs",
    "looks_like_def",
    "pyxis_plan",
    "pyxis_script",
    "pyxis_submit",
    "pyxis_trial",
    "recipe",
    "render_script",
    "report",
    "report_html",
    "rerun",
    "rerun_bundle",
    "rerun_right_size",
    "resubmit",
    "resubmit_script",
    "srun_dry_run",
    "srun_exec",
    "srun_plan",
    "status",
    "submit",
    "watch",
    "wrap",
]
