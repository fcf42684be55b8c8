"""One orchestrating process per campaign: locks on the work dir and on the database file.

Two configs with different work dirs but the same database would otherwise requeue each
other's running DFT and throw its results away, so the database gets a lock of its own,
next to the file it guards (found through its real path). Lock files are never followed
when they are symbolic links.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from mlip_autopipec.errors import UserError


class CampaignBusyError(UserError):
    """Another mlip-autopipe process is already working on this campaign or its database."""


class LockFileError(UserError):
    """A lock file cannot be opened safely (a symbolic link, or not writable)."""


def database_lock_path(database: Path) -> Path:
    real = database.resolve()
    return real.with_name(real.name + ".campaign-lock")  # ase.db itself uses <db>.lock


@contextmanager
def hold_lock(path: Path, what: str) -> Iterator[None]:
    """An exclusive flock on `path`; released by the OS when the process dies."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise LockFileError(
                f"lock file {path} is a symbolic link; refusing to follow it"
            ) from None
        raise LockFileError(f"cannot open lock file {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            raise CampaignBusyError(
                f"another mlip-autopipe process (pid {holder}) is working on {what} (lock {path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def campaign_lock(lock_file: Path, database: Path) -> Iterator[None]:
    """Held while a command changes the campaign: the work dir's lock, then the database's."""
    with ExitStack() as stack:
        stack.enter_context(hold_lock(lock_file, str(lock_file.parent)))
        stack.enter_context(hold_lock(database_lock_path(database), f"the database {database}"))
        yield
