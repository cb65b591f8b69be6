"""Joining the pages of a KEB list, and deciding whether they describe one consistent list.

KEB pages with ``ORDER BY created_at LIMIT page_size OFFSET (page-1)*page_size`` over tables
that change while we read them: retries append operations, the cleaning step deletes those of
deprovisioned instances (docs/keb-api.md §2.10). Between two page requests a row can therefore shift
onto the next page (seen twice) or back onto the previous one (never seen), and ``totalCount``
can move. Pure: the client does the fetching.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from watcher.core.models import Page

#: A ``totalCount`` beyond this is treated as a damaged response rather than paged through.
MAX_TOTAL_COUNT = 1_000_000

_PAGE_LIMIT_RE = re.compile(r"maxPage\((\d+)\)")

T = TypeVar("T")


def page_count(total_count: int, page_size: int) -> int:
    """How many pages hold ``total_count`` items; page 1 always exists.

    >>> page_count(250, 100), page_count(0, 100), page_count(100, 100)
    (3, 1, 1)
    """
    return max(1, math.ceil(total_count / page_size))


def check_pages(
    pages: Sequence[Page[T]], key: Callable[[T], str], noun: str = "item"
) -> tuple[list[T], str]:
    """Join pages of one list; the second value names the inconsistency, or is ``""``.

    The pages agree when every one reports the same ``totalCount``, no ID appears twice and
    the number of items equals ``totalCount``.

    >>> check_pages([Page(["a", "b"], 2, 3), Page(["c"], 1, 3)], str)
    (['a', 'b', 'c'], '')
    >>> check_pages([Page(["a", "b"], 2, 3), Page(["b"], 1, 3)], str, "operation")[1]
    'operation b on pages 1 and 2'
    >>> check_pages([Page(["a", "b"], 2, 3), Page(["c"], 1, 2)], str)[1]
    'totalCount 3 -> 2'
    """
    items = [item for page in pages for item in page.items]
    if not pages:
        return items, ""
    expected = pages[0].total_count
    for page in pages[1:]:
        if page.total_count != expected:
            return items, f"totalCount {expected} -> {page.total_count}"
    seen: dict[str, int] = {}
    for number, page in enumerate(pages, start=1):
        for item in page.items:
            item_id = key(item)
            if item_id in seen:
                return items, f"{noun} {item_id} on pages {seen[item_id]} and {number}"
            seen[item_id] = number
    if len(items) != expected:
        return items, f"{len(items)} {noun}s received for totalCount {expected}"
    return items, ""


def server_page_limit(message: str) -> int | None:
    """The server's ``MaxPaginationPage`` from its 400 text, if that is what it complained of.

    KEB's limit is configurable (``MaxPaginationPage`` in ``cmd/broker/main.go``, default 100).

    >>> server_page_limit("while getting query parameters: pageSize is bigger than maxPage(50)")
    50
    """
    match = _PAGE_LIMIT_RE.search(message)
    if match is None or int(match.group(1)) < 1:
        return None
    return int(match.group(1))
