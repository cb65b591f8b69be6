"""Which settings a command uses: a command checks only the configuration it uses
(docs/contract.md §2.2).

``list``, ``history``, ``outbox``, ``render``, ``untrack``, ``silence`` and ``completion`` read
the database and templates alone. For them, an unset ``${VAR}`` in a connection setting of KEB,
Slack or the service (a token, URL, token file or command, channel) is no error: the loader
leaves the setting unset and keeps its error in ``Config.unresolved``, which
:meth:`~watcher.config.settings.Config.require` raises if anything reaches for it. What they
render (``keb.name``, the mention, links) and what they open (``storage.path``) stays required.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from watcher.config.settings import SECTIONS

#: Sections whose connection settings a local command never uses.
_SECTIONS: Final = ("keb", "slack", "service")
#: The kinds of setting that connect (strings; a duration in ${VAR} is still an error).
_KINDS: Final = frozenset({"secret", "secret_url", "url", "base_url", "path", "text", "channel"})
#: In those sections, but rendered in every message.
_RENDERED: Final = frozenset({"keb.name"})


def unused_by_local_commands(key: str) -> bool:
    """Whether a command that reads only the database and templates may leave the dotted
    ``key`` unset when its ``${VAR}`` is.

    >>> unused_by_local_commands("keb.token"), unused_by_local_commands("slack.base_url")
    (True, True)
    >>> unused_by_local_commands("keb.name"), unused_by_local_commands("storage.path")
    (False, False)
    >>> unused_by_local_commands("slack.digest_interval")
    False
    """
    section, _, name = key.partition(".")
    if section not in _SECTIONS or key in _RENDERED:
        return False
    spec = {f.name: f for f in dataclasses.fields(SECTIONS[section])}.get(name)
    return spec is not None and spec.metadata["kind"] in _KINDS
