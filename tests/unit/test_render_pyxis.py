"""pyxis options as hpcbridge reads them: the grammar of each value, the command
line, ``#SBATCH`` lines (mixed, repeated, ``$`` in them), precedence, and the
generated scripts (goldens)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.errors import InputError
from hpcbridge.pyxis.args import (
    interpret,
    parse_command_line,
    plan_request,
    read_header,
    rewrite_header_line,
)
from hpcbridge.pyxis.options import RawOptions, from_environment
from hpcbridge.pyxis.values import (
    Mount,
    clean_path,
    image_reference,
    name_and_flag,
    parse_mounts,
    rewrite_reference,
    workdir_in,
)
from hpcbridge.scheduler.sbatch_options import directives as sbatch_directives
from tests.unit.test_render_golden import compare_golden


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("ubuntu:24.04", "docker://ubuntu:24.04"),
        ("docker.io#ubuntu:24.04", "docker://docker.io/ubuntu:24.04"),
        ("nvcr.io#nvidia/pytorch:22.04-py3", "docker://nvcr.io/nvidia/pytorch:22.04-py3"),
        ("docker://nvidia/cuda:11.8.0-base", "docker://nvidia/cuda:11.8.0-base"),
        ("127.0.0.1:5000#hpcb/busybox:1.35", "docker://127.0.0.1:5000/hpcb/busybox:1.35"),
        ("ghcr.io/org/img@sha256:" + "a" * 64, "docker://ghcr.io/org/img@sha256:" + "a" * 64),
    ],
)
def test_image_references(image: str, ref: str) -> None:
    assert image_reference(image) == ref


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        ("dockerd://nvidia/cuda:11", "--container-image=./img.tar"),
        ("podman://x", "docker save"),
        ("alice@nvcr.io#nvidia/pytorch:1", "USER@"),
        ("", "empty"),
        ("#x", "REGISTRY#IMAGE"),
    ],
)
def test_image_references_refused_with_a_fix(image: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        image_reference(image)
    assert needle in str(err.value)


def test_rewrite_rules_longest_prefix_wins() -> None:
    rules = ("nvcr.io/=mirror:5000/nvcr/", "nvcr.io/nvidia/pytorch:24.01-py3=local:5000/pt:1")
    assert rewrite_reference("docker://nvcr.io/nvidia/pytorch:24.01-py3", rules) == (
        "docker://local:5000/pt:1"
    )
    assert rewrite_reference("docker://nvcr.io/nvidia/jax:1", rules) == (
        "docker://mirror:5000/nvcr/nvidia/jax:1"
    )
    assert rewrite_reference("docker://ubuntu:24.04", rules) == "docker://ubuntu:24.04"
    with pytest.raises(InputError, match=r"convert\.rewrite entry 'nvcr\.io' is not FROM=TO"):
        rewrite_reference("docker://x:1", ("nvcr.io",))


def test_mount_grammar() -> None:
    got = parse_mounts(
        "/a:/b:ro,./rel:./data:ro+nosuid,/same,/x:/y:x-create=dir+rw,/a:/b:ro,//mnt//x/:/m", "/cwd"
    )
    assert got == [
        Mount("/a", "/b", True),
        Mount("/cwd/rel", "/data", True),
        Mount("/same", "/same", False),
        Mount("/x", "/y", False),
        Mount("/mnt/x", "/m", False),
    ]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("tmpfs:/t", "tmpfs mounts are not supported"),
        ("umount:/home", "umount"),
        ("data:/d", "mount source must be"),
        ("/a:b", "mount target must be"),
        ("/a:/b:noexec", "'noexec'"),
        ("/a:/b,,/c:/d", "empty entry"),
        (":/b", "invalid format"),
        (".", "container's root directory"),
        ("./x:.", "--container-mounts=$PWD"),
    ],
)
def test_mount_grammar_refusals(value: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        parse_mounts(value, "/cwd")
    assert needle in str(err.value)


def test_workdir_follows_pyxis() -> None:
    assert workdir_in("/abs//dir/", "/workspace") == "/abs/dir"
    assert workdir_in("sub/dir", "/workspace") == "/workspace/sub/dir"
    assert workdir_in("sub", None) == "/sub"
    assert workdir_in("../..", "/workspace") == "/"  # pyxis: ../ clamps to /
    assert clean_path("//mnt") == "/mnt"


def test_container_names() -> None:
    assert name_and_flag("dev") == ("dev", "auto")
    assert name_and_flag("dev:no_exec") == ("dev", "no_exec")
    with pytest.raises(InputError, match='"auto", "create", "exec", "no_exec"'):
        name_and_flag("dev:later")
    with pytest.raises(InputError, match="letters, digits"):
        name_and_flag("a/b")


def test_command_line_split() -> None:
    line = parse_command_line(
        [
            "-p", "debug", "--gres=gpu:1", "-N2", "--hold", "--time", "10",
            "--container-image", "x:1", "--container-mounts=/a:/b", "--container-mounts=/c",
            "--no-container-mount-home", "--dry-run", "run.sh", "--container-image=literal", "-p",
        ],
        "/w",
    )  # fmt: skip
    assert line.sbatch == ["-p", "debug", "--gres=gpu:1", "-N2", "--hold", "--time", "10"]
    assert line.pyxis.values == {"image": "x:1"}
    assert line.pyxis.mounts == ["/a:/b", "/c"]  # repeated mounts accumulate
    assert line.pyxis.flags == {"home": False}
    assert line.dry_run
    assert line.script == "/w/run.sh"
    assert line.args == ["--container-image=literal", "-p"]


def test_wrap_and_stdin() -> None:
    wrapped = plan_request(["--wrap", "echo hi", "-J", "x"], lambda p: "", {}, "/w")
    assert wrapped.script == "--wrap" and wrapped.text.endswith("\n\necho hi\n")
    assert wrapped.text.startswith("#!/bin/sh\n")
    read: list[str] = []
    piped = plan_request(["-p", "debug"], lambda p: read.append(p) or "#!/bin/sh\ntrue\n", {}, "/w")
    assert read == ["-"] and piped.script == "-"
    with pytest.raises(InputError, match="--wrap and a script"):
        plan_request(["--wrap=true", "s.sh"], lambda p: "", {}, "/w")
    with pytest.raises(InputError, match="does not start with #!"):
        plan_request(["s.sh"], lambda p: "echo no shebang\n", {}, "/w")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--container-bogus=1", "s.sh"], "unknown pyxis option"),
        (["--container-image=a", "--container-image=b", "s.sh"], "conflicts"),
        (["--container-writable", "--container-readonly", "s.sh"], "conflicts"),
        (["--frobnicate", "x", "s.sh"], "--frobnicate=VALUE"),
        (["-p"], "needs a value"),
        (["--container-mount-home=yes", "s.sh"], "takes no value"),
        (["--container-image="], "is empty"),
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


def test_mixed_sbatch_lines_keep_their_slurm_options() -> None:
    text = (
        "#!/bin/bash\n"
        "#SBATCH -N 2 --gres=gpu:4 --container-image=nvcr.io\\#nvidia/pytorch:24.01-py3\n"
        "#SBATCH --container-mounts=/a:/a --comment='a b'\n"
        "#SBATCH --container-mounts=/b:/b\n"
        "#SBATCH --output=/scratch/$USER/log.txt\n"
        "true\n"
    )
    header, raw, notes = read_header(text)
    assert [h.slurm for h in header] == [
        ("-N", "2", "--gres=gpu:4"),
        ("--comment=a b",),
        (),
        ("--output=/scratch/$USER/log.txt",),
    ]
    assert raw.image == "nvcr.io#nvidia/pytorch:24.01-py3"
    assert raw.mounts == ["/a:/a", "/b:/b"]  # a second line accumulates
    assert rewrite_header_line(header[0]) == [
        "# (pyxis options, handled by hpcbridge) "
        "#SBATCH -N 2 --gres=gpu:4 --container-image=nvcr.io\\#nvidia/pytorch:24.01-py3",
        "#SBATCH -N 2 --gres=gpu:4",
    ]
    assert rewrite_header_line(header[1])[1] == '#SBATCH "--comment=a b"'
    assert rewrite_header_line(header[2]) == [
        "# (pyxis options, handled by hpcbridge) #SBATCH --container-mounts=/b:/b"
    ]
    assert notes == [
        "script line 5: sbatch does not expand variables in #SBATCH lines: "
        "--output=/scratch/$USER/log.txt is used as written"
    ]


def test_dollar_in_sbatch_pyxis_option_is_refused_with_the_note() -> None:
    text = "#!/bin/bash\n#SBATCH --container-mounts=/scratch/$USER:/data\ntrue\n"
    with pytest.raises(InputError) as err:
        read_header(text)
    assert "script line 2" in err.value.message and "does not expand" in err.value.message
    assert "command line" in (err.value.hint or "")


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
    req = plan_request(
        ["--container-image=cli:1", "--dry-run", "s.sh"], lambda _p: script, env, "/w"
    )
    assert req.dry_run and req.whole_script
    assert req.container.image == "cli:1"
    assert req.container.workdir == "/s"
    assert req.container.mounts == (Mount("/m", "/m", False),)
    assert req.container.mount_home is False


def test_environment_booleans() -> None:
    assert from_environment({"PYXIS_CONTAINER_WRITABLE": "y"}).flags == {"writable": True}
    assert from_environment({"PYXIS_CONTAINER_READONLY": "1"}).flags == {"writable": False}
    with pytest.raises(InputError, match="PYXIS_CONTAINER_READONLY"):
        from_environment({"PYXIS_CONTAINER_READONLY": "maybe"})


def test_enroot_features_are_read() -> None:
    raw = RawOptions(
        {"image": "x:1", "name": "dev:no_exec", "save": "out/x.sqsh", "unshare": "net,uts"},
        flags={"entrypoint": True, "writable": True},
    )
    opts = interpret(raw, "/w")
    assert (opts.name, opts.name_flag, opts.save) == ("dev", "no_exec", "/w/out/x.sqsh")
    assert opts.unshare == ("net", "uts") and opts.entrypoint and opts.writable
    assert raw.words() == [
        "--container-image=x:1",
        "--container-name=dev:no_exec",
        "--container-save=out/x.sqsh",
        "--container-unshare=net,uts",
        "--container-entrypoint",
        "--container-writable",
    ]
    with pytest.raises(InputError, match="must name a file"):
        interpret(RawOptions({"save": "dir/"}), "/w")
    with pytest.raises(InputError, match="'pid' is not one of net, ipc, uts"):
        interpret(RawOptions({"unshare": "pid"}), "/w")


def test_no_image_runs_on_the_host() -> None:
    req = plan_request(["s.sh"], lambda _p: "#!/bin/sh\ntrue\n", {}, "/w")
    assert not req.whole_script and not req.whole


def test_golden_pyxis_whole_script(tmp_path: Path) -> None:
    from tests.golden.support import render_pyxis_case

    compare_golden("pyxis-entry", render_pyxis_case(tmp_path).script)


def test_golden_pyxis_srun_steps(tmp_path: Path) -> None:
    from tests.golden.support import render_pyxis_case

    argv = ["-p", "gpu", "pyxis-steps.sh", "--epochs", "3"]
    compare_golden("pyxis-steps", render_pyxis_case(tmp_path, argv, script="pyxis-steps.sh").script)
