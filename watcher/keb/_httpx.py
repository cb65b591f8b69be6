"""Load httpx without its command-line client.

httpx's package imports its own command-line client (``httpx._main``: rich, pygments, click)
whenever those happen to be installed, which costs `watcher poll` about 30 ms at every start.
keb-watcher never uses that client, so a stand-in takes its place before httpx is first
imported (:mod:`watcher.keb` imports this module first); ``python -m httpx`` in a process of
its own is unaffected.
"""

import sys
import types


def _skip_httpx_command_line() -> None:
    """Put the stand-in in place unless httpx (or its client) is already loaded."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stand_in = types.ModuleType("httpx._main")

    def main() -> None:  # pragma: no cover - never called by keb-watcher
        raise SystemExit("keb-watcher loaded httpx without its command-line client")

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stand_in


_skip_httpx_command_line()
