from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.inference.lammps import (
    LammpsError,
    lammps_has_ml_pace,
    parse_dump,
    parse_log,
    safe_token,
    write_lammps_input,
)
from mlip_autopipec.inference.md import MDRunSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "lammps"


def spec(**changes: object) -> MDRunSpec:
    inference = InferenceConfig(steps=500, gamma_every=10, gamma_lower=2.0, gamma_upper=10.0)
    base = MDRunSpec.from_config(inference, "T900_r0", 900.0, None, 7)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_generated_input_matches_golden_file() -> None:
    assert write_lammps_input(spec(), ["Si"]) == (DATA / "in.nvt.golden").read_text()


def test_npt_input_and_two_species() -> None:
    text = write_lammps_input(spec(pressure=1.0), ["Si", "Ge"])
    assert "fix md all npt temp 900 900 0.1 iso 1 1 1" in text
    assert "pair_coeff * * potential.yace potential.asi Si Ge" in text
    assert "mass 2 72.63" in text


@pytest.mark.parametrize("element", ["Si\nshell rm -rf /", "shell", "Si Ge", "Si#", "$x"])
def test_injection_through_element_names_is_rejected(element: str) -> None:
    with pytest.raises(LammpsError):
        write_lammps_input(spec(), [element])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    with pytest.raises(LammpsError):
        write_lammps_input(spec(temperature=value), ["Si"])


def test_safe_token() -> None:
    assert safe_token("Si", "element") == "Si"
    for bad in ("shell", "SHELL", "a;b", "x y", "a\nb", ""):
        with pytest.raises(LammpsError):
            safe_token(bad, "value")


def test_every_line_of_the_input_is_a_known_command() -> None:
    allowed = {
        "units", "atom_style", "boundary", "read_data", "mass", "pair_style", "pair_coeff",
        "timestep", "velocity", "fix", "compute", "variable", "dump", "dump_modify",
        "thermo_style", "thermo", "run",
    }  # fmt: skip
    text = write_lammps_input(spec(), ["Si"])
    assert {line.split()[0] for line in text.splitlines() if line.strip()} <= allowed


def test_parse_log_reads_steps_gamma_and_halt() -> None:
    steps, halted, gammas = parse_log((DATA / "log.lammps").read_text())
    assert steps == 30 and halted
    assert gammas == [1.0123, 1.52, 2.61, 11.3]


def test_parse_log_of_a_run_that_finished() -> None:
    text = (DATA / "log.lammps").read_text().replace("ERROR: Fix halt", "WARNING: not a halt")
    steps, halted, _ = parse_log(text)
    assert steps == 30 and not halted


def test_parse_dump_gives_frames_with_per_atom_gamma() -> None:
    frames = parse_dump(DATA / "extrapolative_structures.dump", ["Si"], "T900_r0")
    assert [f.info["step"] for f in frames] == [20, 30]
    np.testing.assert_allclose(frames[1].arrays["gamma"], [11.3, 3.5])
    assert frames[1].info["max_gamma"] == 11.3
    assert frames[0].get_chemical_symbols() == ["Si", "Si"]


def test_missing_dump_means_no_frames(tmp_path: Path) -> None:
    assert parse_dump(tmp_path / "none.dump", ["Si"], "x") == []


def test_a_program_without_ml_pace_is_detected() -> None:
    assert not lammps_has_ml_pace("/bin/echo")
