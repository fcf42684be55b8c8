"""The LAMMPS engine against the real program (LAMMPS with ML-PACE, found by `lammps_profile`):
parity with pyace on the same potential, active set and frame, and the same halting behaviour
as the ASE engine on the same MD settings."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io.lammpsrun import read_lammps_dump_text

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.core.process import run_process
from mlip_autopipec.core.quiet_imports import pyace_calculator
from mlip_autopipec.inference.ase_md import run_ase_md
from mlip_autopipec.inference.engines import MDEngineSpec, run_md_task, select_engine
from mlip_autopipec.inference.lammps import (
    ACTIVE_SET_NAME,
    GRADER_ACTIVE_SET_NAME,
    GRADER_NAME,
    POTENTIAL_NAME,
    lammps_elements,
    lammps_prism,
    setup_commands,
    write_structure,
)
from mlip_autopipec.inference.lammps_profile import LammpsProfile
from mlip_autopipec.inference.md_types import GammaGrader, MDResult, MDRunSpec, PotentialFiles
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.training import Candidate, train_iteration, with_grader
from tests.integration.conftest import TrainedCampaign
from tests.integration.test_inference import assert_restarted_from_last_trusted

pytestmark = pytest.mark.slow
RTOL = 1e-6


@pytest.fixture(scope="module")
def potential(trained_campaign: TrainedCampaign) -> PotentialFiles:
    fit = trained_campaign.result
    return PotentialFiles(yaml=fit.potential, yace=fit.yace, active_set=fit.active_set)


@pytest.fixture(scope="module")
def engine(lammps_profile: LammpsProfile) -> MDEngineSpec:
    return MDEngineSpec("lammps", lammps_profile)


def md_spec(
    run_id: str, temperature: float, lower: float, upper: float, steps: int, max_restarts: int = 0
) -> MDRunSpec:
    """One segment unless `max_restarts` says otherwise: most tests compare engine semantics."""
    inference = InferenceConfig(
        steps=steps,
        gamma_every=5,
        gamma_lower=lower,
        gamma_upper=upper,
        max_frames=100,
        max_restarts=max_restarts,
    )
    return MDRunSpec.from_config(inference, run_id, temperature, None, seed=3)


def triclinic_cell() -> Atoms:
    """16 Si atoms in a rattled, sheared primitive-cell supercell (a triclinic LAMMPS box)."""
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.02, 0.03, 0.0], [0.0, 0.99, 0.01], [0, 0, 1]]),
                   scale_atoms=True)  # fmt: skip
    atoms.rattle(0.08, seed=1)
    return atoms


def cubic_cell() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=2)
    return atoms


def lammps_single_point(
    profile: LammpsProfile, atoms: Atoms, potential: PotentialFiles, folder: Path
) -> tuple[float, np.ndarray, np.ndarray]:
    """(energy, forces, per-atom gamma) of one frame from `run 0` with the engine's own setup."""
    folder.mkdir()
    elements = lammps_elements(atoms)
    (folder / POTENTIAL_NAME).write_bytes(potential.yaml.read_bytes())
    graded_apart = potential.grader is not None
    if potential.grader is None:
        (folder / ACTIVE_SET_NAME).write_bytes(potential.active_set.read_bytes())
    else:
        (folder / GRADER_NAME).write_bytes(potential.grader.yaml.read_bytes())
        (folder / GRADER_ACTIVE_SET_NAME).write_bytes(potential.grader.active_set.read_bytes())
    write_structure(folder / "structure.data", atoms, elements)
    commands = [
        *setup_commands(elements, graded_apart),
        "fix pace_gamma all pair 1 pace/extrapolation gamma 1",
        "dump frame all custom 1 frame.dump id type x y z fx fy fz f_pace_gamma",
        "dump_modify frame format float %.17g",
        "thermo_style custom step pe",
        "thermo_modify format float %.17g",
        "run 0",
    ]
    (folder / "in.lammps").write_text("\n".join(commands) + "\n")
    argv = profile.argv("in.lammps", "log.lammps")
    returncode, _ = run_process(argv, folder, 300.0, "lammps.out", "lammps.err")
    assert returncode == 0, (folder / "lammps.err").read_text()
    lines = (folder / "log.lammps").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    energy = float(lines[header + 1].split()[1])
    with open(folder / "frame.dump") as dump:
        frame = read_lammps_dump_text(dump, index=-1, specorder=elements)
    # rotate back by hand: ase's Prism.vector_to_ase would wrap forces like positions
    to_ase = lammps_prism(atoms.cell[:]).rot_mat.T
    shift = np.linalg.solve(atoms.cell[:].T, (frame.positions @ to_ase - atoms.positions).T).T
    assert np.allclose(shift, np.round(shift), atol=1e-9)  # the same frame, wrapped into the box
    forces = frame.get_forces() @ to_ase
    return energy, forces, np.asarray(frame.arrays["f_pace_gamma"]).reshape(-1)


