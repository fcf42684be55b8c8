"""What to compute: a pw.x input from an Atoms object, the DFT config and recovery overrides."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import spglib
from ase import Atoms
from ase.cell import Cell
from ase.io.espresso import write_espresso_in

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.core.keys import KPOINT_CELL

# pw.x checks max_seconds only between SCF steps: leave 10% (at most 30 s) of headroom
SOFT_LIMIT_MARGIN_FRACTION = 0.1
SOFT_LIMIT_MARGIN_MAX = 30.0


class Restart(StrEnum):
    """What an attempt starts from: nothing, or files of the previous attempt in its outdir."""

    SCRATCH = "scratch"
    CHARGE_DENSITY = "charge_density"  # startingpot='file'
    FULL = "full"  # startingpot='file' and startingwfc='file'


STARTING_FILES: dict[Restart, dict[str, str]] = {
    Restart.SCRATCH: {},
    Restart.CHARGE_DENSITY: {"startingpot": "file"},
    Restart.FULL: {"startingpot": "file", "startingwfc": "file"},
}
OUTDIR = "tmp"
PREFIX = "pwscf"


@dataclass(frozen=True)
class SCFParameters:
    """The settings the recovery ladder may change between attempts."""

    mixing_beta: float
    electron_maxstep: int
    mixing_mode: str = "plain"
    diagonalization: str = "david"
    timeout: float = 3600.0

    @classmethod
    def from_config(cls, dft: DFTConfig) -> SCFParameters:
        return cls(
            mixing_beta=dft.mixing_beta,
            electron_maxstep=dft.electron_maxstep,
            timeout=dft.timeout,
        )

    def changed(self, **changes: Any) -> SCFParameters:
        return replace(self, **changes)


@dataclass(frozen=True)
class PwInput:
    text: str
    kpts: tuple[int, int, int]
    max_seconds: int
    extra: dict[str, Any] = field(default_factory=dict)


def kpoint_mesh(atoms: Atoms, kspacing: float) -> tuple[int, int, int]:
    """Monkhorst-Pack mesh with spacing `kspacing` (1/Å, 2π included); 1 along non-periodic axes.

    The mesh is taken from `atoms.info[KPOINT_CELL]` when the structure carries one (the
    unstrained cell it was made from): a mesh taken from each strained cell jumps between
    nearby strains and puts steps into the energies that training sees.
    """
    reciprocal = 2 * math.pi * np.asarray(mesh_cell(atoms).reciprocal())
    mesh = []
    for axis in range(3):
        length = float(np.linalg.norm(reciprocal[axis]))
        periodic = bool(atoms.pbc[axis]) and length > 0
        mesh.append(max(1, math.ceil(length / kspacing - 1e-9)) if periodic else 1)
    return mesh[0], mesh[1], mesh[2]


def relative_cost(atoms: Atoms, kspacing: float) -> float:
    """A rough relative cost of a pw.x run, to start the longest first: the irreducible
    k-points of its mesh (spglib: crystal symmetry and time reversal, as pw.x reduces them)
    times atoms squared (plane waves and bands both grow with the cell)."""
    mesh = kpoint_mesh(atoms, kspacing)
    try:
        cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
        mapping, _ = spglib.get_ir_reciprocal_mesh(mesh, cell, is_shift=[0, 0, 0])
        kpoints = len(np.unique(mapping))
    except Exception:  # noqa: BLE001 - only an order; the full mesh will do
        kpoints = math.prod(mesh)
    return float(kpoints * len(atoms) ** 2)


def mesh_cell(atoms: Atoms) -> Cell:
    """The cell the k-mesh is taken from: the structure's k-point cell when it carries a sound
    one, else its own cell."""
    stored = atoms.info.get(KPOINT_CELL)
    if stored is not None:
        cell = np.asarray(stored, dtype=float)
        if cell.shape == (3, 3) and np.all(np.isfinite(cell)) and abs(np.linalg.det(cell)) > 1e-6:
            return Cell(cell)
    return atoms.cell


def max_seconds_for(timeout: float) -> int:
    """pw.x's own soft limit, safely below the hard timeout so it can stop cleanly."""
    margin = min(SOFT_LIMIT_MARGIN_FRACTION * timeout, SOFT_LIMIT_MARGIN_MAX)
    return max(1, int(timeout - margin))


def write_pw_input(
    atoms: Atoms, dft: DFTConfig, scf: SCFParameters, restart: Restart = Restart.SCRATCH
) -> PwInput:
    """The pw.x input; with a restart, the outdir must hold the previous attempt's files."""
    symbols = sorted(set(atoms.get_chemical_symbols()))
    missing = [s for s in symbols if s not in dft.pseudopotentials]
    if missing:
        raise ValueError(f"no pseudopotential configured for {', '.join(missing)}")
    max_seconds = max_seconds_for(scf.timeout)
    system: dict[str, Any] = {
        "ecutwfc": dft.ecutwfc,
        "ecutrho": dft.ecutrho if dft.ecutrho is not None else 4 * dft.ecutwfc,
        "occupations": dft.occupations,
    }
    if dft.occupations == "smearing":
        system.update(smearing=dft.smearing, degauss=dft.degauss)
    input_data = {
        "control": {
            "calculation": "scf",
            "prefix": PREFIX,
            "outdir": f"./{OUTDIR}",
            "pseudo_dir": str(dft.pseudo_dir),
            "tprnfor": True,
            "tstress": True,
            "max_seconds": max_seconds,
            "disk_io": "none",
        },
        "system": system,
        "electrons": {
            "conv_thr": dft.conv_thr,
            "mixing_beta": scf.mixing_beta,
            "mixing_mode": scf.mixing_mode,
            "electron_maxstep": scf.electron_maxstep,
            "diagonalization": scf.diagonalization,
            **STARTING_FILES[restart],
        },
    }
    kpts = kpoint_mesh(atoms, dft.kspacing)
    buffer = io.StringIO()
    write_espresso_in(
        buffer,
        atoms,
        input_data=input_data,
        pseudopotentials={s: dft.pseudopotentials[s] for s in symbols},
        kpts=kpts,
    )
    return PwInput(text=buffer.getvalue(), kpts=kpts, max_seconds=max_seconds)
