"""Files whose presence means "finished": written under a temporary name, then renamed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomically(path: Path, text: str) -> Path:
    """Write `text` to `path` so that a reader sees the old file or the whole new one.

    A process killed mid-write leaves at most `path.tmp` behind, never a truncated `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def fresh_folder(folder: Path) -> Path:
    """An empty `folder`: whatever an earlier, killed run left there is removed first.

    A symbolic link is never followed to delete what it points at; it is refused.
    """
    if folder.is_symlink():
        raise OSError(f"{folder} is a symbolic link; refusing to clean it")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
