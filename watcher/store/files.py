"""The database file: created readable by its owner only, never created by accident.

Only ``track``, ``watch --track``, ``run`` and ``demo`` create the database (docs/contract.md
§2.5); any other command that finds none exits 2 naming the path. The database and every
folder created for it are the owner's only (0600 and 0700, whatever the umask); SQLite gives
its ``-wal`` and ``-shm`` files the database file's permissions.
"""

from __future__ import annotations

import os
from pathlib import Path

from watcher.errors import UsageError

FILE_MODE = 0o600
DIR_MODE = 0o700


def created_here(path: Path, *, create: bool) -> bool:
    """Make sure the database file at ``path`` exists; return whether it was created now.

    Without ``create`` a missing file is a :class:`UsageError` (exit 2) naming the path.
    """
    if path.exists():
        return False
    if not create:
        raise UsageError(
            f"{path}: no database here (check storage.path; `watcher track ID` creates it)"
        )
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


def corrupted(path: str, exc: BaseException) -> str:
    """One line for a database SQLite cannot read: what, where, what to do."""
    return (
        f"{path}: the database is corrupted ({exc}); restore it from a backup, or move it "
        "away and track the orchestrations again"
    )
