"""The ``hpcbridge`` command line.

Subcommands are loaded lazily (``hpcbridge --help`` imports none of them), from
the table :data:`COMMANDS`: name -> ("module:attribute", short help).  The CLI
is the only layer that turns :class:`~hpcbridge.errors.HpcbridgeError` into a
message and an exit code.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any, Optional

import click

from hpcbridge import __version__
from hpcbridge.errors import ExitCode, HpcbridgeError

# name -> (import path, one-line help shown by `hpcbridge --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("hpcbridge.cli.convert:convert", "Convert a Docker/OCI image to a cached SIF."),
    "images": ("hpcbridge.cli.images:images", "List, inspect and prune cached SIF images."),
    "render": ("hpcbridge.cli.render:render", "Print the sbatch script for a job file."),
    "sbatch": (
        "hpcbridge.cli.sbatch:sbatch",
        "pyxis-style sbatch: run a batch script in a container.",
    ),
    "srun": (
        "hpcbridge.cli.srun:srun",
        "pyxis-style srun: an interactive step in a container.",
    ),
    "config": ("hpcbridge.cli.config:config", "Show or check the layered configuration."),
    "submit": ("hpcbridge.cli.submit:submit", "Convert, render and submit a job; record it."),
    "status": ("hpcbridge.cli.track:status", "Show the state of submissions and their tasks."),
    "watch": ("hpcbridge.cli.track:watch", "Follow a submission until it is done."),
    "resubmit": ("hpcbridge.cli.track:resubmit", "Submit the failed tasks of a submission again."),
    "cancel": ("hpcbridge.cli.track:cancel", "Cancel a submission or some of its tasks."),
    "logs": ("hpcbridge.cli.track:logs", "Print or follow the log of a task."),
    "list": ("hpcbridge.cli.track:list_", "List recent submissions."),
    "rerun": ("hpcbridge.cli.submit:rerun", "Submit a recorded submission again, identically."),
    "report": (
        "hpcbridge.cli.report:report",
        "Efficiency report of a submission and its resubmissions.",
    ),
    "doctor": ("hpcbridge.cli.doctor:doctor", "Preflight checks of this machine and a job."),
    "recipe": (
        "hpcbridge.cli.recipe:recipe",
        "Translate a Dockerfile to a definition file and back.",
    ),
    "wrap": ("hpcbridge.cli.wrap:wrap", "Write wrapper executables for commands in an image."),
    "export": ("hpcbridge.cli.export:export", "Export a submission as a reproducible bundle."),
    "completion": (
        "hpcbridge.cli.completion:completion",
        "Print the shell completion script for bash, zsh or fish.",
    ),
}


def _available(import_path: str) -> bool:
    module = import_path.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name, (path, _) in COMMANDS.items() if _available(path))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in COMMANDS:
            return cmd
        import_path, _ = COMMANDS[cmd_name]
        if not _available(import_path):
            return None
        module_name, attr = import_path.split(":", 1)
        obj = getattr(importlib.import_module(module_name), attr)
        if not isinstance(obj, click.Command):
            raise TypeError(f"{import_path} is not a click command")
        return obj

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx) if name in COMMANDS]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="hpcbridge")
@click.option(
    "-v",
    "--debug",
    is_flag=True,
    help="Log what hpcbridge does (commands it runs, files it writes).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hpcbridge: Docker/OCI images as Apptainer jobs on Slurm.

    Convert images to SIF once per digest, render sbatch scripts from a job file
    and the site's configuration, submit array jobs and track them politely.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="hpcbridge: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: Optional[list[str]] = None) -> Any:
    """Console-script entry point: run the CLI, map errors to one line + exit code."""
    try:
        rv = cli.main(args=argv, prog_name="hpcbridge", standalone_mode=False)
    except HpcbridgeError as exc:
        click.echo(f"hpcbridge: error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # a group without its command: its help (click's exit status 2)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        from hpcbridge.cli._usage import usage_line

        click.echo(f"hpcbridge: error: {usage_line(exc, sorted(COMMANDS))}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"hpcbridge: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("hpcbridge: aborted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except KeyboardInterrupt:
        click.echo("hpcbridge: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        sys.exit(int(ExitCode.FAILURE))
    # Commands report a non-zero status with ctx.exit(n), which click returns here.
    sys.exit(rv if isinstance(rv, int) else 0)
