"""Regenerate the pw.x outputs of this folder: three 2-atom Si cells at the DFT check's three
settings (~1 minute of serial pw.x 6.7):

    .venv/bin/python tests/data/qe/check/record.py

Cells (primitive diamond Si, a = 5.43 Å, k-mesh from the cell itself): `eq` as built,
`strained` at -6 % volume, `hot` rattled by 0.1 Å (seed 7). Settings, as `dft.check` makes
them from the example's old ones (PBE, Si.pbe-rrkj.UPF, MV smearing 0.02 Ry):
`configured` kspacing 0.6, ecutwfc 24, ecutrho 96; `dense_kpoints` kspacing 0.36;
`high_cutoff` ecutwfc 31.2, ecutrho 124.8. Each output is `CELL_SETTING.out`, as pw.x wrote it.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import DFTCheckConfig, config_from_dict
from mlip_autopipec.dft.check import check_settings
from mlip_autopipec.dft.inputs import SCFParameters, write_pw_input

HERE = Path(__file__).resolve().parent


def cells() -> dict[str, Atoms]:
    eq = bulk("Si", "diamond", a=5.43)
    strained = eq.copy()
    strained.set_cell(eq.cell * (0.94 ** (1 / 3)), scale_atoms=True)
    hot = eq.copy()
    hot.positions += np.random.default_rng(7).normal(0.0, 0.1, hot.positions.shape)
    return {"eq": eq, "strained": strained, "hot": hot}


def main() -> None:
    config = config_from_dict(
        {
            "system": {"elements": ["Si"], "prototype": "diamond"},
            "dft": {
                "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"},
                "kspacing": 0.6,
                "ecutwfc": 24.0,
                "ecutrho": 96.0,
            },
        }
    )
    for setting, dft in check_settings(config.dft, DFTCheckConfig()).items():
        for name, atoms in cells().items():
            with tempfile.TemporaryDirectory() as folder:
                pw_input = write_pw_input(atoms, dft, SCFParameters.from_config(dft))
                Path(folder, "pw.in").write_text(pw_input.text)
                run = subprocess.run(
                    ["pw.x", "-in", "pw.in"],
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                    check=True,
                )
            (HERE / f"{name}_{setting}.out").write_text(run.stdout)
            print(name, setting, pw_input.kpts)


if __name__ == "__main__":
    main()
