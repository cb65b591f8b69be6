"""``watcher completion bash|zsh|fish``: print the shell's completion script, and what it
completes beyond commands and options.

click does the completing (``click.shell_completion``): the script calls ``watcher`` again
with ``_WATCHER_COMPLETE`` set, and the root group answers with the commands and options
that fit what is typed so far. :func:`complete_ids` adds the IDs of tracked orchestrations
(read from the database of the configuration in use, the state as help), and
:func:`complete_states` the state names, after a comma too (``--state failed,in<Tab>``).
Completion never fails loudly: without a readable configuration or database it offers no IDs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
#: How ``--state`` values are offered: ``kcp``'s one-word spellings (no quoting needed).
STATE_WORDS = ("pending", "inprogress", "canceling", "retrying", "succeeded", "failed", "canceled")


def complete_states(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """State names that start what is typed after the last comma, the earlier ones kept.

    >>> [i.value for i in complete_states(None, None, "failed,c")]  # type: ignore[arg-type]
    ['failed,canceling', 'failed,canceled']
    """
    done, _, last = incomplete.rpartition(",")
    head = f"{done}," if done else ""
    given = {s.strip().lower() for s in done.split(",")}
    return [
        CompletionItem(head + word)
        for word in STATE_WORDS
        if word.startswith(last.strip().lower()) and word not in given
    ]


def complete_ids(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The tracked orchestrations whose IDs start with what is typed, their state as help."""
    logging.disable(logging.CRITICAL)  # nor a warning about the file's mode: this is a Tab
    try:
        from watcher.app import Watcher
        from watcher.config import load_config

        path = ctx.find_root().params.get("config_path")
        config = load_config(Path(path) if path else None, os.environ, local=True)
        if config.source is None or not Path(config.storage.path).exists():
            return []
        with Watcher(config) as app:
            tracked = app.tracked()
    except Exception:  # a shell's Tab must never print a traceback or an error
        return []
    finally:
        logging.disable(logging.NOTSET)
    typed = incomplete.lower()
    return [
        CompletionItem(t.orchestration_id, help=t.state or "no baseline yet")
        for t in tracked
        if t.orchestration_id.startswith(typed)
    ]


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
