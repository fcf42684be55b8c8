"""Open the campaign's database as the config describes it (no lock: Campaign and scripts)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core.database import DatabaseManager


def open_database(config: MLIPConfig, path: Path | None = None) -> DatabaseManager:
    return DatabaseManager(
        path or config.workflow.database_path,
        min_distance=config.system.min_distance,
        allowed_elements=config.system.elements,
    )


def can_write(database: Path) -> bool:
    """SQLite writes the file and, beside it, its -wal and -shm files."""
    folder = os.access(database.parent, os.W_OK | os.X_OK)
    return folder and os.access(database, os.W_OK)


def snapshot_of(database: Path) -> Path:
    """A private copy of a database that cannot be written here (a read-only mount), with its
    write-ahead log, for commands that only read; removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="mlip-autopipe-readonly-"))
    atexit.register(shutil.rmtree, folder, True)
    copy = folder / database.name
    shutil.copyfile(database, copy)
    log = database.with_name(database.name + "-wal")  # labels not yet checkpointed
    if log.is_file():
        shutil.copyfile(log, copy.with_name(copy.name + "-wal"))
    return copy
