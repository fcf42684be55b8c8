"""Checks of a file of labeled structures named in the config (workflow.validation_set).

The config package imports nothing else of ours, so the label checks here are the few that
decide whether the file can be scored: energy and forces present, shaped and finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlip_autopipec.config.files import UnreadableInput, read_frames


def labeled_file_problem(path: Path, elements: Sequence[str] | None = None) -> str | None:
    """Why `path` is not a readable file of labeled structures (of `elements`), or None."""
    try:
        frames = read_frames(path)
    except FileNotFoundError:
        return f"{path} not found"
    except OSError as error:
        return f"cannot read {path}: {error.strerror}"
    except UnreadableInput as error:
        return str(error)
    except Exception as error:  # ASE raises many kinds for a file it cannot parse
        return f"{path}: unreadable as structures ({type(error).__name__}: {error})"
    if not frames:
        return f"{path} holds no structures"
    for index, atoms in enumerate(frames):
        problem = _frame_problem(atoms, elements)
        if problem is not None:
            return f"{path} frame {index}: {problem}"
    return None


def _frame_problem(atoms: Any, elements: Sequence[str] | None) -> str | None:
    if not np.isfinite(atoms.positions).all() or not np.isfinite(atoms.cell.array).all():
        return "positions or cell are not finite"
    results = getattr(atoms.calc, "results", None) or {}
    missing = [name for name in ("energy", "forces") if name not in results]
    if missing:
        return f"no {' and '.join(missing)} (a validation structure needs a DFT label)"
    if not np.isfinite(np.asarray(results["energy"], dtype=float)).all():
        return "energy is not finite"
    forces = np.asarray(results["forces"], dtype=float)
    if forces.shape != (len(atoms), 3) or not np.isfinite(forces).all():
        return f"forces must be finite with shape ({len(atoms)}, 3), got {forces.shape}"
    if elements is not None:
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if unknown:
            return f"element(s) {', '.join(unknown)} not in system.elements"
    return None