def pyace_single_point(
    atoms: Atoms, potential: PotentialFiles | GammaGrader
) -> tuple[float, np.ndarray, np.ndarray]:
    probe = atoms.copy()
    probe.calc = pyace_calculator(str(potential.yaml), str(potential.active_set))
    energy = probe.get_potential_energy()
    return energy, probe.get_forces(), np.asarray(probe.calc.results["gamma"])


@pytest.mark.parametrize("make", [triclinic_cell, cubic_cell])
def test_lammps_and_pyace_agree_on_one_frame(
    make: object, lammps_profile: LammpsProfile, potential: PotentialFiles, tmp_path: Path
) -> None:
    atoms = make()  # type: ignore[operator]
    energy, forces, gamma = lammps_single_point(lammps_profile, atoms, potential, tmp_path / "sp")
    ref_energy, ref_forces, ref_gamma = pyace_single_point(atoms, potential)
    assert energy == pytest.approx(ref_energy, rel=RTOL)
    np.testing.assert_allclose(forces, ref_forces, rtol=RTOL, atol=RTOL * np.abs(ref_forces).max())
    np.testing.assert_allclose(gamma, ref_gamma, rtol=RTOL)
    assert gamma.max() > 0.1  # a real extrapolation grade, not a column of zeros


def test_a_final_fit_graded_by_a_smaller_fit_on_the_same_structures(
    trained_campaign: TrainedCampaign, lammps_profile: LammpsProfile, tmp_path: Path
) -> None:
    """The hand-over's grader: forces from the potential, gamma from the smaller fit on the same
    structures, in LAMMPS (hybrid/scaled, the card's recipe) and in the ASE engine alike."""
    config = trained_campaign.copy_to(tmp_path, number_of_functions_per_element=8, upfit=False)
    small = train_iteration(Campaign.open(config), iteration=1)
    big = trained_campaign.result
    final = with_grader(Candidate("final_001", 1, big), [Candidate("iter_001", 1, small)])
    assert final.grader is not None and final.grader.folder == small.folder
    files = final.potential_files()
    atoms = cubic_cell()
    energy, forces, gamma = lammps_single_point(lammps_profile, atoms, files, tmp_path / "sp")
    own_energy, own_forces, own_gamma = pyace_single_point(atoms, replace(files, grader=None))
    _, _, graded = pyace_single_point(atoms, PotentialFiles(small.potential, small.yace,
                                                            small.active_set))  # fmt: skip
    assert energy == pytest.approx(own_energy, rel=RTOL)
    np.testing.assert_allclose(forces, own_forces, rtol=RTOL, atol=RTOL * np.abs(own_forces).max())
    np.testing.assert_allclose(gamma, graded, rtol=RTOL)
    assert not np.allclose(graded, own_gamma, rtol=1e-3)  # two active sets, told apart
    result = run_ase_md(
        atoms,
        files,
        replace(md_spec("graded", 300.0, 1.5, 1e9, 10), gamma_lower=0.0),
        tmp_path / "md",
    )
    assert result.frames and result.error is None
    for frame in result.frames:
        np.testing.assert_allclose(
            frame.arrays["gamma"], pyace_single_point(frame, files.grading)[2], rtol=1e-6
        )


def test_md_frames_read_back_with_the_gamma_pyace_gives(
    engine: MDEngineSpec, potential: PotentialFiles, tmp_path: Path
) -> None:
    """NPT on a triclinic cell: every dumped frame (cell, positions) has the gamma LAMMPS saw."""
    spec = replace(md_spec("T4000_P1000", 4000.0, 1.5, 4.0, 300), pressure=1000.0)
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 2, 2))
    result = run_md_task(atoms, spec, engine, potential, tmp_path)
    assert result.error is None and result.frames
    calculator = pyace_calculator(str(potential.yaml), str(potential.active_set))
    for frame in result.frames:
        probe = frame.copy()
        probe.calc = calculator
        probe.get_potential_energy()
        np.testing.assert_allclose(frame.arrays["gamma"], calculator.results["gamma"], rtol=RTOL)
    volumes = {round(frame.get_volume(), 6) for frame in result.frames}
    assert len(volumes) == len(result.frames)  # NPT: the box changes from frame to frame


