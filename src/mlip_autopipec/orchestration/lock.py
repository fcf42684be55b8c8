"""One orchestrating process per campaign: a lock file in the work dir."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class CampaignBusyError(RuntimeError):
    """Another mlip-autopipe process is already working on this campaign."""


@contextmanager
def campaign_lock(work_dir: Path) -> Iterator[None]:
    """Held while a command changes the campaign; released by the OS if the process dies."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / ".lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignBusyError(
                f"another mlip-autopipe process is working in {work_dir} (lock {path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
