"""The library the command line calls: one function per command, typed results, no printing.

Every function loads the layered configuration itself (and, for submissions,
opens the state store); errors are :class:`~hpcbridge.errors.HpcbridgeError`
subclasses.  The modules import the heavy parts of hpcbridge only when a
function runs, so importing :mod:`hpcbridge.api` stays cheap.
"""

from __future__ import annotations

from hpcbridge.api.images import (
    convert,
    human_size,
    images_inspect,
    images_list,
    images_prune,
    wrap,
)
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
    submit,
)
from hpcbridge.api.tools import (
    ConfigView,
    DoctorReport,
    config_check,
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

__all__ = [
    "ConfigView",
    "DoctorReport",
    "Rendered",
    "StatusReport",
    "TaskLog",
    "Watch",
    "cancel",
    "config_check",
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
    "rerun",
    "rerun_bundle",
    "resubmit",
    "resubmit_script",
    "status",
    "submit",
    "watch",
    "wrap",
]
