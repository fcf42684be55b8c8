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


class UnsafeFolderError(OSError):
    """A folder to be emptied (or its parent) is a symbolic link."""


def fresh_folder(folder: Path) -> Path:
    """An empty `folder`: whatever an earlier, killed run left there is removed first.

    A symbolic link (the folder or its parent) is never followed to delete what it points
    at; it is refused with UnsafeFolderError.
    """
    for path in (folder.parent, folder):
        if path.is_symlink():
            raise UnsafeFolderError(f"{path} is a symbolic link; refusing to clean it")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
