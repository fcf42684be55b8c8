"""Import structures a user already has, and export labeled data for other tools.

An imported structure keeps only what the campaign defines (element numbers, positions, cell,
periodicity and, for labeled data, energy/forces/stress): magnetic moments, charges, masses,
tags, constraints, velocities and any other array or info key in the file never reach pw.x,
the database or the training set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms

from mlip_autopipec.config.files import UnreadableInput, read_frames
from mlip_autopipec.core import keys
from mlip_autopipec.core.label import Label, LabelError
from mlip_autopipec.errors import UserError
from mlip_autopipec.generation.builder import plain_structure
from mlip_autopipec.generation.filters import check_max_atoms
from mlip_autopipec.orchestration.campaign import Campaign

# extxyz comment lines are `key=value` pairs: keep origins to characters that need no quoting.
_UNSAFE_ORIGIN = re.compile(r"[^A-Za-z0-9_.:+@-]")
MAX_ORIGIN = 120


class StructureImportError(UserError, ValueError):
    """A file could not be read, or its content is unfit for the requested status."""


def read_structures(path: Path) -> list[Atoms]:
    where = safe_text(str(path))
    try:
        frames = read_frames(path)
    except FileNotFoundError:
        raise StructureImportError(f"{where}: file not found") from None
    except UnreadableInput as error:
        raise StructureImportError(safe_text(str(error))) from None
    except Exception as error:  # ASE raises many types for unreadable files
        reason = safe_text(str(error))
        raise StructureImportError(f"{where}: ASE cannot read it ({reason})") from None
    if not frames:
        raise StructureImportError(f"{where}: no structures in the file")
    return frames


def safe_text(text: str) -> str:
    """One printable line: control characters and line breaks become visible escapes."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def safe_origin(text: str) -> str:
    """An origin tag that survives an extxyz comment line and a terminal: unsafe chars -> '_'."""
    return _UNSAFE_ORIGIN.sub("_", text)[:MAX_ORIGIN] or "_"


def check_masses(atoms: Atoms, where: str) -> None:
    """Masses given in the file are dropped, but nonsense ones mean the file is wrong."""
    if "masses" not in atoms.arrays:
        return
    masses = np.asarray(atoms.arrays["masses"], dtype=float)
    bad = np.flatnonzero(~np.isfinite(masses) | (masses <= 0))
    if len(bad):
        raise StructureImportError(
            f"{where}: atom {bad[0]} has mass {masses[bad[0]]} (must be a positive number)"
        )


def check_runnable(atoms: Atoms, where: str, max_atoms: int | None) -> None:
    """pw.x needs three non-zero cell vectors spanning a volume, and no more atoms than allowed."""
    lengths = np.linalg.norm(atoms.cell.array, axis=1)
    if not np.all(np.isfinite(lengths)) or np.any(lengths < 1e-6):
        zero = [axis for axis, length in zip("abc", lengths, strict=True) if not length >= 1e-6]
        raise StructureImportError(
            f"{where}: no cell vector {', '.join(zero)} (pw.x needs a full 3D cell; "
            "give molecules and slabs a box with vacuum)"
        )
    if abs(atoms.cell.volume) < 1e-6:
        raise StructureImportError(f"{where}: the cell has zero volume")
    if max_atoms is not None and (rejection := check_max_atoms(atoms, max_atoms)) is not None:
        raise StructureImportError(
            f"{where}: {rejection.detail} (exploration.generation.filters.max_atoms)"
        )


def campaign_structure(atoms: Atoms, where: str, labeled: bool) -> Atoms:
    """A fresh Atoms with only numbers, positions, cell and pbc (and the checked label)."""
    check_masses(atoms, where)
    try:
        label = Label.from_atoms(atoms, where) if labeled else None
    except LabelError as error:
        raise StructureImportError(str(error)) from None
    clean = plain_structure(atoms)
    return label.attach(clean) if label is not None else clean


def import_files(
    campaign: Campaign, files: Sequence[Path], status: str, iteration: int
) -> tuple[int, int]:
    """Read and check every file first, then insert everything in one transaction."""
    labeled = status == keys.LABELED
    max_atoms = None if labeled else campaign.config.exploration.generation.filters.max_atoms
    structures: list[Atoms] = []
    origins: list[str] = []
    data: list[dict[str, Any]] = []
    for path in files:
        origin = safe_origin(f"import:{Path(path).name}")
        for index, atoms in enumerate(read_structures(path)):
            where = f"{safe_text(str(path))}[{index}]"
            clean = campaign_structure(atoms, where, labeled)
            check_runnable(clean, where, max_atoms)
            structures.append(clean)
            origins.append(origin)
            data.append(_force_weights(atoms, where) if labeled else {})
    database = campaign.database
    ids = database.add_structures(structures, status, iteration, origins, data=data)
    return len(ids), len(structures) - len(ids)


def _force_weights(atoms: Atoms, where: str) -> dict[str, Any]:
    """Per-atom force weights of an exported cut-out, so a re-import trains the same way."""
    if keys.FORCE_WEIGHTS not in atoms.arrays:
        return {}
    weights = np.asarray(atoms.arrays[keys.FORCE_WEIGHTS], dtype=float).reshape(-1)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise StructureImportError(f"{where}: force_weights must be finite and >= 0")
    return {keys.FORCE_WEIGHTS: weights.tolist()}


def export_labeled(campaign: Campaign, out: Path) -> int:
    records = campaign.database.select(**{keys.STATUS: keys.LABELED})
    frames = []
    for record in records:
        atoms = record.atoms
        atoms.info = {
            "db_id": record.id,
            "iteration": record.iteration,
            "origin": safe_origin(record.origin),
        }
        if keys.FORCE_WEIGHTS in record.data:  # a cut-out: which forces training used
            atoms.arrays[keys.FORCE_WEIGHTS] = np.asarray(record.data[keys.FORCE_WEIGHTS], float)
        frames.append(atoms)
    out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(out, frames, format="extxyz")
    return len(frames)
