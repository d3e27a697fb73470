"""The pyxis option grammar (pure parsing)."""

from __future__ import annotations

import pytest

from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import build_options, parse_command_line, plan_request
from hpcbridge.pyxis.values import Mount, image_reference, parse_mounts
from hpcbridge.scheduler.sbatch_options import directives as sbatch_directives


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("ubuntu:24.04", "docker://ubuntu:24.04"),
        ("docker.io#ubuntu:24.04", "docker://docker.io/ubuntu:24.04"),
        ("nvcr.io#nvidia/pytorch:22.04-py3", "docker://nvcr.io/nvidia/pytorch:22.04-py3"),
        ("docker://nvidia/cuda:11.8.0-base", "docker://nvidia/cuda:11.8.0-base"),
        ("127.0.0.1:5000#hpcb/busybox:1.35", "docker://127.0.0.1:5000/hpcb/busybox:1.35"),
        ("ghcr.io/org/img@sha256:" + "a" * 64, "docker://ghcr.io/org/img@sha256:" + "a" * 64),
        ("/images/app.sif", "/images/app.sif"),
    ],
)
def test_image_references(image: str, ref: str) -> None:
    assert image_reference(image) == ref


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        ("./ubuntu.sqsh", "squashfs"),
        ("dockerd://nvidia/cuda:11", "daemon"),
        ("podman://x", "daemon"),
        ("alice@nvcr.io#nvidia/pytorch:1", "USER@"),
        ("", "empty"),
        ("#x", "REGISTRY#IMAGE"),
    ],
)
def test_image_references_refused(image: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        image_reference(image)


def test_mount_grammar() -> None:
    got = parse_mounts(
        "/a:/b:ro,./rel:./data:ro+nosuid,/same,/x:/y:x-create=dir+rw,/a:/b:ro", "/cwd"
    )
    assert got == [
        Mount("/a", "/b", True),
        Mount("/cwd/rel", "/data", True),
        Mount("/same", "/same", False),
        Mount("/x", "/y", False),
    ]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("tmpfs:/t", "tmpfs"),
        ("umount:/home", "umount"),
        ("data:/d", "mount source must be"),
        ("/a:b", "mount target must be"),
        ("/a:/b:noexec", "'noexec'"),
        ("/a:/b,,/c:/d", "empty entry"),
        (":/b", "invalid format"),
    ],
)
def test_mount_grammar_refusals(value: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        parse_mounts(value, "/cwd")


def test_command_line_split() -> None:
    sb, cont, script, args = parse_command_line(
        [
            "-p", "debug", "--gres=gpu:1", "-N2", "--hold", "--time", "10",
            "--container-image", "x:1", "--container-mounts=/a:/b",
            "--no-container-mount-home", "run.sh", "--container-image=literal", "-p",
        ],
        "/w",
    )  # fmt: skip
    assert sb == ["-p", "debug", "--gres=gpu:1", "-N2", "--hold", "--time", "10"]
    assert cont == {"image": "x:1", "mounts": "/a:/b", "no-container-mount-home": ""}
    assert script == "/w/run.sh"
    assert args == ["--container-image=literal", "-p"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--container-bogus=1", "s.sh"], "unknown pyxis option"),
        (["--container-image=a", "--container-image=b", "s.sh"], "conflicts"),
        (["--container-writable", "--container-readonly", "s.sh"], "conflicts"),
        (["--frobnicate", "x", "s.sh"], "--frobnicate=VALUE"),
        (["-p"], "needs a value"),
        (["-p", "debug"], "no batch script"),
        (["--container-mount-home=yes", "s.sh"], "takes no value"),
    ],
)
def test_command_line_refusals(argv: list[str], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        parse_command_line(argv, "/w")


def test_sbatch_directive_reader_follows_sbatch() -> None:
    text = (
        "#!/bin/bash\n"
        '#SBATCH --job-name="a b" # comment\n'
        "#SBATCH --container-image=nvcr.io\\#nvidia/x:1\n"
        "#SBATCH --comment='x#y'\n"
        "\n# plain comment\n"
        "echo hi\n"
        "#SBATCH --ignored=after-first-command\n"
    )
    got = [words for _, words in sbatch_directives(text)]
    assert got == [["--job-name=a b"], ["--container-image=nvcr.io#nvidia/x:1"], ["--comment=x#y"]]


def test_precedence_cli_then_script_then_environment() -> None:
    script = (
        "#!/bin/sh\n#SBATCH --container-image=from-script:1\n#SBATCH --container-workdir=/s\ntrue\n"
    )
    env = {
        "PYXIS_CONTAINER_IMAGE": "from-env:1",
        "PYXIS_CONTAINER_WORKDIR": "/e",
        "PYXIS_CONTAINER_MOUNTS": "/m:/m",
        "PYXIS_CONTAINER_MOUNT_HOME": "no",
    }
    req, _, lines = plan_request(
        ["--container-image=cli:1", "--dry-run", "s.sh"], lambda _p: script, env, "/w"
    )
    assert req.dry_run
    assert req.container.image == "cli:1"
    assert req.container.workdir == "/s"
    assert req.container.mounts == [Mount("/m", "/m", False)]
    assert req.container.mount_home is False
    assert lines == {1, 2}


def test_environment_booleans() -> None:
    opts = build_options({}, {}, {"PYXIS_CONTAINER_WRITABLE": "y"}, "/")
    assert opts.writable is True
    with pytest.raises(InputError, match="PYXIS_CONTAINER_READONLY"):
        build_options({}, {}, {"PYXIS_CONTAINER_READONLY": "maybe"}, "/")


@pytest.mark.parametrize(
    "opt", ["--container-name=x", "--container-save=/x", "--container-entrypoint"]
)
def test_enroot_only_features_refused(opt: str) -> None:
    with pytest.raises(InputError, match="not supported"):
        plan_request([opt, "--container-image=x:1", "s.sh"], lambda _p: "true\n", {}, "/w")


def test_no_image_anywhere() -> None:
    with pytest.raises(InputError, match="no container image"):
        plan_request(["s.sh"], lambda _p: "#!/bin/sh\ntrue\n", {}, "/w")
