"""The store's seal: no ``sqlite3`` exception leaves the store package.

Every public method of a sealed class runs inside :func:`sealed`'s wrapper, which turns a
``sqlite3.Error`` (a locked, full, corrupted or vanished database, reads included) into a
:class:`~watcher.errors.StoreError` naming the database file and what was being done. Writes
inside :meth:`watcher.store.database.Store.transaction` are mapped there already, with the
promise that nothing was changed.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from watcher.errors import StoreError

C = TypeVar("C", bound=type)


def _path_of(owner: Any) -> str:
    path = getattr(owner, "path", None)
    if path is None:
        path = getattr(getattr(owner, "store", None), "path", "database")
    return str(path)


def _guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    what = name.replace("_", " ")
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def guarded_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise StoreError(f"{_path_of(self)}: {what} failed: {exc}") from exc

        return guarded_async

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"{_path_of(self)}: {what} failed: {exc}") from exc

    return guarded


def sealed(cls: C) -> C:
    """Wrap every public plain method of ``cls`` (not properties, not context managers made
    with ``contextlib``, which map their own errors) so that sqlite3 errors become
    :class:`~watcher.errors.StoreError`."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if getattr(member, "__wrapped__", None) is not None:
            continue  # contextmanager and friends: they handle errors themselves
        setattr(cls, name, _guard(name, member))
    return cls