def assert_engine_semantics(result: MDResult, spec: MDRunSpec) -> None:
    checks = result.max_gamma_per_check
    assert result.error is None
    assert len(checks) == result.steps_done // spec.gamma_every + 1
    assert len(result.frames) == sum(g >= spec.gamma_lower for g in checks)
    for frame in result.frames:
        assert frame.info["max_gamma"] >= spec.gamma_lower
        assert frame.info["max_gamma"] == frame.arrays["gamma"].max()
    if result.halted:
        assert checks[-1] >= spec.gamma_upper and all(g < spec.gamma_upper for g in checks[:-1])
        assert result.frames[-1].info["step"] == result.steps_done
    else:
        assert result.steps_done == spec.steps and max(checks) < spec.gamma_upper


def test_hot_run_halts_in_both_engines(
    engine: MDEngineSpec, potential: PotentialFiles, tmp_path: Path
) -> None:
    spec = md_spec("T4000", 4000.0, 1.5, 4.0, 300)
    start = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    lammps = run_md_task(start, spec, engine, potential, tmp_path / "lammps")
    ase = run_ase_md(start, potential, spec, tmp_path / "ase")
    for result in (lammps, ase):
        assert result.halted and result.steps_done < spec.steps, result.max_gamma_per_check
        assert_engine_semantics(result, spec)
    assert np.allclose(lammps.frames[0].cell[:], start.cell[:])  # NVT keeps the box


def test_cold_run_finishes_in_both_engines(
    engine: MDEngineSpec, potential: PotentialFiles, tmp_path: Path
) -> None:
    spec = md_spec("T50", 50.0, 5.0, 50.0, 103)
    start = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    lammps = run_md_task(start, spec, engine, potential, tmp_path / "lammps")
    ase = run_ase_md(start, potential, spec, tmp_path / "ase")
    for result in (lammps, ase):
        assert not result.halted and result.frames == []
        assert_engine_semantics(result, spec)
        assert result.extrapolative_share(spec.gamma_lower) == 0.0
    assert len(lammps.max_gamma_per_check) == len(ase.max_gamma_per_check) == 103 // 5 + 1
    # the same start frame, the same potential: the step-0 check agrees
    assert lammps.max_gamma_per_check[0] == pytest.approx(ase.max_gamma_per_check[0], rel=RTOL)


def test_a_halted_npt_run_restarts_from_its_last_trusted_frame(
    engine: MDEngineSpec, potential: PotentialFiles, tmp_path: Path
) -> None:
    """Triclinic NPT: the trusted frame comes back rotated into the start orientation, with its
    own cell, and LAMMPS starts the next segment from exactly that frame."""
    spec = replace(md_spec("T4000_P1000", 4000.0, 1.5, 4.0, 300, max_restarts=2), pressure=1e3)
    result = run_md_task(triclinic_cell(), spec, engine, potential, tmp_path)
    assert_restarted_from_last_trusted(result, spec)
    trusted = result.segments[0].last_trusted
    assert trusted is not None
    assert not np.allclose(trusted.cell[:], triclinic_cell().cell[:])  # NPT moved the box
    _, _, gamma = pyace_single_point(trusted, potential)
    np.testing.assert_allclose(trusted.arrays["gamma"], gamma, rtol=RTOL)
    assert (tmp_path / "T4000_P1000" / "restart_1" / "trusted_checks.dump").is_file()


def test_a_run_past_its_timeout_is_killed(
    engine: MDEngineSpec, potential: PotentialFiles, tmp_path: Path
) -> None:
    spec = replace(md_spec("long", 300.0, 50.0, 100.0, 100_000_000), timeout=3.0)
    result = run_md_task(
        bulk("Si", "diamond", a=5.43, cubic=True), spec, engine, potential, tmp_path
    )
    assert result.error == "MD run long exceeded 3 s" and not result.halted
    run_dir = (tmp_path / "long").resolve()
    assert not [pid for pid in _pids() if _cwd(pid) == run_dir]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def test_engine_auto_picks_the_real_lammps(lammps_profile: LammpsProfile) -> None:
    engine = select_engine(InferenceConfig(lammps_command=[lammps_profile.executable]))
    assert engine == MDEngineSpec("lammps", lammps_profile, engine.reason)
    assert "ML-PACE" in engine.reason
