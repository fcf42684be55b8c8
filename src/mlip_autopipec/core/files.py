"""Files whose presence means "finished": written under a temporary name, then renamed."""

from __future__ import annotations

import os
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
