"""Tables that fit the terminal, as ``kubectl get`` and ``kcp`` print them, down to 80 columns.

A table is a list of :class:`Column` values. :func:`fit` prints it whole when it fits (or
when there is no width: a pipe); otherwise it narrows it step by step, stopping as soon as
every line fits:

1. IDs shortened to the shortest prefix (8 characters at least) that is unique among the IDs
   known, so that every shortened ID can still be typed back (docs/contract.md §2.2);
2. columns that have a compact form switch to it (LAST POLL ``2024-05-14 08:00:00 UTC``
   becomes ``3m ago``);
3. columns are dropped, the least important first (``drop`` order); the ID and the state are
   never dropped;
4. the last column is cut with ``…``. A state is never cut.

Pure: cells are made inert (:func:`watcher.core.inert.inert`) before they are measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from watcher.core.ids import MIN_PREFIX
from watcher.core.inert import inert

GAP: Final = "  "
ELLIPSIS: Final = "…"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its header and cells. ``drop`` orders the columns that may go (1 goes
    last, higher goes first; ``0``: never); ``compact`` holds shorter cells tried before
    dropping; ``ids`` marks a column of IDs that may be shortened to unique prefixes, with
    ``short`` its header then."""

    header: str
    cells: Sequence[str]
    drop: int = 0
    compact: Sequence[str] | None = None
    ids: bool = False
    short: str | None = None


def unique_prefix_length(ids: Iterable[str], known: Iterable[str] = ()) -> int:
    """The shortest prefix length, :data:`MIN_PREFIX` at least, at which each of ``ids`` is
    unique among ``ids`` and ``known``.

    >>> unique_prefix_length(["5a3f1f5e-0000", "5a3f1f5f-0000"])
    8
    >>> unique_prefix_length(["5a3f1f5e-0001"], known=["5a3f1f5e-0002"])
    13
    """
    mine = set(ids)
    others = mine | set(known)
    length = MIN_PREFIX
    for orch_id in mine:
        for other in others - {orch_id}:
            common = 0
            for a, b in zip(orch_id, other, strict=False):
                if a != b:
                    break
                common += 1
            length = max(length, common + 1)
    return length


def lines(columns: Sequence[Column]) -> list[str]:
    """The columns aligned: each but the last as wide as its widest cell, two spaces apart."""
    rows = [[inert(c.header) for c in columns]]
    rows += [[inert(cell) for cell in row] for row in zip(*(c.cells for c in columns), strict=True)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) - 1)]
    return [
        GAP.join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def _fits(columns: Sequence[Column], width: int) -> bool:
    return all(len(line) <= width for line in lines(columns))


def fit(columns: Sequence[Column], width: int | None, known: Iterable[str] = ()) -> list[str]:
    """The table, narrowed to ``width`` as the module says (``None``: no limit). ``known``:
    every ID the user may name, for unique prefixes."""
    table = list(columns)
    if width is None or _fits(table, width):
        return lines(table)
    for i, column in enumerate(table):
        if column.ids and column.cells:
            n = unique_prefix_length(column.cells, known)
            cells = [cell[:n] for cell in column.cells]
            header = column.short or column.header
            table[i] = replace(column, cells=cells, header=header)
    if _fits(table, width):
        return lines(table)
    for i, column in enumerate(table):
        if column.compact is not None:
            table[i] = replace(column, cells=column.compact, compact=None)
    for rank in sorted({c.drop for c in table if c.drop}, reverse=True):
        if _fits(table, width):
            break
        table = [c for c in table if c.drop != rank]
    return _cut_last(table, width)


def _cut_last(columns: Sequence[Column], width: int) -> list[str]:
    """Cut the last column's cells so that every line fits ``width`` (never below its
    header's width: a table this narrow is not worth reading anyway)."""
    out = lines(columns)
    if all(len(line) <= width for line in out):
        return out
    start = max(len(line) for line in lines(columns[:-1])) + len(GAP) if len(columns) > 1 else 0
    room = max(width - start, len(columns[-1].header), 1)
    cells = [
        cell if len(inert(cell)) <= room else inert(cell)[: room - 1] + ELLIPSIS
        for cell in columns[-1].cells
    ]
    return lines([*columns[:-1], replace(columns[-1], cells=cells)])
