"""The Apptainer scaffolding text: runscript, env script, labels, metadata (golden texts).

The expected texts were checked byte for byte against an ``apptainer build``
(1.4.5) of the testbed's busybox image (see tests/testbed/test_build.py, which
compares the real files again on every testbed run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpcbridge import runner
from hpcbridge.images.sif.scaffold import (
    apptainer_text,
    args_quoted,
    build_labels,
    deffile,
    docker_env_script,
    escape_single_quotes,
    go_json,
    go_map,
    go_quote,
    inspect_metadata,
    make_scaffold,
    oci_config_json,
    parse_created,
    runscript,
    shell_escape,
    split_source,
    write_scaffold,
)

CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-01-01T00:00:00Z",
    "config": {
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello world", "HPCB_IMAGE=busybox"],
        "Entrypoint": ["/usr/local/bin/entry.sh"],
        "Cmd": ["default", "cmd"],
        "Labels": {"org.hpcbridge.test": "busybox", "b": "x<y&z"},
        "WorkingDir": "/work/not-in-layers",
    },
}


def test_shell_quoting_helpers_match_apptainer() -> None:
    assert shell_escape('a\\b"c`d$e') == 'a\\\\b\\"c\\`d\\$e'
    assert args_quoted(["nginx", "-g", "daemon off;"]) == '"nginx" "-g" "daemon off;"'
    assert escape_single_quotes("it's") == "it'\"'\"'s"
    assert go_quote('a"b\\c\n\x01é\u2028') == '"a\\"b\\\\c\\n\\x01é\\u2028"'


def test_docker_env_script_golden() -> None:
    text = docker_env_script(
        [
            "PATH=/bin:/usr/bin",
            "A=1",
            'QUOTE=say "hi" $HOME',
            "EMPTY=",
            "NOVAL",
            "1BAD=x",
            "bad-name=y",
        ]
    )
    assert text == (
        "#!/bin/sh\n"
        'export PATH="/bin:/usr/bin"\n'
        'export A="${A:-"1"}"\n'
        'export QUOTE="${QUOTE:-"say \\\\\\"hi\\\\\\" \\\\$HOME"}"\n'
        'export EMPTY="${EMPTY:-""}"\n'
        'export NOVAL="${NOVAL:-}"\n'
    )


def test_runscript_entrypoint_and_cmd_golden_head() -> None:
    text = runscript(["/usr/local/bin/entry.sh"], ["default", "cmd"])
    assert text.startswith(
        '#!/bin/sh\nOCI_ENTRYPOINT=\'"/usr/local/bin/entry.sh"\'\nOCI_CMD=\'"default" "cmd"\'\n\n'
        "# When SINGULARITY_NO_EVAL set"
    )
    # the Go template's {{- if}} trimming, as apptainer renders it
    assert (
        "    if [ $# -gt 0 ]; then\n        set -- '/usr/local/bin/entry.sh' \"$@\"\n\n\telse\n"
        "        set -- 'cmd' \"$@\"\nset -- 'default' \"$@\"\n\n        set -- '/usr/local/bin/entry.sh' \"$@\"\n\n"
        '    fi\n    exec "$@"\nfi\n'
    ) in text
    assert text.endswith('eval "set ${SINGULARITY_OCI_RUN}"\nexec "$@"\n')
    assert len(text) == 2237  # size of apptainer's file for this image


def test_runscript_without_entrypoint_or_cmd() -> None:
    text = runscript([], [])
    assert "OCI_ENTRYPOINT=''\nOCI_CMD=''\n" in text
    assert "set --" not in text
    assert (
        '    if [ -n "$OCI_CMD" ] && [ -z "$OCI_ENTRYPOINT" ]; then\n        exec "$@"\n    fi\n'
        in text
    )


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "args", "expected"),
    [
        (["printf", "%s|"], ["a b", "it's", '"q"'], [], ["a b", "it's", '"q"']),
        (["printf", "%s|"], ["x"], ["1 2", "o'k"], ["1 2", "o'k"]),
        ([], ["printf", "%s|", "c md"], [], ["c md"]),
        ([], ["printf", "%s|", "c md"], ["printf", "%s|", "o v"], ["o v"]),
        (["printf", "%s|", "e p"], [], ["z"], ["e p", "z"]),
    ],
)
def test_runscript_runs_like_docker_under_sh(
    tmp_path: Path, entrypoint: list[str], cmd: list[str], args: list[str], expected: list[str]
) -> None:
    script = tmp_path / "runscript"
    script.write_text(runscript(entrypoint, cmd))
    for no_eval in ("", "1"):
        env = {"PATH": os.environ["PATH"], "SINGULARITY_NO_EVAL": no_eval, "HOME": "/h"}
        out = runner.run(["/bin/sh", str(script), *args], env=env)
        assert out.stdout == "".join(f"{a}|" for a in expected), (no_eval, out.stdout)


def test_runscript_evaluates_arguments_unless_no_eval(tmp_path: Path) -> None:
    """Apptainer's documented quirk: without --no-eval, arguments go through the shell."""
    script = tmp_path / "runscript"
    script.write_text(runscript(["printf", "%s|"], []))
    for no_eval, want in (("", "/h|"), ("1", "$HOME|")):
        env = {"PATH": os.environ["PATH"], "SINGULARITY_NO_EVAL": no_eval, "HOME": "/h"}
        out = runner.run(["/bin/sh", str(script), "$HOME"], env=env)
        assert out.stdout == want


