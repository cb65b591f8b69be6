"""Current KEB's read API for the fleet: ``GET /runtimes`` (and ``/events``) over HTTP.

KEB facts relied on (docs/keb-runtimes-api.md, "§"):

* pages by ``page``/``page_size`` (at most 100), **oldest first**, offset-based and without a
  snapshot: rows before the cursor that leave the set make later rows skip a page, and
  ``totalCount`` is a separate query (§4). A walk stops when the rows read reach the latest
  ``totalCount`` or a page comes back empty; it never trusts a short page alone, and never
  reads more than the first answer's pages plus a margin;
* list filters are **repeated** parameters (``account=A&account=B``): KEB never splits
  commas (§2.1); boolean parameters count only as the exact string ``true`` (§2.1), so the
  client sends a flag as ``true`` or not at all;
* ``op_detail=all`` loads every operation of every runtime: it is sent only with
  ``instance_id`` filters; fleet listings send ``op_detail=last`` (§3.5, §8);
* 401/403 come from Istio as plain text, KEB's own errors as JSON 400/500 (§1.3, §2.4): a 403
  names the groups ``/runtimes`` needs;
* one runtime whose last operation is a legacy ``upgradeKyma`` fails every
  ``op_detail=last`` page it is on with a JSON 500 (§2.4): the page is read again in smaller
  pages down to the one position that fails, which is read with ``op_detail=all`` (that mode
  skips legacy operations) to learn which runtime it is. It is reported once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from watcher.core.fleet import FleetRuntime, parse_runtimes_page
from watcher.core.models import MAX_PAGE_SIZE, Page
from watcher.errors import KebAuthError, KebResponseError, KebUnsupportedType
from watcher.keb._httpx import httpx
from watcher.keb.auth import TokenProvider
from watcher.keb.client import DEFAULT_RETRY, USER_AGENT, _base_url
from watcher.keb.retry import RetryPolicy
from watcher.keb.session import Request, Session

log = logging.getLogger("watcher.keb")

#: Instance IDs per ``instance_id`` request: 50 UUIDs keep the URL under 3 KB.
IDS_PER_REQUEST: Final = 50
#: The groups KEB's chart admits to ``/runtimes`` (``values.yaml`` ``oidc.groups``, §1.3).
RUNTIME_GROUPS: Final = ("runtimeAdmin", "runtimeOperator", "runtimeViewer")
#: Pages read beyond those the first page announced (rows added while walking).
EXTRA_PAGES: Final = 2
#: The page size a failing page is re-read with before single positions.
NARROW_STEP: Final = 10

Params = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Listing:
    """The runtimes a walk read (first sighting of each instance wins) and the instances
    that make KEB fail a page."""

    runtimes: dict[str, FleetRuntime] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def add(self, items: Iterable[FleetRuntime]) -> None:
        for runtime in items:
            self.runtimes.setdefault(runtime.instance_id, runtime)


class RuntimesClient:
    """An async client for ``GET /runtimes`` and ``GET /events``.

    ::

        async with RuntimesClient("https://kyma-env-broker.example.com", token) as keb:
            listing = await keb.listing((("plan", "aws"),), states=("updating",))
    """

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider,
        *,
        timeout: float = 30.0,
        concurrency: int = 4,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self._session = Session(
            _base_url(base_url),
            auth,
            timeout=timeout,
            concurrency=concurrency,
            retry=retry,
            transport=transport,
            sleep=asyncio.sleep,
            user_agent=USER_AGENT,
            ca_file=ca_file,
        )
        self.stats = self._session.stats
        self._reported: set[str] = set()

    async def __aenter__(self) -> RuntimesClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.aclose()

    async def aclose(self) -> None:
        await self._session.aclose()

    # -- endpoints ------------------------------------------------------------------------

    async def page(
        self, filters: Params, *, page: int = 1, page_size: int = MAX_PAGE_SIZE, op_detail: str
    ) -> Page[FleetRuntime]:
        """One page of ``GET /runtimes``."""
        if op_detail not in ("last", "all"):
            raise ValueError(f"op_detail must be 'last' or 'all', got {op_detail!r}")
        if op_detail == "all" and not (
            page_size == 1 or any(k == "instance_id" for k, _ in filters)
        ):
            raise ValueError("op_detail=all is only for instance_id filters (it loads every op)")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        for name, value in filters:
            if "," in value and name != "shoot":
                # KEB reads "a,b" as one literal value (§2.1): split before calling.
                raise ValueError(f"{name}={value!r}: one value per parameter, no commas")
        params = (
            ("page", str(page)),
            ("page_size", str(page_size)),
            *filters,
            ("op_detail", op_detail),
        )
        req = Request("GET", "/runtimes", params)
        try:
            body = await self._session.call(req)
        except KebAuthError as err:
            raise _with_groups(err) from err
        try:
            return parse_runtimes_page(body)
        except (KebResponseError, ValueError, TypeError) as exc:
            raise KebResponseError(f"KEB {req.label}: unexpected response: {exc}") from exc

    async def listing(self, filters: Params, *, states: Sequence[str] = ()) -> Listing:
        """Every runtime matching ``filters`` and ``states`` with ``op_detail=last``, oldest
        first, walking pages as the module docstring says."""
        if isinstance(states, str):
            raise TypeError("states must be a sequence of state names, not a string")
        params = filters + tuple(("state", state) for state in states)
        listing = Listing()
        number, read, last_page = 1, 0, None
        while last_page is None or number <= last_page:
            try:
                page = await self.page(params, page=number, op_detail="last")
                items = page.items
                total = page.total_count
            except KebUnsupportedType:
                items, total = await self._narrow(params, number, MAX_PAGE_SIZE, listing)
            listing.add(items)
            read += len(items)
            if last_page is None:
                last_page = -(-total // MAX_PAGE_SIZE) + EXTRA_PAGES
            if not items or read >= total:
                break
            number += 1
        return listing

    async def _narrow(
        self, params: Params, number: int, size: int, listing: Listing
    ) -> tuple[list[FleetRuntime], int]:
        """The runtimes of page ``number`` (of ``size``) that KEB failed, read in smaller
        pages; the position that still fails is read with ``op_detail=all``."""
        start = (number - 1) * size
        step = NARROW_STEP if size > NARROW_STEP and size % NARROW_STEP == 0 else 1
        items: list[FleetRuntime] = []
        total = 0
        for sub in range(start // step + 1, (start + size) // step + 1):
            try:
                page = await self.page(params, page=sub, page_size=step, op_detail="last")
                found, total = page.items, page.total_count
            except KebUnsupportedType as err:
                if step > 1:
                    found, total = await self._narrow(params, sub, step, listing)
                else:
                    page = await self.page(params, page=sub, page_size=1, op_detail="all")
                    found, total = page.items, page.total_count
                    for runtime in found:
                        listing.unreadable.append(runtime.instance_id)
                        if runtime.instance_id not in self._reported:
                            self._reported.add(runtime.instance_id)
                            log.info(
                                "runtime %s makes KEB fail every op_detail=last page it is on "
                                "(%s); it is read on its own",
                                runtime.instance_id,
                                err,
                            )
            items.extend(found)
            if len(found) < step:
                break
        return items, total

    async def by_instances(
        self, instance_ids: Iterable[str], *, states: Sequence[str] = ("all",)
    ) -> Listing:
        """The runtimes with these instance IDs, every operation KEB lists (``op_detail=all``;
        ``update`` still holds only the two newest). ``state=all`` includes suspended and
        deprovision-incomplete runtimes, which the default filter hides (§2.3)."""
        listing = Listing()
        ids = sorted(set(instance_ids))
        for start in range(0, len(ids), IDS_PER_REQUEST):
            chunk = tuple(("instance_id", i) for i in ids[start : start + IDS_PER_REQUEST])
            params = chunk + tuple(("state", state) for state in states)
            number = 1
            while True:
                page = await self.page(params, page=number, op_detail="all")
                listing.add(page.items)
                if not page.items or number * MAX_PAGE_SIZE >= page.total_count:
                    break
                number += 1
        return listing

    async def deprovisioned(self, instance_ids: Iterable[str]) -> set[str]:
        """Which of these instances the archive lists as deprovisioned
        (``state=deprovisioned&instance_id=...``, §4.3)."""
        found: set[str] = set()
        ids = sorted(set(instance_ids))
        for start in range(0, len(ids), IDS_PER_REQUEST):
            chunk = tuple(("instance_id", i) for i in ids[start : start + IDS_PER_REQUEST])
            page = await self.page((*chunk, ("state", "deprovisioned")), op_detail="last")
            found.update(r.instance_id for r in page.items)
        return found & set(ids)

    async def events(self, instance_ids: Sequence[str]) -> list[dict[str, object]]:
        """``GET /events`` for these instances. Never called without one: an empty filter
        returns every event of the last 14 days (§5)."""
        ids = [i for i in instance_ids if i]
        if not ids:
            raise ValueError("events need at least one instance ID (an empty filter reads all)")
        req = Request("GET", "/events", (("instance_ids", ",".join(ids)),))
        try:
            body = await self._session.call(req)
        except KebAuthError as err:
            raise _with_groups(err, events=True) from err
        if body is None:
            return []
        if not isinstance(body, list):
            raise KebResponseError(f"KEB {req.label}: expected a JSON array or null")
        return [item for item in body if isinstance(item, dict)]


def _with_groups(err: KebAuthError, *, events: bool = False) -> KebAuthError:
    """A 403 that says which groups the token needs; Istio's body never does (§1.3)."""
    if err.status != 403:
        return err
    groups = RUNTIME_GROUPS[:2] if events else RUNTIME_GROUPS
    path = "/events" if events else "/runtimes"
    return KebAuthError(
        f"{err} ({path} needs a token whose groups include {' or '.join(groups)}; "
        "a landscape may rename them)",
        status=403,
    )
