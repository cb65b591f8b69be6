"""The database file: created readable by its owner only, never created by accident, never
silently replaced.

Only ``track``, ``watch --track``, ``run`` and ``demo`` create the database (docs/contract.md
§2.5); any other command that finds none exits 2 naming the path. The database and every
folder created for it are the owner's only (0600 and 0700, whatever the umask), also when
``storage.path`` is a symbolic link to where the file will be; SQLite gives its ``-wal`` and
``-shm`` files the database file's permissions.

An existing file is checked before SQLite opens it, because SQLite takes a zero-byte file for
a new, empty database: an empty file, a file that is not SQLite or a database this process
may not write is exit 2 naming the path, for every command. :class:`FileIdentity`
notices, under a running service, that the file was deleted or replaced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from watcher.errors import UsageError

FILE_MODE = 0o600
DIR_MODE = 0o700
#: The first 16 bytes of every SQLite 3 database file.
HEADER: Final = b"SQLite format 3\x00"


def created_here(path: Path, *, create: bool) -> bool:
    """Make sure the database file at ``path`` exists; return whether it was created now.

    Without ``create`` a missing file is a :class:`UsageError` (exit 2) naming the path; so is
    an existing one that is no usable database (:func:`check_existing`). A symbolic link is
    followed: the file it points to is what is created, owner-only, with its folders.
    """
    if path.exists():
        check_existing(path)
        return False
    if not create:
        raise UsageError(
            f"{path}: no database here (check storage.path; `watcher track ID` creates it)"
        )
    path = Path(os.path.realpath(path))  # a dangling link: create what it points to
    missing = [p for p in reversed(path.parents) if not p.exists()]
    # The umask only ever removes permission bits, so these modes are what the files get.
    for folder in missing:
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:  # another process created it in between
        return False
    os.close(fd)
    return True


def check_existing(path: Path) -> None:
    """Raise :class:`UsageError` (exit 2) naming ``path`` when it is empty or this process may
    not write it. Neither opens the file: closing any descriptor of a file drops every POSIX
    lock this process holds on it, including those of SQLite's open connections (the service
    opens the database again for each page of the dashboard). The header is read only once
    SQLite has refused the file (:func:`refused`)."""
    if path.is_dir():
        return  # SQLite's own error: cannot open it
    if path.stat().st_size == 0:
        raise UsageError(
            f"{path}: the database file is empty (0 bytes), not a keb-watcher database; "
            "restore it from a backup, or remove it and track the orchestrations again"
        )
    for where in (path, path.parent):
        if not os.access(where, os.W_OK):
            what = "the database" if where == path else f"its folder {where}"
            raise UsageError(
                f"{path}: the database is read-only ({what} cannot be written by this user); "
                "every command needs to write it (its journal and the lease)"
            )


def refused(path: Path, exc: BaseException) -> UsageError | None:
    """Why SQLite refused ``path`` ("file is not a database"), when the file is not SQLite at
    all (exit 2, naming it); None when it is an SQLite file that went wrong (corrupted)."""
    try:
        with path.open("rb") as file:
            header = file.read(len(HEADER))
    except OSError:
        return None
    if header == HEADER:
        return None
    return UsageError(
        f"{path}: not an SQLite database (check storage.path; keb-watcher never overwrites a "
        "file it did not create)"
    )


class FileIdentity:
    """Which file ``path`` named when the database was opened (device and inode), and
    :meth:`lost`: why that is no longer so, if it is not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        status = path.stat()
        self._identity = (status.st_dev, status.st_ino)

    def lost(self) -> str | None:
        """None while ``path`` is still the opened, writable file; else one line saying so."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return f"{self.path}: the database file was deleted; restart keb-watcher"
        except OSError as exc:
            return f"{self.path}: cannot check the database file: {exc.strerror or exc}"
        if (status.st_dev, status.st_ino) != self._identity:
            return f"{self.path}: the database file was replaced; restart keb-watcher"
        if not os.access(self.path, os.W_OK):
            return f"{self.path}: the database file can no longer be written"
        return None


def corrupted(path: str, exc: BaseException) -> str:
    """One line for a database SQLite cannot read: what, where, what to do."""
    return (
        f"{path}: the database is corrupted ({exc}); restore it from a backup, or move it "
        "away and track the orchestrations again"
    )
