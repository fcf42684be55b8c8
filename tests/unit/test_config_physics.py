"""Physically absurd settings are refused at `validate`, one line each naming why (issue 20)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
import yaml
from ase.build import bulk
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlip_autopipec.config import ConfigError, DFTConfig, config_from_dict
from mlip_autopipec.config.files import upf_cutoffs
from mlip_autopipec.dft.inputs import SCFParameters, write_pw_input
from mlip_autopipec.generation import StructureBuilder
from tests.conftest import PSEUDO_DIR

REPO = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = yaml.safe_load((REPO / "examples/si/config.yaml").read_text())


def with_value(dotted: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    data["workflow"]["work_dir"] = "/tmp/mlip-physics-test-work"
    section = data
    *parents, leaf = dotted.split(".")
    for parent in parents:
        section = section.setdefault(parent, {})
    section[leaf] = value
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, base_dir=REPO / "examples/si")
    assert all("\n" not in problem for problem in caught.value.problems)
    return caught.value.problems


ABSURD = [
    ("dft.conv_thr", 1.0, "would accept an unconverged SCF"),
    ("dft.conv_thr", 100.0, "would accept an unconverged SCF"),
    ("dft.degauss", 5.0, "smears the electrons"),
    ("dft.ecutwfc", 1.0, "too low for any pseudopotential"),
    ("dft.kspacing", 1e-6, "millions of k-points"),
    ("dft.kspacing", 1e-320, "millions of k-points"),
    ("dft.timeout", 1e-9, "too short for pw.x"),
    ("inference.temperatures", [0.0], "0 K explores nothing"),
    ("inference.temperatures", [1e9], "plasma"),
    ("inference.pressures", [1e12], "beyond any material"),
    ("inference.timestep", 10000.0, "MD integration"),
    ("inference.gamma_every", 1000, "checked at the start frame only"),
    ("inference.gamma_lower", 0.5, "inside the training data"),
    ("inference.steps", 2**64, "beyond any budget"),
    ("compute.n_workers", 1_000_000_000, "less than or equal to 1024"),
    ("system.lattice_constant", 0.1, "greater than or equal to 1"),
]


@pytest.mark.parametrize(("field", "value", "why"), ABSURD)
def test_an_absurd_value_is_refused_with_the_reason(field: str, value: Any, why: str) -> None:
    found = problems(with_value(field, value))
    assert len(found) == 1 and why in found[0], found
    assert found[0].startswith(field.split(".")[0])


def test_the_example_settings_stay_valid() -> None:
    config_from_dict(with_value("dft.conv_thr", 1e-8), base_dir=REPO / "examples/si")


def test_cutoffs_below_what_the_pseudopotential_suggests_are_refused() -> None:
    suggested = upf_cutoffs(PSEUDO_DIR / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF")
    assert suggested.augmented and suggested.wfc == pytest.approx(43.7, abs=0.1)
    data = with_value("dft.pseudopotentials", {"Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"})
    data["dft"]["pseudo_dir"] = str(PSEUDO_DIR)
    data["dft"]["ecutwfc"], data["dft"]["ecutrho"] = 24.0, 96.0
    (problem,) = problems(data)
    assert "ecutwfc 24 Ry is below the 44 Ry the pseudopotentials suggest" in problem
    # ecutrho left out for an ultrasoft pseudopotential: 8 x ecutwfc, not 4 x
    data["dft"]["ecutwfc"] = 45.0
    del data["dft"]["ecutrho"]
    config = config_from_dict(data, base_dir=REPO / "examples/si")
    assert config.dft.ecutrho == pytest.approx(max(8 * 45.0, suggested.rho))


def test_a_density_cutoff_below_the_suggested_one_is_refused() -> None:
    iron = {"Fe": "Fe.pbe-spn-rrkjus_psl.0.2.1.UPF"}  # suggests 64 and 782 Ry
    with pytest.raises(ValidationError, match="ecutrho 256 Ry is below the 782 Ry"):
        DFTConfig(pseudo_dir=PSEUDO_DIR, pseudopotentials=iron, ecutwfc=64.0, ecutrho=256.0)
    assert DFTConfig(pseudo_dir=PSEUDO_DIR, pseudopotentials=iron, ecutwfc=64.0).ecutrho == (
        pytest.approx(781.74, abs=0.01)
    )


HUGE = 1e300
ABSURD_VALUES = {
    "dft.conv_thr": st.floats(min_value=1.01e-4, max_value=HUGE),
    "dft.degauss": st.floats(min_value=0.101, max_value=HUGE),
    "dft.ecutwfc": st.floats(min_value=-HUGE, max_value=9.99),
    "dft.kspacing": st.floats(min_value=-HUGE, max_value=0.0299),
    "dft.timeout": st.floats(min_value=-HUGE, max_value=0.999),
    "inference.temperatures": st.lists(
        st.one_of(st.floats(-HUGE, 0.99), st.floats(20001, HUGE)), min_size=1, max_size=1
    ),
    "inference.pressures": st.lists(
        st.one_of(st.floats(-HUGE, -5.01e6), st.floats(5.01e6, HUGE)), min_size=1, max_size=1
    ),
    "inference.timestep": st.floats(min_value=5.01, max_value=HUGE),
    "inference.steps": st.integers(min_value=10**8 + 1, max_value=2**70),
    "inference.gamma_lower": st.floats(min_value=-HUGE, max_value=0.999),
    "compute.n_workers": st.integers(min_value=1025, max_value=2**70),
    "system.lattice_constant": st.one_of(st.floats(-HUGE, 0.999), st.floats(30.01, HUGE)),
}


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(sorted(ABSURD_VALUES)), data=st.data())
def test_no_absurd_value_of_a_physical_field_is_accepted(field: str, data: Any) -> None:
    value = data.draw(ABSURD_VALUES[field])
    found = problems(with_value(field, value))
    assert found and all("\n" not in problem for problem in found), (field, value)


def seed_config(tmp_path: Path, atoms: Any, name: str = "seed.extxyz") -> dict[str, Any]:
    path = tmp_path / name
    ase.io.write(path, atoms)
    data = with_value("system.seed_structures", [str(path)])
    data["system"]["prototype"] = None
    return data


def test_seed_structures_pass_the_checks_of_add(tmp_path: Path) -> None:
    germanium = bulk("Ge", "diamond", a=5.66)
    (problem,) = problems(seed_config(tmp_path, germanium, "ge.extxyz"))
    assert "holds Ge, not among system.elements" in problem
    broken = bulk("Si", "diamond", a=5.43)
    broken.positions[0, 0] = np.nan
    (problem,) = problems(seed_config(tmp_path, broken, "nan.extxyz"))
    assert "positions are not finite" in problem
    fifo = tmp_path / "pipe.extxyz"
    os.mkfifo(fifo)
    data = with_value("system.seed_structures", [str(fifo)])
    (problem,) = problems(data)  # refused at once, never opened (opening would block)
    assert "a FIFO" in problem


def test_per_atom_data_of_a_seed_never_reaches_pw_x(tmp_path: Path) -> None:
    magnetic = bulk("Si", "diamond", a=5.43)
    magnetic.set_initial_magnetic_moments([1.0, -1.0])
    magnetic.set_masses([28.0, 30.0])
    config = config_from_dict(seed_config(tmp_path, magnetic), base_dir=tmp_path)
    built = StructureBuilder(config.system, config.exploration.generation).build()
    assert built
    text = write_pw_input(built[0].atoms, config.dft, SCFParameters.from_config(config.dft)).text
    assert "nspin" not in text and "starting_magnetization" not in text
    assert "30.0" not in text.split("ATOMIC_SPECIES")[1].splitlines()[1]


@pytest.mark.parametrize("field", ["workflow.work_dir", "workflow.database"])
def test_a_nul_byte_in_a_path_is_refused_at_validate(field: str) -> None:
    (problem,) = problems(with_value(field, "work\x00dir"))
    assert problem.startswith(field) and "NUL byte" in problem
