"""Seed structure files checked at validate time, as `add` checks what it imports: readable
without blocking, only the campaign's elements, finite positions and masses, a 3D cell."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ase.io
import numpy as np

from mlip_autopipec.config.files import UnreadableInput, read_frames

MAX_SEED_BYTES = 50 * 1024 * 1024


def seed_file_problem(path: Path, elements: Sequence[str]) -> str | None:
    """Why `path` cannot seed this campaign's structures, or None when it can."""
    try:
        if path.stat().st_size > MAX_SEED_BYTES:
            return f"{path} is larger than {MAX_SEED_BYTES // 2**20} MiB"
        frames = read_frames(path)
    except OSError as error:
        return f"{path}: cannot read it ({error.strerror})"
    except UnreadableInput as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - ASE raises anything on a file it cannot parse
        return f"{path}: ASE cannot read it ({type(error).__name__}: {str(error)[:120]})"
    if not frames:
        return f"{path} holds no structure"
    for index, atoms in enumerate(frames):
        problem = _frame_problem(atoms, set(elements))
        if problem is not None:
            return f"{path}[{index}]: {problem}"
    return None


def _frame_problem(atoms: ase.Atoms, elements: set[str]) -> str | None:
    if len(atoms) == 0:
        return "no atoms"
    foreign = sorted(set(atoms.get_chemical_symbols()) - elements)
    if foreign:
        return f"holds {', '.join(foreign)}, not among system.elements"
    if not np.all(np.isfinite(atoms.positions)):
        return "positions are not finite"
    if "masses" in atoms.arrays:
        masses = np.asarray(atoms.arrays["masses"], dtype=float)
        if not np.all(np.isfinite(masses) & (masses > 0)):
            return "masses must be positive numbers"
    cell = atoms.cell.array
    if not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-6:
        return "no 3D cell (pw.x needs one; give slabs and molecules a box with vacuum)"
    return None
