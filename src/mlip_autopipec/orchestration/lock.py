"""One orchestrating process per campaign: locks on the work dir and on the database file.

Two configs with different work dirs but the same database would otherwise requeue each
other's running DFT and throw its results away, so the database gets a lock of its own,
next to the file it guards (found through its real path). Lock files are never followed
when they are symbolic links. A database file with a second name (a hard link) is refused:
each name would get a lock and a `-wal` file of its own, which SQLite documents as a way to
corrupt the database.
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


class SharedDatabaseFileError(UserError):
    """The database file has more than one name, so no lock by name can guard it."""


def refuse_second_names(database: Path) -> None:
    """A hard link is a second name for the same file (device and inode)."""
    try:
        links = os.stat(database).st_nlink
    except FileNotFoundError:
        return  # created by this command, with one name
    except OSError as error:
        raise LockFileError(f"cannot inspect the database {database}: {error.strerror}") from None
    if links > 1:
        raise SharedDatabaseFileError(
            f"the database {database} has {links} names (hard links); each name would get its "
            "own lock and -wal file and could corrupt it: copy it, or remove the other names"
        )


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
    refuse_second_names(database)
    with ExitStack() as stack:
        stack.enter_context(hold_lock(lock_file, str(lock_file.parent)))
        stack.enter_context(hold_lock(database_lock_path(database), f"the database {database}"))
        yield
