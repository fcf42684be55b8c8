"""Regenerate tests/data/si_labeled.extxyz: small, real QE-labeled silicon data.

How it was made (and how to make it again, ~2-4 minutes of pw.x on 2 cores):

    .venv/bin/python tests/data/make_si_labeled.py

1. 28 structures of diamond Si (seeded, deterministic): 2-atom primitive cells and 8-atom cubic
   cells, with volumetric strains of -4..+4 %, small shears, Gaussian rattles of 0.05-0.15 Å
   and two "hot" 8-atom cells rattled by 0.22 Å.
2. Labeled with the project's own pipeline and real pw.x 6.7 (PBE, Si.pbe-rrkj.UPF,
   ecutwfc 22 Ry, kspacing 0.5 1/Å, Marzari-Vanderbilt smearing 0.02 Ry, 2 Dask workers):
       mlip-autopipe add CFG structures.extxyz --selected
       mlip-autopipe label CFG
       mlip-autopipe export CFG si_labeled.extxyz
   The file keeps each structure's energy (eV), forces (eV/Å) and stress (eV/Å³), plus the
   database id (`db_id`) and origin it had in the temporary campaign.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk

HERE = Path(__file__).resolve().parent
TARGET = HERE / "si_labeled.extxyz"
LATTICE = 5.43
SEED = 20240605

CONFIG = """\
system:
  elements: [Si]
  prototype: diamond
  lattice_constant: 5.43
  min_distance: 1.0
dft:
  command: [pw.x]
  pseudo_dir: /usr/share/espresso/pseudo
  pseudopotentials: {Si: Si.pbe-rrkj.UPF}
  ecutwfc: 22.0
  kspacing: 0.5
  occupations: smearing
  smearing: mv
  degauss: 0.02
  conv_thr: 1.0e-8
  timeout: 600
workflow:
  work_dir: work
compute:
  n_workers: 2
  threads_per_worker: 1
"""


def strained(atoms: Atoms, volumetric: float, shear: float = 0.0) -> Atoms:
    """Scale the cell isotropically by (1 + volumetric) in volume and add an xy shear."""
    linear = (1.0 + volumetric) ** (1.0 / 3.0)
    deformation = np.eye(3) * linear
    deformation[0, 1] = deformation[1, 0] = shear / 2.0
    copy = atoms.copy()
    copy.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
    return copy


def rattled(atoms: Atoms, stdev: float, rng: np.random.Generator) -> Atoms:
    copy = atoms.copy()
    copy.positions += rng.normal(0.0, stdev, size=copy.positions.shape)
    return copy


def build_structures() -> list[Atoms]:
    rng = np.random.default_rng(SEED)
    primitive = bulk("Si", "diamond", a=LATTICE)
    cubic = bulk("Si", "diamond", a=LATTICE, cubic=True)
    structures: list[Atoms] = []
    for volumetric in (-0.06, -0.03, 0.0, 0.03, 0.06):
        structures.append(rattled(strained(primitive, volumetric), 0.05, rng))
    for shear in (-0.04, 0.04):
        structures.append(rattled(strained(primitive, 0.0, shear), 0.08, rng))
    for stdev in (0.10, 0.15):
        structures.append(rattled(primitive, stdev, rng))
    for volumetric in (-0.04, -0.02, 0.0, 0.02, 0.04):
        for stdev in (0.05, 0.10, 0.15):
            structures.append(rattled(strained(cubic, volumetric), stdev, rng))
    for shear in (-0.03, 0.03):
        structures.append(rattled(strained(cubic, 0.01, shear), 0.10, rng))
    for _ in range(2):
        structures.append(rattled(cubic, 0.22, rng))
    return structures


def mlip_autopipe(*args: str, cwd: Path) -> None:
    program = Path(sys.executable).parent / "mlip-autopipe"
    subprocess.run([str(program), *args], cwd=cwd, check=True)


def main() -> None:
    structures = build_structures()
    with tempfile.TemporaryDirectory(prefix="si-labeled-") as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(CONFIG)
        ase.io.write(folder / "structures.extxyz", structures, format="extxyz")
        mlip_autopipe("add", "config.yaml", "structures.extxyz", "--selected", cwd=folder)
        mlip_autopipe("label", "config.yaml", cwd=folder)
        mlip_autopipe("export", "config.yaml", str(TARGET), cwd=folder)
    labeled = ase.io.read(TARGET, index=":")
    print(f"{len(labeled)} of {len(structures)} structures labeled -> {TARGET}")


if __name__ == "__main__":
    main()
