"""Importing keeps only what the campaign defines; unrunnable structures and bad masses are refused;
export writes files that read back, whatever the imported file was called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms

from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.dft.inputs import SCFParameters, write_pw_input
from mlip_autopipec.errors import UserError
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.importing import (
    StructureImportError,
    export_labeled,
    import_files,
    safe_origin,
)


@pytest.fixture
def config(tmp_path: Path, config_dict: dict[str, Any]) -> MLIPConfig:
    config_dict["exploration"] = {"generation": {"filters": {"max_atoms": 8}}}
    return config_from_dict(config_dict, base_dir=tmp_path)


def decorated_silicon(labeled: bool) -> Atoms:
    """Si with everything a file may carry that the campaign does not define."""
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.set_initial_magnetic_moments([2.0, -1.0])
    atoms.set_initial_charges([0.5, -0.5])
    atoms.set_masses([30.0, 12.0])
    atoms.set_tags([3, 4])
    atoms.set_momenta([[0.1, 0.0, 0.0], [0.0, 0.2, 0.0]])
    atoms.new_array("spin_label", np.array([1, 2]))
    atoms.info["note"] = "from another code"
    atoms.set_constraint(FixAtoms(indices=[0]))
    if labeled:
        atoms.calc = SinglePointCalculator(
            atoms, energy=-215.0, forces=np.ones((2, 3)), magmoms=[1.0, 1.0], charges=[0.1, 0.2]
        )
    return atoms


@pytest.mark.parametrize("status", [keys.CANDIDATE, keys.SELECTED, keys.LABELED])
def test_import_keeps_only_positions_numbers_cell_pbc_and_label(
    tmp_path: Path, config: MLIPConfig, status: str
) -> None:
    path = tmp_path / "decorated.traj"  # .traj keeps constraints, masses and calc results
    ase.io.write(path, decorated_silicon(labeled=status == keys.LABELED))
    assert import_files(Campaign.open(config), [path], status, 0) == (1, 0)
    (record,) = open_database(config).select()
    stored = record.atoms
    assert set(stored.arrays) == {"numbers", "positions"}
    assert not stored.constraints and np.all(stored.get_tags() == 0)
    assert np.allclose(stored.get_masses(), bulk("Si").get_masses())
    assert not np.any(stored.get_initial_magnetic_moments())
    text = write_pw_input(stored, config.dft, SCFParameters.from_config(config.dft)).text
    assert "starting_magnetization" not in text and "nspin" not in text
    assert "28.085" in text and "30.0" not in text.split("ATOMIC_SPECIES")[1].split("\n")[1]
    if status == keys.LABELED:
        assert set(stored.calc.results) == {"energy", "forces"}
        assert stored.get_potential_energy() == -215.0
    else:
        assert stored.calc is None


@pytest.mark.parametrize(
    ("masses", "message"),
    [
        ([28.0, float("nan")], "atom 1 has mass nan (must be a positive number)"),
        ([-1.0, 28.0], "atom 0 has mass -1.0 (must be a positive number)"),
        ([28.0, 0.0], "atom 1 has mass 0.0 (must be a positive number)"),
    ],
)
def test_nan_or_non_positive_masses_are_refused(
    tmp_path: Path, config: MLIPConfig, masses: list[float], message: str
) -> None:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.set_masses(masses)
    path = tmp_path / "masses.extxyz"
    ase.io.write(path, atoms)
    with pytest.raises(StructureImportError) as caught:
        import_files(Campaign.open(config), [path], keys.SELECTED, 0)
    assert str(caught.value) == f"{path}[0]: {message}"
    assert isinstance(caught.value, UserError)


CELL_CASES = [
    (Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]]), "no cell vector a, b, c"),
    (
        Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[5, 5, 0], pbc=[True, True, False]),
        "no cell vector c",
    ),
    (
        Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[[5, 0, 0], [5, 0, 0], [0, 0, 5]]),
        "the cell has zero volume",
    ),
]


@pytest.mark.parametrize("status", [keys.CANDIDATE, keys.SELECTED, keys.LABELED])
@pytest.mark.parametrize(("atoms", "message"), CELL_CASES)
def test_structures_pw_x_cannot_run_are_refused(
    tmp_path: Path, config: MLIPConfig, atoms: Atoms, message: str, status: str
) -> None:
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((2, 3)))
    path = tmp_path / "nocell.extxyz"
    ase.io.write(path, atoms)
    with pytest.raises(StructureImportError, match=f"nocell.extxyz.0.: {message}"):
        import_files(Campaign.open(config), [path], status, 0)
    assert open_database(config).count() == 0


def test_more_atoms_than_max_atoms_is_refused_before_dft(
    tmp_path: Path, config: MLIPConfig
) -> None:
    big = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))  # 16 atoms > 8
    path = tmp_path / "big.extxyz"
    ase.io.write(path, big)
    with pytest.raises(StructureImportError) as caught:
        import_files(Campaign.open(config), [path], keys.SELECTED, 0)
    assert str(caught.value) == (
        f"{path}[0]: 16 atoms, more than 8 (exploration.generation.filters.max_atoms)"
    )
    # Labeled data never goes to pw.x: its size is not limited by the DFT filter.
    big.calc = SinglePointCalculator(big, energy=-1700.0, forces=np.zeros((16, 3)))
    ase.io.write(path, big)
    assert import_files(Campaign.open(config), [path], keys.LABELED, 0) == (1, 0)


HOSTILE_NAME = "evil\" name=1 'x'\\ä€\t[/].extxyz"


def test_export_reads_back_after_importing_a_file_with_a_hostile_name(
    tmp_path: Path, config: MLIPConfig
) -> None:
    frames = []
    for seed in range(2):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.rattle(0.05, seed=seed)
        forces = np.random.default_rng(seed).normal(size=(2, 3))
        stress = np.arange(6.0) * 0.01
        atoms.calc = SinglePointCalculator(
            atoms, energy=-215.0 - seed, forces=forces, stress=stress
        )
        frames.append(atoms)
    source = tmp_path / (HOSTILE_NAME.replace("[/]", "[_]") + "\nsecond line.extxyz")
    ase.io.write(source, frames, format="extxyz")
    assert import_files(Campaign.open(config), [source], keys.LABELED, 3) == (2, 0)
    # An origin stored by an older version, unsanitised, must not break the export either.
    legacy = bulk("Si", "diamond", a=5.5)
    legacy.calc = SinglePointCalculator(legacy, energy=-214.0, forces=np.zeros((2, 3)))
    open_database(config).add_structures([legacy], keys.LABELED, 0, 'import:a"b\nc=d')
    out = tmp_path / "out.extxyz"
    assert export_labeled(Campaign.open(config), out) == 3
    back = ase.io.read(out, index=":")
    assert sorted(a.get_potential_energy() for a in back) == [-216.0, -215.0, -214.0]
    origins = {a.info["origin"] for a in back}
    assert origins == {
        "import:evil__name_1__x________.extxyz_second_line.extxyz",
        "import:a_b_c_d",
    }
    for atoms in back:
        assert len(atoms) == 2 and atoms.info["db_id"] > 0
        if atoms.info["origin"].startswith("import:evil"):
            assert atoms.info["iteration"] == 3
            assert np.allclose(atoms.get_stress(), np.arange(6.0) * 0.01)


@pytest.mark.parametrize("text", ['a"b', "a\nb", "a=b", "a b", "a'b", "x\x00y", "", "é"])
def test_safe_origin_has_only_plain_characters(text: str) -> None:
    cleaned = safe_origin(text)
    assert cleaned and all(ch.isascii() and (ch.isalnum() or ch in "_.:+@-") for ch in cleaned)


def test_unreadable_file_message_is_one_line(tmp_path: Path, config: MLIPConfig) -> None:
    path = tmp_path / "bad\nname.xyz"
    path.write_text("not\nan xyz file\n")
    with pytest.raises(StructureImportError) as caught:
        import_files(Campaign.open(config), [path], keys.CANDIDATE, 0)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{tmp_path}/bad\\nname.xyz: ASE cannot read")
