"""``hpcbridge completion``: print click's shell completion script."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_HPCBRIDGE_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    Enable it for every new shell:
      bash:  echo 'eval "$(hpcbridge completion bash)"' >> ~/.bashrc
      zsh:   echo 'eval "$(hpcbridge completion zsh)"' >> ~/.zshrc
      fish:  hpcbridge completion fish > ~/.config/fish/completions/hpcbridge.fish

    Commands, options, choices and file names complete; the script asks
    hpcbridge itself (through the _HPCBRIDGE_COMPLETE variable), so it stays
    right after upgrades.
    """
    from click.shell_completion import get_completion_class

    from hpcbridge.cli import cli

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"click has no completion for {shell}")
    click.echo(cls(cli, {}, "hpcbridge", COMPLETE_VAR).source(), nl=False)
