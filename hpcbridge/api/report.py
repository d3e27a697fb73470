"""Reports: how a submission (and its resubmissions) used the cluster, and right-sizing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpcbridge.api._common import session
from hpcbridge.errors import InputError

if TYPE_CHECKING:
    from hpcbridge.report.build import Report
    from hpcbridge.submit.results import Submission


@dataclass(frozen=True)
class HtmlReport:
    """The HTML report written to ``path`` (``size`` bytes)."""

    path: Path
    size: int


def report(sub_ref: str) -> Report:
    """Per-task figures, requested vs used, failures, suggestions (one poll cycle, one sacct)."""
    from hpcbridge.report.collect import collect_report

    sess = session()
    return collect_report(sess, sess.store.resolve(sub_ref))


def report_html(rep: Report, output: Path) -> HtmlReport:
    """Write ``rep`` as one self-contained HTML page (needs matplotlib: ``hpcbridge[report]``)."""
    from hpcbridge.fsutil import atomic_write_text
    from hpcbridge.report.html import report_html as render

    text = render(rep)  # before anything is written: a missing extra leaves no file
    try:
        atomic_write_text(output, text, mode=0o644)
    except OSError as exc:
        raise InputError(
            f"cannot write {output}: {exc.strerror}", "choose a writable path for --html"
        ) from None
    return HtmlReport(output, len(text.encode("utf-8")))


def rerun_right_size(sub_ref: str, *, retries: int = 0) -> Submission:
    """Submit every task again with the suggested memory and time limit (outliers their own)."""
    from hpcbridge.submit.actions import rerun_right_sized

    sess = session()
    return rerun_right_sized(sess, sess.store.resolve(sub_ref), retries=retries)
