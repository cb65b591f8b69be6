"""``watcher completion bash|zsh|fish``: print the shell's completion script.

click does the completing (``click.shell_completion``): the script calls ``watcher`` again
with ``_WATCHER_COMPLETE`` set, and the root group answers with the commands and options
that fit what is typed so far.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command(name="completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Example:
      watcher completion bash > ~/.local/share/bash-completion/completions/watcher
      watcher completion zsh > "${fpath[1]}/_watcher"
      watcher completion fish > ~/.config/fish/completions/watcher.fish
      eval "$(watcher completion bash)"     # this shell only
    """
    cls = get_completion_class(shell)
    assert cls is not None, f"click supports {shell}"
    root = ctx.find_root().command
    script = cls(root, {}, "watcher", "_WATCHER_COMPLETE").source()
    click.echo(script, nl=False)
