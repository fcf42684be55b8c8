"""Import structures a user already has, and export labeled data for other tools."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.database import open_database


class StructureImportError(ValueError):
    """A file could not be read, or its content is unfit for the requested status."""


def read_structures(path: Path) -> list[Atoms]:
    try:
        frames = ase.io.read(path, index=":")
    except FileNotFoundError:
        raise StructureImportError(f"{path}: file not found") from None
    except Exception as error:  # ASE raises many types for unreadable files
        raise StructureImportError(f"{path}: ASE cannot read it ({error})") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise StructureImportError(f"{path}: no structures in the file")
    return frames


def check_label(atoms: Atoms, where: str) -> Atoms:
    """Return a copy carrying a clean SinglePointCalculator, or raise naming the problem."""
    calc = atoms.calc
    if calc is None or "energy" not in calc.results or "forces" not in calc.results:
        raise StructureImportError(f"{where}: no DFT energy and forces in the file")
    energy = calc.results["energy"]
    forces = np.asarray(calc.results["forces"], dtype=float)
    if not np.isfinite(energy):
        raise StructureImportError(f"{where}: energy is not finite")
    if forces.shape != (len(atoms), 3):
        raise StructureImportError(
            f"{where}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)"
        )
    if not np.all(np.isfinite(forces)):
        raise StructureImportError(f"{where}: forces are not finite")
    results = {"energy": float(energy), "forces": forces}
    stress = calc.results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape not in {(6,), (3, 3)} or not np.all(np.isfinite(stress)):
            raise StructureImportError(f"{where}: stress must be finite with 6 or 3x3 components")
        results["stress"] = stress
    labeled = atoms.copy()
    labeled.calc = SinglePointCalculator(labeled, **results)
    return labeled


def import_files(
    config: MLIPConfig, files: Sequence[Path], status: str, iteration: int
) -> tuple[int, int]:
    """Read and check every file first, then insert everything in one transaction."""
    structures: list[Atoms] = []
    origins: list[str] = []
    for path in files:
        for index, atoms in enumerate(read_structures(path)):
            if status == keys.LABELED:
                atoms = check_label(atoms, f"{path}[{index}]")
            structures.append(atoms)
            origins.append(f"import:{Path(path).name}")
    database = open_database(config)
    ids = database.add_structures(structures, status, iteration, origins)
    return len(ids), len(structures) - len(ids)


def export_labeled(config: MLIPConfig, out: Path) -> int:
    records = open_database(config).select(**{keys.STATUS: keys.LABELED})
    frames = []
    for record in records:
        atoms = record.atoms
        atoms.info.update(
            {"db_id": record.id, "iteration": record.iteration, "origin": record.origin}
        )
        frames.append(atoms)
    out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(out, frames, format="extxyz")
    return len(frames)
