"""Every option hpcbridge puts on an apptainer/singularity command line exists in
exec-flags.json for the configured runtime and version, in a valid position.

The rendered golden scripts are parsed (not the builder's own data), so this
catches a template that adds a flag as well as a builder bug.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.errors import ConfigError
from hpcbridge.render.flags import flags_for, parse_command
from tests.golden.support import (
    case_names,
    container_argvs,
    golden_config,
    golden_path,
    load_case,
    render_case,
)


def _golden_scripts() -> list[str]:
    """Every golden holding a runtime command line (the job goldens, and the pyxis ones
    that build it in the batch script rather than at run time)."""
    names = [
        p.stem
        for p in golden_path("x").parent.glob("*.sh")
        if p.stem in case_names() or "hpcb_container=(" in p.read_text(encoding="utf-8")
    ]
    assert len(names) >= 7, names
    return sorted(names)


@pytest.mark.parametrize("name", _golden_scripts())
def test_golden_runtime_flags_exist_and_are_placed_right(name: str, tmp_path: Path) -> None:
    cfg = golden_config(tmp_path)
    script = golden_path(name).read_text(encoding="utf-8")
    argvs = container_argvs(script)
    assert argvs, f"{name}.sh has no runtime command line"
    job = load_case(name) if name in case_names() else None
    asked = {f.name for f in job.apptainer} if job is not None else set()
    for argv in argvs:
        parsed = parse_command(argv, cfg.runtime.flavor, cfg.runtime.version)
        assert parsed.executable == cfg.runtime.executable
        assert parsed.subcommand == (job.action if job is not None else "exec")
        # the job runs the cached SIF pinned to the digest, never a registry ref
        assert parsed.image.endswith(".sif") and "://" not in parsed.image
        names = [n for n, _ in parsed.options]
        # job files run clean; the pyxis entry keeps pyxis' semantics (job env visible)
        assert ("--cleanenv" in names) != name.startswith("pyxis")
        assert "--no-eval" in names  # APPTAINERENV_ values byte-exact
        assert "--pwd" in names
        # hpcbridge never adds --contain/--containall itself (MPI shared memory, /dev)
        assert ("--contain" in names) == ("contain" in asked)
        assert ("--containall" in names) == ("containall" in asked)
        table = flags_for(cfg.runtime.flavor, "action", parsed.subcommand)
        for option, _ in parsed.options:
            assert table[option].scope == "action"


def test_every_case_has_a_golden(tmp_path: Path) -> None:
    for name in case_names():
        assert golden_path(name).exists(), name


@pytest.mark.parametrize(
    ("argv", "flavor", "version", "needle"),
    [
        (["apptainer", "exec", "--debug", "x.sif", "true"], "apptainer", "1.4.5", "--debug"),
        (["apptainer", "--nv", "exec", "x.sif", "true"], "apptainer", "1.4.5", "--nv"),
        (["apptainer", "exec", "--cwd", "/w", "x.sif", "true"], "apptainer", "1.2.5", "1.3"),
        (["apptainer", "exec", "--no-eval", "x.sif", "true"], "apptainer", "1.0.3", "1.1"),
        (["apptainer", "exec", "--sharens", "x.sif", "true"], "singularity", None, "Apptainer"),
        (["apptainer", "exec", "--oci", "x.sif", "true"], "apptainer", "1.4.5", "Singularity"),
        (["apptainer", "exec", "--bogus", "x.sif", "true"], "apptainer", "1.4.5", "--bogus"),
        (["apptainer", "exec", "x.sif"], "apptainer", "1.4.5", "no command"),
        (["apptainer", "exec", "--cleanenv"], "apptainer", "1.4.5", "no image"),
        (["apptainer", "-q", "build", "x.sif"], "apptainer", "1.4.5", "subcommand"),
    ],
)
def test_parser_refuses_misplaced_or_unknown_flags(
    argv: list[str], flavor: str, version: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_command(argv, flavor, version)
    assert needle in str(err.value)


def test_parser_reads_values_and_stops_at_the_image() -> None:
    p = parse_command(
        ["apptainer", "--quiet", "exec", "-B", "/a:/b", "--pwd=/w", "-e", "i.sif", "ls", "--nv"],
        "apptainer",
        "1.4.5",
    )
    assert p.global_flags == (("--quiet", None),)
    assert p.options == (("--bind", "/a:/b"), ("--pwd", "/w"), ("--cleanenv", None))
    assert p.image == "i.sif"
    assert p.args == ("ls", "--nv")


def test_singularity_golden_variant_uses_only_singularity_flags(tmp_path: Path) -> None:
    """The plain case rendered for SingularityCE parses with the SingularityCE table."""
    from hpcbridge.render import TrackingContext, render_job
    from tests.golden.support import image_for, load_case

    job = load_case("plain")
    cfg = golden_config(
        tmp_path, **{"runtime.flavor": "singularity", "runtime.executable": "singularity"}
    )
    script = render_job(job, cfg, image=image_for(job), tracking=TrackingContext("s", "/o")).script
    assert "SINGULARITYENV_GREETING=" in script
    for argv in container_argvs(script):
        parse_command(argv, "singularity", None)
    _ = render_case  # the same helper renders the goldens
