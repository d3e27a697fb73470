"""Recipe translation: words, runscripts, lexing, refusals (pure functions)."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcbridge.errors import InputError
from hpcbridge.recipe import def_to_dockerfile, dockerfile_to_def
from hpcbridge.recipe.dockerfile import lex
from hpcbridge.recipe.runscript import literal_words, parse_runscript, runscript_lines
from hpcbridge.recipe.words import split_assignments, split_words, substitute

# Arguments a shell must pass through untouched: anything but NUL.
ARG = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


def test_words_keep_quotes_and_references() -> None:
    words = split_words("a\\ b \"c $X d\" 'e $X' ${Y:-dflt}", {"X": "x"})
    assert [w.literal for w in words] == ["a b", "c x d", "e $X", "dflt"]
    assert words[1].shell == '"c $X d"'
    assert words[2].shell == '"e \\$X"'


def test_assignments_multi_and_legacy() -> None:
    got = split_assignments("a=1 b=\"two words\" c='$HOME'")
    assert [(a.name, a.value.literal) for a in got] == [
        ("a", "1"),
        ("b", "two words"),
        ("c", "$HOME"),
    ]
    legacy = split_assignments("KEY this is   the value")
    assert [(a.name, a.value.literal) for a in legacy] == [("KEY", "this is the value")]


def test_substitute() -> None:
    assert substitute("${BASE}:1 $T ${U:-x} ${T:+alt}", {"BASE": "img", "T": "t"}) == (
        "img:1 t x alt",
        (),
    )
    assert substitute("$NOPE", {}) == ("$NOPE", ("NOPE",))


def _run_sh(script: str, args: list[str]) -> list[str]:
    out = subprocess.run(
        ["/bin/sh", "-c", script, "runscript", *args], capture_output=True, check=True
    ).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@settings(max_examples=40, deadline=None)
@given(
    entry=st.lists(ARG, max_size=3), cmd=st.lists(ARG, max_size=3), args=st.lists(ARG, max_size=3)
)
def test_runscript_is_entrypoint_plus_args_or_cmd(
    entry: list[str], cmd: list[str], args: list[str]
) -> None:
    # printf prints each following argument NUL-terminated: the exact argv the program got.
    entrypoint = ["printf", "%s\\0", "argv:", *entry]
    script = "\n".join(runscript_lines(entrypoint, cmd))
    expected = entry + (args if args else cmd)
    assert _run_sh(script, args) == ["argv:", *expected]


@settings(max_examples=60, deadline=None)
@given(
    entry=st.lists(ARG, min_size=1, max_size=4),
    cmd=st.one_of(st.none(), st.lists(ARG, min_size=1, max_size=4)),
)
def test_runscript_parses_back(entry: list[str], cmd: list[str] | None) -> None:
    assert parse_runscript(runscript_lines(entry, cmd)) == (entry, cmd)


def test_runscript_with_expansions_is_not_docker_style() -> None:
    assert parse_runscript(['exec python3 "$HOME/x" "$@"']) is None
    assert parse_runscript(["echo hi", 'exec foo "$@"']) is None
    assert literal_words('a \'b c\' "d\\"e"') == ["a", "b c", 'd"e']
    assert literal_words("a; rm -rf /") is None


def test_lex_continuations_comments_and_flags() -> None:
    text = "FROM x\nRUN --mount=type=cache,target=/c a \\\n  # dropped\n\n  b\nCOPY --chown=1 a b\n"
    ins = lex(text)
    assert [i.keyword for i in ins] == ["FROM", "RUN", "COPY"]
    assert ins[1].args == "a   b"
    assert ins[1].flags == {"mount": "type=cache,target=/c"}
    assert ins[2].flags == {"chown": "1"} and ins[2].args == "a b"


def test_entrypoint_quoting_survives_in_def() -> None:
    df = 'FROM img\nENTRYPOINT ["/bin/echo", "it\'s", "$HOME", "a  b"]\nCMD ["x y"]\n'
    text = dockerfile_to_def(df).text
    assert "exec /bin/echo 'it'\"'\"'s' '$HOME' 'a  b' \"$@\"" in text
    assert "set -- 'x y'" in text


def test_add_archive_is_extracted_not_tar_zvf() -> None:
    result = dockerfile_to_def("FROM img\nADD a.tgz /opt/x\n")
    assert "tar -xzf /.hpcbridge-add/a.tgz -C /opt/x" in result.text
    assert "-zvf" not in result.text
    assert any("unpacked into /opt/x" in n.message for n in result.notes)


def test_env_in_environment_and_post_arg_in_post_only() -> None:
    text = dockerfile_to_def('FROM img\nARG V=1\nENV A="$V two"\n').text
    env = text.split("%environment")[1].split("%post")[0]
    post = text.split("%post")[1]
    assert 'export A="$V two"' in env and "export V" not in env
    assert post.index('export V="1"') < post.index('export A="$V two"')


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM a AS b\nFROM c\n", "multi-stage"),
        ("FROM a\nCOPY --from=b /x /y\n", "multi-stage"),
        ("FROM scratch\n", "FROM scratch"),
        ("RUN x\n", "RUN before FROM"),
        ("FROM $NOPE\n", "without a default"),
        ("ARG BASE\nFROM $BASE\n", "FROM $BASE uses ARG BASE without a default"),
        ("ARG BASE\nFROM ${BASE}:1\nRUN true\n", "ARG BASE without a default"),
        ("# escape=`\nFROM a\n", "escape"),
        ("FROM a\nRUN cat <<EOF\nx\nEOF\n", "here-document"),
        ("FROM a\nFOO bar\n", "unknown instruction FOO"),
        ('FROM a\nENV A="unterminated\n', "unterminated"),
        ("", "no FROM"),
    ],
)
def test_refusals_name_the_line(dockerfile: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        dockerfile_to_def(dockerfile)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("deffile", "message"),
    [
        ("Bootstrap: library\nFrom: x\n", "no Dockerfile equivalent"),
        ("Bootstrap: docker\nFrom: a\n%post\nx\nBootstrap: docker\nFrom: b\n", "multi-stage"),
        ("Bootstrap: docker\nFrom: a\n%setup\ntouch x\n", "%setup"),
        ("Bootstrap: docker\nFrom: a\n%appinstall foo\nmake\n", "SCIF"),
        ("Bootstrap: docker\nFrom: a\n%files from build\n/a /b\n", "multi-stage"),
        ("Bootstrap: docker\nFrom: {{ X }}\n", "not declared"),
        ("From: a\n", "no Bootstrap"),
    ],
)
def test_def_refusals(deffile: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        def_to_dockerfile(deffile)
    assert message in str(err.value)


def test_def_from_keeps_case_and_post_keeps_keywords() -> None:
    text = def_to_dockerfile(
        "Bootstrap: docker\nFrom: Registry.example/Org/Img:MyTag\n"
        "%post\n    echo 'from: here'\n    pip install bootstrap\n"
    ).text
    assert "FROM Registry.example/Org/Img:MyTag" in text
    assert "echo 'from: here'" in text and "pip install bootstrap" in text


def test_round_trip_keeps_entrypoint_and_cmd() -> None:
    df = 'FROM img\nENTRYPOINT ["/bin/tool", "--flag=a b"]\nCMD ["--help"]\n'
    back = def_to_dockerfile(dockerfile_to_def(df).text).text
    assert 'ENTRYPOINT ["/bin/tool", "--flag=a b"]' in back
    assert 'CMD ["--help"]' in back


@pytest.mark.parametrize(
    ("dockerfile", "line"),
    [
        ("FROM a\nWORKDIR /app\nCOPY req.txt .\n", "req.txt /app/"),
        ("FROM a\nWORKDIR /app\nCOPY req.txt ./\n", "req.txt /app/"),
        ("FROM a\nWORKDIR /app\nCOPY req.txt /app\n", "req.txt /app/"),  # WORKDIR made it
        ("FROM a\nWORKDIR /app/src\nCOPY x ..\n", "x /app/"),
        ("FROM a\nWORKDIR /app\nCOPY . .\n", ". /app/"),
        ("FROM a\nWORKDIR /app\nCOPY x y\n", "x /app/y\n"),  # a new file y, as Docker
        ("FROM a\nCOPY x /opt/tool\n", "x /opt/tool\n"),
        ("FROM a\nCOPY x /\n", "x /\n"),
        ("FROM a\nCOPY x y /d\n", "y /d/"),
    ],
)
def test_copy_into_a_directory_ends_in_slash(dockerfile: str, line: str) -> None:
    """Apptainer copies %files before %post (where WORKDIR's mkdir is): without the '/',
    ``COPY x .`` after ``WORKDIR /app`` made /app a file (checked on the testbed)."""
    files = dockerfile_to_def(dockerfile).text.split("%files\n")[1].split("\n\n")[0] + "\n"
    assert "    " + line in files


def test_workdir_copy_note_once() -> None:
    notes = dockerfile_to_def("FROM a\nWORKDIR /app\nCOPY a .\nCOPY b .\n").notes
    assert [str(n) for n in notes if "written as /app/" in str(n)] == [
        "Dockerfile:3: COPY into /app: written as /app/ so %files creates the directory"
    ]


@pytest.mark.parametrize("name", ["USER", "HOME", "LOGNAME"])
def test_env_of_a_caller_variable_gets_a_note(name: str) -> None:
    notes = [str(n) for n in dockerfile_to_def(f"FROM a\nENV {name}=x\nENV OTHER=y\n").notes]
    assert notes == [
        f"Dockerfile:2: ENV {name}: %environment sets ${name} for every caller at run time "
        f"(Apptainer runs as the caller, whose own ${name} is replaced); "
        "drop it unless the program needs it"
    ]
