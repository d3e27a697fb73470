"""The conversion progress display: the model's lines and summary, redraws, when it shows.

Events and a clock go in, text comes out: no terminal needed (the display is
drawn on a StringIO standing in for stderr).
"""

from __future__ import annotations

import io

from hpcbridge.cli._progress import ConvertProgress, TerminalProgress, progress_for
from hpcbridge.images.progress import LayerEvent

MIB = 1 << 20


def test_download_lines_per_layer_with_rates() -> None:
    m = ConvertProgress(started=100.0)
    m.on_layer(LayerEvent(0, "sha256:" + "a" * 64, "download", 0, 10 * MIB), 100.0)
    m.on_layer(LayerEvent(0, "sha256:" + "a" * 64, "download", 4 * MIB, 10 * MIB), 102.0)
    m.on_layer(LayerEvent(1, "sha256:" + "b" * 64, "download", 1 * MIB, 2 * MIB), 102.0)
    m.on_stage("download", 0, 12 * MIB, 100.0)
    m.on_stage("download", 5 * MIB, 12 * MIB, 102.0)
    assert m.lines(102.0) == [
        "  layer 1 aaaaaaaaaaaa  4.0 MiB / 10.0 MiB  40%  2.0 MiB/s",
        "  layer 2 bbbbbbbbbbbb  1.0 MiB / 2.0 MiB  50%  0 B/s",
        "download 5.0 MiB / 12.0 MiB  42%  2.5 MiB/s  (0 of 2 layers done)",
        "elapsed  0:02",
    ]


def test_finished_layers_leave_the_block_and_squash_follows() -> None:
    m = ConvertProgress(started=0.0)
    m.on_layer(LayerEvent(0, "sha256:" + "a" * 64, "download", 2 * MIB, 2 * MIB), 1.0)
    m.on_stage("download", 0, 2 * MIB, 0.0)
    m.on_stage("download", 2 * MIB, 2 * MIB, 2.0)
    m.on_stage("extract", 1, 1, 3.0)
    m.on_stage("squash", 0, 1, 4.0)  # start marker
    m.on_stage("squash", 10 * MIB, 40 * MIB, 5.0)
    m.on_stage("squash", 20 * MIB, 40 * MIB, 6.0)
    assert m.lines(6.0) == [
        "download 2.0 MiB in 2.0 s",
        "squash   20.0 MiB / 40.0 MiB  50%  10.0 MiB/s",
        "elapsed  0:06",
    ]
    m.on_stage("squash", 40 * MIB, 40 * MIB, 8.0)
    m.on_stage("squash", 1, 1, 8.5)  # end marker: the byte count stays
    assert m.summary(9.0) == (
        "converted in 9.0 s: downloaded 2.0 MiB in 2.0 s (1.0 MiB/s), squashed 40.0 MiB in 4.0 s"
    )


def test_wait_and_apptainer_stages() -> None:
    m = ConvertProgress(started=0.0)
    m.on_stage("wait", 0, 0, 1.0)
    assert "waiting for another process converting the same image" in m.lines(1.0)
    m.on_stage("apptainer", 0, 1, 2.0)
    assert "apptainer build running" in m.lines(2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_terminal_redraws_in_place_at_most_ten_times_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    display = TerminalProgress(out, clock)
    display("download", 0, 4 * MIB)  # first event: drawn
    first = out.getvalue()
    assert first.endswith("elapsed  0:00\n") and "\033[" not in first
    clock.now = 0.05
    display("download", MIB, 4 * MIB)  # too soon: not drawn
    assert out.getvalue() == first
    clock.now = 0.2
    display("download", 2 * MIB, 4 * MIB)
    redraw = out.getvalue()[len(first) :]
    assert redraw.startswith("\033[2F\033[J")  # up over the 2 lines drawn, clear
    clock.now = 3.0
    display.finish()
    assert out.getvalue().endswith(
        "\033[2F\033[Jconverted in 3.0 s: downloaded 2.0 MiB in 3.0 s (682.7 KiB/s)\n"
    )


def test_nothing_drawn_when_no_conversion_ran() -> None:
    out = io.StringIO()
    TerminalProgress(out, Clock()).finish()
    assert out.getvalue() == ""


def test_shown_only_on_a_terminal_without_quiet_or_json() -> None:
    # pytest captures stderr: not a terminal
    assert progress_for(quiet=False) is None
    assert progress_for(quiet=True) is None
    assert progress_for(quiet=False, as_json=True) is None
