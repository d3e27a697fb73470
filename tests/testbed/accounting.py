"""Optional accounting: a private MariaDB on a loopback port plus slurmdbd.

MariaDB does not daemonize; like every testbed daemon it is started detached
(``setsid``) in the foreground and recorded by PID.  slurmdbd authenticates with
the testbed's own munge socket (``AuthInfo=socket=...``); slurm.conf then needs
``AccountingStoragePass=<that socket>``.
"""

from __future__ import annotations

import time
from pathlib import Path

from hpcbridge import runner
from tests.testbed import config as C
from tests.testbed import sid
from tests.testbed.procs import PidRegistry, start_daemon, wait_for
from tests.testbed.slurm import client_env, daemon_env, write_if_changed
from tests.testbed.users import User

DB_USER = "slurm"
DB_PASSWORD = "hpcbridge-testbed"


def _db_socket(layout: C.Layout) -> Path:
    return layout.db_dir / "mysqld.sock"


def _mariadb_argv(layout: C.Layout, release: str) -> list[str]:
    return [
        "mariadbd",
        "--no-defaults",
        f"--datadir={layout.db_dir / 'data'}",
        f"--socket={_db_socket(layout)}",
        f"--pid-file={layout.db_dir / 'mariadbd.pid'}",
        "--bind-address=127.0.0.1",
        f"--port={C.ports(release).mariadb}",
        "--user=root",
        "--skip-name-resolve",
        f"--log-error={layout.log / 'mariadbd.log'}",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        "--innodb-lock-wait-timeout=900",
        "--max-connections=64",
    ]


def _sql(layout: C.Layout, statement: str) -> runner.Completed:
    return runner.run(
        ["mariadb", "--no-defaults", f"--socket={_db_socket(layout)}", "-uroot", "-e", statement],
        check=False,
        timeout=30,
    )


def ensure_mariadb(layout: C.Layout, pids: PidRegistry, release: str) -> int:
    data = layout.db_dir / "data"
    layout.db_dir.mkdir(parents=True, exist_ok=True)
    if not (data / "mysql").is_dir():
        runner.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            timeout=300,
        )
    pid = pids.alive("mariadbd")
    if pid is None:
        pids.forget("mariadbd")
        _db_socket(layout).unlink(missing_ok=True)
        pid = start_daemon(
            pids,
            "mariadbd",
            _mariadb_argv(layout, release),
            layout.log / "mariadbd.out",
            env=daemon_env(layout),
        )
    wait_for("mariadbd", lambda: _sql(layout, "SELECT 1").ok, 60, pid=pid)
    for stmt in (
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'",
        f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1'",
    ):
        done = _sql(layout, stmt)
        if not done.ok:
            raise RuntimeError(f"mariadb: {stmt}: {done.stderr.strip()}")
    return pid


def ensure_slurmdbd(layout: C.Layout, pids: PidRegistry, release: str) -> int:
    text = C.slurmdbd_conf(layout, DB_USER, DB_PASSWORD, release)
    write_if_changed(layout.slurmdbd_conf, text, 0o600)
    pid = pids.alive("slurmdbd")
    if pid is None:
        pids.forget("slurmdbd")
        env = daemon_env(layout)
        env["SLURM_CONF"] = str(layout.slurm_conf)
        # slurmdbd reads slurmdbd.conf next to slurm.conf (the directory of SLURM_CONF).
        argv = ["slurmdbd", "-D"]
        if sid.is_sid(layout):
            argv = sid.daemon_argv(layout, None, ["/usr/sbin/slurmdbd", "-D"])
        pid = start_daemon(pids, "slurmdbd", argv, layout.log / "slurmdbd.out", env=env)
    wait_for("slurmdbd", lambda: dbd_answers(layout), 60, pid=pid)
    return pid


def dbd_answers(layout: C.Layout) -> bool:
    done = runner.run(
        ["sacctmgr", "-n", "-P", "list", "cluster", "format=cluster"],
        env=client_env(layout),
        check=False,
        timeout=20,
    )
    return done.ok


def register(layout: C.Layout, user: User, release: str) -> None:
    """Cluster, account and users in the accounting database (idempotent)."""
    env = client_env(layout)

    def sacctmgr(*args: str) -> None:
        done = runner.run(["sacctmgr", "-i", *args], env=env, check=False, timeout=30)
        text = done.stdout + done.stderr
        known = ("Nothing new added", "already exists", "Already existing", "Nothing added.")
        if not done.ok and not any(k in text for k in known):
            raise RuntimeError(f"sacctmgr {' '.join(args)}: {text.strip()}")

    cluster = C.CLUSTERS[release]
    sacctmgr("add", "cluster", cluster)
    sacctmgr("add", "account", C.ACCOUNT, f"cluster={cluster}", "description=testbed")
    for name in ("root", user.name):
        sacctmgr("add", "user", name, f"account={C.ACCOUNT}", f"cluster={cluster}")


def ensure_accounting(layout: C.Layout, pids: PidRegistry, user: User, release: str) -> None:
    ensure_mariadb(layout, pids, release)
    ensure_slurmdbd(layout, pids, release)
    register(layout, user, release)


def stop_accounting(pids: PidRegistry) -> None:
    pids.stop("slurmdbd")
    pids.stop("mariadbd", timeout=30)


def wait_sacct(layout: C.Layout, timeout: float = 30) -> None:
    env = client_env(layout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runner.run(["sacct", "-n", "-X"], env=env, check=False, timeout=20).ok:
            return
        time.sleep(0.5)
    raise TimeoutError("sacct does not answer")
