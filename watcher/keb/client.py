"""The KEB orchestration API over HTTP: the only module in keb-watcher that talks to httpx.

:class:`KebClient` knows the endpoints and how to page through them; every request it makes
goes through :meth:`watcher.keb.session.Session.call`, which bounds concurrency, adds the bearer
token, retries what is worth retrying and maps every failure onto :mod:`watcher.errors`.

KEB facts relied on (docs/keb-api.md): lists are ``{"data", "count", "totalCount"}``, oldest first,
``page_size`` at most 100 (§2.9); ``operationStats`` only on the single GET (§0.3); KEB errors
are ``{"error": "..."}`` JSON while the Istio gateway answers 401/403 in plain text (§5); retry
wants exactly ``application/x-www-form-urlencoded`` with repeated ``operation-id`` (§2.6).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from watcher import __version__
from watcher.core.models import (
    MAX_PAGE_SIZE,
    Operation,
    OperationDetail,
    Orchestration,
    Page,
    parse_page,
)
from watcher.errors import ConfigError, KebListChanged, KebRequestError, KebResponseError
from watcher.keb._httpx import httpx
from watcher.keb.auth import TokenProvider
from watcher.keb.paging import (
    MAX_TOTAL_COUNT,
    check_pages,
    page_count,
    server_page_limit,
)
from watcher.keb.retry import RetryPolicy
from watcher.keb.session import Request, RequestStats, Session

log = logging.getLogger("watcher.keb")

#: KEB's retry handler compares the Content-Type exactly; anything else gets 415 (§2.6).
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

T = TypeVar("T")


USER_AGENT = f"keb-watcher/{__version__}"
DEFAULT_RETRY = RetryPolicy()
#: Concurrent page readers of one list sweep (the client's ``concurrency`` bounds them too).
SWEEP_READERS = 8


class KebClient:
    """An async client for KEB's orchestration API.

    ::

        async with KebClient("https://kyma-env-broker.example.com", FileToken(path)) as keb:
            failed = await keb.list_operations(orchestration_id, states=["failed"])

    ``transport`` and ``sleep`` are the test seams (``httpx.MockTransport``, a recording
    sleep). ``concurrency`` bounds the requests in flight across the whole client. Like the
    ``httpx.AsyncClient`` inside it, a client belongs to the event loop it is first used in.
    """

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider,
        *,
        timeout: float = 30.0,
        concurrency: int = 8,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        user_agent: str = USER_AGENT,
        ca_file: Path | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._base_url = _base_url(base_url)
        self._page_size = MAX_PAGE_SIZE
        self._session = Session(
            self._base_url,
            auth,
            timeout=timeout,
            concurrency=concurrency,
            retry=retry,
            transport=transport,
            sleep=sleep,
            user_agent=user_agent,
            ca_file=ca_file,
        )
        self.stats: RequestStats = self._session.stats

    @property
    def base_url(self) -> str:
        return str(self._base_url)

    async def __aenter__(self) -> KebClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.aclose()

    def __repr__(self) -> str:
        return f"KebClient({self.base_url!r})"

    # -- endpoints ------------------------------------------------------------------------

    async def get_orchestration(self, orchestration_id: str) -> Orchestration:
        """``GET /orchestrations/{id}``: the only response that carries ``operationStats``."""
        req = Request("GET", f"/orchestrations/{_segment(orchestration_id)}")
        body = await self._session.call(req)
        return _parse(req, lambda: Orchestration.from_json(body))

    async def list_orchestrations_page(
        self, *, page: int = 1, page_size: int = MAX_PAGE_SIZE, states: Sequence[str] = ()
    ) -> Page[Orchestration]:
        """One page of ``GET /orchestrations`` (oldest first, no ``operationStats``)."""
        return await self._page("/orchestrations", page, page_size, states, Orchestration.from_json)

    async def list_orchestrations(self, states: Sequence[str] = ()) -> list[Orchestration]:
        """Every orchestration matching ``states`` (all if empty), oldest first."""
        return await self._all_pages(
            "/orchestrations", states, Orchestration.from_json, _orchestration_id
        )

    async def list_operations_page(
        self,
        orchestration_id: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        states: Sequence[str] = (),
    ) -> Page[Operation]:
        """One page of ``GET /orchestrations/{id}/operations``."""
        path = f"/orchestrations/{_segment(orchestration_id)}/operations"
        return await self._page(path, page, page_size, states, Operation.from_json)

    async def list_operations(
        self,
        orchestration_id: str,
        states: Sequence[str] = (),
        *,
        max_pages: int | None = None,
    ) -> list[Operation]:
        """Every operation of an orchestration matching ``states``, in KEB's (creation) order.

        The pages are checked against each other; see :meth:`_all_pages`. With ``max_pages``,
        a list whose page 1 claims more pages raises :class:`KebListChanged` instead of
        reading them (the caller's request budget).
        """
        path = f"/orchestrations/{_segment(orchestration_id)}/operations"
        return await self._all_pages(path, states, Operation.from_json, _operation_id, max_pages)

    async def get_operation(self, orchestration_id: str, operation_id: str) -> OperationDetail:
        """``GET /orchestrations/{id}/operations/{operation_id}``, with its cluster/Kyma config."""
        path = f"/orchestrations/{_segment(orchestration_id)}/operations/{_segment(operation_id)}"
        req = Request("GET", path)
        body = await self._session.call(req)
        return _parse(req, lambda: OperationDetail.from_json(body))

    async def cancel(self, orchestration_id: str) -> None:
        """``PUT /orchestrations/{id}/cancel``. KEB answers 200 even when nothing changes."""
        await self._session.call(
            Request("PUT", f"/orchestrations/{_segment(orchestration_id)}/cancel")
        )

    async def retry(
        self, orchestration_id: str, operation_ids: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``POST /orchestrations/{id}/retry``; no IDs means every failed operation.

        Returns KEB's ``RetryResponse`` (``retryShoots``, ``invalidOperations``, ``msg``...).
        Not resent after a failure KEB may have acted on: a retry creates new operations.
        """
        body = httpx.QueryParams([("operation-id", op_id) for op_id in operation_ids])
        req = Request(
            "POST",
            f"/orchestrations/{_segment(orchestration_id)}/retry",
            content=str(body).encode("ascii"),
            headers=(("Content-Type", FORM_CONTENT_TYPE),),
            idempotent=False,
        )
        answer = await self._session.call(req)
        if not isinstance(answer, dict):
            raise KebResponseError(f"KEB {req.label}: expected a JSON object, got {answer!r:.80}")
        return answer

    # -- paging ---------------------------------------------------------------------------

    async def _page(
        self,
        path: str,
        page: int,
        page_size: int,
        states: Sequence[str],
        parse_item: Callable[[object], T],
    ) -> Page[T]:
        if page < 1:
            raise ValueError(f"page must be at least 1, got {page}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        if isinstance(states, str):
            raise TypeError("states must be a sequence of state names, not a string")
        params = (("page", str(page)), ("page_size", str(page_size)))
        req = Request("GET", path, params + tuple(("state", state) for state in states))
        body = await self._session.call(req)
        return _parse(req, lambda: parse_page(body, parse_item, f"{_noun(path)} list"))

    async def _all_pages(
        self,
        path: str,
        states: Sequence[str],
        parse_item: Callable[[object], T],
        key: Callable[[T], str],
        max_pages: int | None = None,
    ) -> list[T]:
        """All pages of a list, accepted only when they agree with each other.

        KEB pages with ``LIMIT/OFFSET`` over a table that changes under us (operations are
        appended by retries and deleted by the cleaning step), and a page and its
        ``totalCount`` are separate queries (docs/keb-api.md §12.6), so a page can repeat or skip
        rows. Page 1 gives ``totalCount``; pages 2..n are fetched concurrently. The result
        stands only if every page reported the same ``totalCount``, no ID repeats and the
        distinct items number exactly ``totalCount``; otherwise :class:`KebListChanged`.
        The list is swept once: sweeping again could repeat for as long as KEB is busy, and
        a cycle may cost no more than a full sweep plus one request (the observer defers to
        the next cycle instead).
        """
        noun = _noun(path)
        while True:
            size = self._page_size
            try:
                pages = await self._sweep(path, size, states, parse_item, max_pages)
            except KebRequestError as err:
                limit = server_page_limit(str(err)) if err.status == 400 else None
                if limit is None or limit >= size:
                    raise
                log.warning("KEB GET %s: server allows page_size %d; using it", path, limit)
                self._page_size = limit
                continue
            items, problem = check_pages(pages, key, noun)
            if not problem:
                return items
            raise KebListChanged(f"KEB GET {path}: {noun} list changed while paging ({problem})")

    async def _sweep(
        self,
        path: str,
        size: int,
        states: Sequence[str],
        parse_item: Callable[[object], T],
        max_pages: int | None = None,
    ) -> list[Page[T]]:
        """Page 1, then pages 2..n by a few concurrent readers in page order.

        What KEB claims is checked against what it delivers (§12.6: a page and its
        ``totalCount`` are separate queries, and a damaged or hostile answer can claim
        anything): a ``totalCount`` above :data:`MAX_TOTAL_COUNT` is refused, and once a page
        comes back short before the claimed end no further page is asked for. So a claimed
        total of 1,000,000 with 6 real items costs a handful of requests, not 10,000.
        """
        first = await self._page(path, 1, size, states, parse_item)
        total = first.total_count
        if total > MAX_TOTAL_COUNT:
            raise KebResponseError(f"KEB GET {path}: implausible totalCount {total}")
        last = page_count(total, size)
        if max_pages is not None and last > max_pages:
            raise KebListChanged(
                f"KEB GET {path}: {total} items on {last} pages, more than the {max_pages} "
                "this cycle can afford"
            )
        if last == 1 or len(first.items) < size:
            return [first]
        pages: dict[int, Page[T]] = {1: first}
        numbers = iter(range(2, last + 1))
        short = False

        async def reader() -> None:
            nonlocal short
            for number in numbers:
                if short:
                    return
                page = await self._page(path, number, size, states, parse_item)
                pages[number] = page
                if number < last and len(page.items) < size:
                    short = True  # the list ends before its claimed end: stop asking

        readers = [asyncio.create_task(reader()) for _ in range(min(SWEEP_READERS, last - 1))]
        try:
            await asyncio.gather(*readers)
        except BaseException:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            raise
        return [pages[n] for n in sorted(pages)]


# -- helpers --------------------------------------------------------------------------------


def _parse(req: Request, build: Callable[[], T]) -> T:
    """Run a models parser, naming the request when KEB's JSON is not the expected shape."""
    try:
        return build()
    except (KebResponseError, ValueError, TypeError, OverflowError) as exc:
        raise KebResponseError(f"KEB {req.label}: unexpected response: {exc}") from exc


def _operation_id(item: Operation) -> str:
    return item.operation_id


def _orchestration_id(item: Orchestration) -> str:
    return item.orchestration_id


def _noun(path: str) -> str:
    return "operation" if path.endswith("/operations") else "orchestration"


def _segment(value: str) -> str:
    """``value`` as one URL path segment; httpx would resolve ``.``/``..`` away."""
    if value in ("", ".", ".."):
        raise ValueError(f"invalid KEB ID {value!r}")
    return quote(value, safe="")


def _base_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL as exc:
        raise ConfigError(f"invalid KEB URL {raw!r}: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"invalid KEB URL {raw!r}: expected http(s)://host[:port][/path]")
    if url.userinfo:
        raise ConfigError("invalid KEB URL: credentials in the URL are not supported")
    return url.copy_with(query=None, fragment=None)
