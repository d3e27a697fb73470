"""The non-root test user jobs and hpcbridge run as (created idempotently)."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hpcbridge import runner

USER_NAME = "hpcbtest"
FIRST_UID = 2000
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["home"] = str(self.home)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> User:
        return cls(str(d["name"]), int(d["uid"]), int(d["gid"]), Path(d["home"]))


def first_free_id(start: int = FIRST_UID) -> int:
    """The first number >= ``start`` free both as a uid and as a gid."""
    used_uids = {p.pw_uid for p in pwd.getpwall()}
    used_gids = {g.gr_gid for g in grp.getgrall()}
    n = start
    while n in used_uids or n in used_gids:
        n += 1
    return n


def ensure_user(name: str = USER_NAME) -> User:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        num = first_free_id()
        try:
            grp.getgrnam(name)
        except KeyError:
            runner.run(["groupadd", "-g", str(num), name])
        gid = grp.getgrnam(name).gr_gid
        runner.run(
            [
                "useradd",
                "-m",
                "-d",
                f"/home/{name}",
                "-u",
                str(num),
                "-g",
                str(gid),
                "-s",
                "/bin/bash",
                name,
            ]
        )
        pw = pwd.getpwnam(name)
    home = Path(pw.pw_dir)
    if not home.is_dir():
        home.mkdir(parents=True)
        os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o755)
    return User(name, pw.pw_uid, pw.pw_gid, home)


def as_user_argv(user: User, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` (real and effective ids, supplementary groups)."""
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--init-groups",
        "--",
        *argv,
    ]


def check_readable(user: User, repo: Path = REPO) -> None:
    """Fail with a clear message if the test user cannot run the repo's venv Python."""
    python = repo / ".venv" / "bin" / "python"
    if not python.exists():
        raise RuntimeError(
            f"{python} is missing: run `make venv` (builds it from /usr/bin/python3)"
        )
    target = python.resolve()
    if str(target).startswith("/root"):
        raise RuntimeError(
            f"{python} points to {target}, under /root, which the test user {user.name} cannot read:"
            " rebuild the venv from /usr/bin/python3 (rm -rf .venv && make venv)"
        )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(user.home)}
    done = runner.run(
        as_user_argv(user, [str(python), "-c", "import hpcbridge, click, jinja2, zstandard"]),
        env=env,
        cwd="/",
        check=False,
        timeout=60,
    )
    if not done.ok:
        raise RuntimeError(
            f"the test user {user.name} cannot use {python} (repo {repo}): "
            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}; "
            "make the repo and its .venv world-readable (chmod -R o+rX) and the venv built from "
            "/usr/bin/python3"
        )