def test_labels_json_is_sorted_tab_indented_and_html_escaped() -> None:
    labels = build_labels(
        {"z": "1", "a": "<&>"},
        source_ref="docker://reg:5000/x/y:1",
        manifest_digest="sha256:" + "0" * 64,
        created=1704067200,
        architecture="amd64",
    )
    text = go_json(go_map(labels), indent="\t")
    assert text.startswith('{\n\t"a": "\\u003c\\u0026\\u003e",\n')
    assert '\t"org.label-schema.build-date": "Monday_1_January_2024_0:0:0_UTC",\n' in text
    assert '\t"org.opencontainers.image.base.digest": "sha256:' + "0" * 64 + '",\n' in text
    assert labels["org.label-schema.usage.singularity.deffile.from"] == "reg:5000/x/y:1"
    assert list(json.loads(text)) == sorted(labels)
    assert go_json(go_map({}), indent="\t") == "{}"


def test_deffile_and_source_split() -> None:
    assert deffile("docker://alpine:3.19") == "bootstrap: docker\nfrom: alpine:3.19\n\n"
    assert split_source("oci-archive:/x/y.tar") == ("oci-archive", "/x/y.tar")
    assert split_source("docker-archive:/x.tar") == ("docker-archive", "/x.tar")
    assert split_source("oci:/dir:tag") == ("oci", "/dir:tag")
    assert split_source("reg/x:1") == ("docker", "reg/x:1")


def test_parse_created() -> None:
    assert parse_created("2024-01-01T00:00:00Z") == 1704067200
    assert parse_created("2024-01-01T01:00:00.123456789+01:00") == 1704067200
    assert parse_created(None) == 0
    assert parse_created("garbage") == 0
    assert parse_created("1960-01-01T00:00:00Z") == 0


def test_oci_config_json_follows_ggcr_field_order() -> None:
    text = oci_config_json(
        {
            "WorkingDir": "/w",
            "Env": ["A=1"],
            "Cmd": ["x"],
            "Labels": {"b": "1", "a": "2"},
            "ExposedPorts": {"80/tcp": {}},
            "Unknown": 1,
            "User": "",
        }
    )
    assert (
        text
        == '{"Cmd":["x"],"Env":["A=1"],"Labels":{"a":"2","b":"1"},"WorkingDir":"/w","ExposedPorts":{"80/tcp":{}}}'
    )


def test_inspect_metadata_shape() -> None:
    text = inspect_metadata(
        labels={"b": "2", "a": "1"},
        env_files={"/e/90.sh": "x\n", "/e/10.sh": "y\n\n"},
        runscript_text="run\n",
        startscript="",
        deffile_text="def\n\n",
    )
    assert text == (
        '{"data":{"attributes":{"environment":{"/e/10.sh":"y","/e/90.sh":"x"},"labels":{"a":"1","b":"2"},'
        '"runscript":"run","deffile":"def"}},"type":"container"}'
    )


def test_make_scaffold_and_write_it(tmp_path: Path) -> None:
    sc = make_scaffold(
        CONFIG,
        source_ref="docker://127.0.0.1:5000/hpcb/busybox:1.35",
        manifest_digest="sha256:" + "1" * 64,
    )
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").mkdir()
    os.symlink("/etc/host-resolv.conf", root / "etc/resolv.conf")  # never written through
    write_scaffold(str(root), sc.entries)
    sd = root / ".singularity.d"
    assert (sd / "actions/run").read_text() == apptainer_text("actions/run")
    assert (sd / "env/94-appsbase.sh").read_text() == ""
    assert (
        sd / "Singularity"
    ).read_text() == "bootstrap: docker\nfrom: 127.0.0.1:5000/hpcb/busybox:1.35\n\n"
    assert os.readlink(root / "singularity") == ".singularity.d/runscript"
    assert (root / "etc/resolv.conf").is_file() and not (root / "etc/resolv.conf").is_symlink()
    assert (root / "work/not-in-layers").is_dir()
    assert oct(os.stat(sd / "runscript").st_mode & 0o777) == "0o755"
    assert json.loads((sd / "labels.json").read_text())["org.hpcbridge.test"] == "busybox"
    assert sc.created == 1704067200
    meta = json.loads(sc.inspect_json)
    assert (
        meta["data"]["attributes"]["deffile"]
        == "bootstrap: docker\nfrom: 127.0.0.1:5000/hpcb/busybox:1.35"
    )
    assert (
        "GREETING"
        in meta["data"]["attributes"]["environment"]["/.singularity.d/env/10-docker2singularity.sh"]
    )


def test_apptainer_files_are_package_data() -> None:
    from hpcbridge.images.sif.scaffold import _VERBATIM

    for name in _VERBATIM:
        assert apptainer_text(name).startswith("#!/bin/sh\n# Copyright (c) Contributors"), name
    assert "{{ .PrependEntrypoint }}" in apptainer_text("oci-runscript.tmpl")
