"""httpx, loaded without its command-line client.

httpx's package imports its own command-line client (``httpx._main``: rich, pygments, click)
whenever those happen to be installed, which costs every `watcher poll` about 70 ms at start
(docs/benchmarks.md, "Start-up"). keb-watcher never uses that client. Every module of
:mod:`watcher.keb` takes httpx from here; while this module imports it, a finder declines
``httpx._main``, so httpx takes its own documented fallback (the one it takes when the
``cli`` extra is not installed). Nothing stands in for a module afterwards: the finder is
gone once httpx is loaded, a later ``import httpx._main`` loads the real client, and when
something imported httpx before keb-watcher did, that copy is used as it is (only the
saving is lost).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The one module declined while httpx loads.
COMMAND_LINE = "httpx._main"


class _DeclineCommandLine:
    """A meta path finder (the protocol is ``find_spec`` alone: subclassing
    ``importlib.abc.MetaPathFinder`` would load ``importlib.resources``, 10-15 ms at start)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname == COMMAND_LINE:
            raise ImportError(f"{COMMAND_LINE} is not loaded by keb-watcher", name=fullname)
        return None


@contextmanager
def _without_command_line() -> Iterator[None]:
    finder = _DeclineCommandLine()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


with _without_command_line():
    import httpx

__all__ = ["httpx"]
