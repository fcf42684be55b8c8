"""The LAMMPS engine's pure parts on outputs recorded with real LAMMPS 4 Feb 2025 + ML-PACE
(tests/data/lammps/record.py), and its launch profile on small fake programs."""

from __future__ import annotations

import os
import pickle
import stat
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.errors import UserError
from mlip_autopipec.inference.engines import (
    MDEngineSpec,
    UnknownEngineError,
    run_md_task,
    select_engine,
)
from mlip_autopipec.inference.lammps import (
    first_error,
    last_frame,
    parse_dump,
    parse_log,
    safe_token,
    write_lammps_input,
)
from mlip_autopipec.inference.lammps_profile import (
    LammpsError,
    LammpsProfile,
    lammps_has_ml_pace,
    parse_help,
)
from mlip_autopipec.inference.md_types import MDRunSpec, PotentialFiles

DATA = Path(__file__).resolve().parents[1] / "data" / "lammps"
HOT = DATA / "hot_npt_triclinic"
COLD = DATA / "cold_nvt"
TRICLINIC_START = bulk("Si", "diamond", a=5.43).repeat((2, 2, 2))  # the hot run's start


def spec(**changes: object) -> MDRunSpec:
    inference = InferenceConfig(steps=500, gamma_every=10, gamma_lower=2.0, gamma_upper=10.0)
    base = MDRunSpec.from_config(inference, "T900_r0", 900.0, None, 7)
    return replace(base, **changes)


def fake_program(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def fake_lmp_help(folder: Path, help_file: Path = DATA / "lmp_help.txt") -> Path:
    return fake_program(folder, "lmp", f'/bin/cat "{help_file}"\n')


# --- what to compute: the input -------------------------------------------------------------


def test_generated_input_matches_golden_file() -> None:
    assert write_lammps_input(spec(), ["Si"]) == (DATA / "in.nvt.golden").read_text()


def test_input_loads_the_b_basis_yaml_with_the_active_set() -> None:
    text = write_lammps_input(spec(), ["Si"])
    assert "pair_coeff * * potential.yaml potential.asi Si" in text
    assert ".yace" not in text


def test_the_recorded_runs_used_the_current_input_writer() -> None:
    """The recorded outputs stay valid evidence only while the writer produces their input."""
    hot = replace(spec(), temperature=4000.0, pressure=1000.0, steps=300, seed=3, gamma_every=5)
    hot = replace(hot, gamma_lower=1.5, gamma_upper=4.0, timestep=1.0)
    assert write_lammps_input(hot, ["Si"]) == (HOT / "in.lammps").read_text()


def test_npt_input_and_two_species() -> None:
    text = write_lammps_input(spec(pressure=1.0), ["Si", "Ge"])
    assert "fix md all npt temp 900 900 0.1 iso 1 1 1" in text
    assert "pair_coeff * * potential.yaml potential.asi Si Ge" in text
    assert "mass 2 72.63" in text


def test_thresholds_use_at_least_semantics() -> None:
    text = write_lammps_input(spec(), ["Si"])
    assert 'variable dump_skip equal "c_max_pace_gamma < 2"' in text
    assert 'variable checks_skip equal "c_max_pace_gamma >= 10"' in text  # trusted: below
    assert "halt 10 v_max_pace_gamma >= 10 error soft" in text


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
        "thermo_style", "thermo_modify", "thermo", "run",
    }  # fmt: skip
    text = write_lammps_input(spec(pressure=5.0), ["Si"])
    assert {line.split()[0] for line in text.splitlines() if line.strip()} <= allowed


# --- reading what real LAMMPS wrote ---------------------------------------------------------


def test_log_of_a_halted_run() -> None:
    steps, halted, gammas = parse_log((HOT / "log.lammps").read_text(), every=5)
    assert halted and steps == 55
    assert len(gammas) == 55 // 5 + 1  # checks at 0, 5, ..., 55 (the halting one included)
    assert gammas[-1] >= 4.0 and all(g < 4.0 for g in gammas[:-1])


def test_log_of_a_finished_run_skips_the_stale_last_row() -> None:
    text = (COLD / "log.lammps").read_text()
    steps, halted, gammas = parse_log(text, every=5)
    assert steps == 203 and not halted
    assert len(gammas) == 203 // 5 + 1
    assert "\n       203 " in text  # LAMMPS prints the last step, whose gamma is not a check


def test_dump_frames_carry_gamma_and_the_start_orientation() -> None:
    text = (HOT / "extrapolative_structures.dump").read_text()
    frames = parse_dump(text, ["Si"], "hot", TRICLINIC_START.cell[:])
    _, _, gammas = parse_log((HOT / "log.lammps").read_text(), every=5)
    assert [f.info["step"] for f in frames] == [40, 45, 50, 55]
    for frame in frames:
        assert frame.get_chemical_symbols() == ["Si"] * 16
        assert frame.arrays["gamma"].shape == (16,)
        assert frame.info["max_gamma"] == frame.arrays["gamma"].max() >= 1.5
        assert frame.info["max_gamma"] == pytest.approx(gammas[frame.info["step"] // 5], 1e-9)
        # NPT scaled the cell isotropically; it is read back in the start cell's orientation
        off_zero = TRICLINIC_START.cell[:] != 0
        ratio = frame.cell[:][off_zero] / TRICLINIC_START.cell[:][off_zero]
        assert np.ptp(ratio) < 1e-9 and ratio[0] > 1.0
        assert np.allclose(frame.cell[:][~off_zero], 0.0, atol=1e-9)
        assert np.all(frame.get_scaled_positions() < 1.0 + 1e-12)


def test_dump_without_start_cell_is_in_lammps_orientation() -> None:
    text = (HOT / "extrapolative_structures.dump").read_text()
    frame = parse_dump(text, ["Si"], "hot")[0]
    assert np.allclose(np.triu(frame.cell[:], 1), 0.0)  # lower triangular, as LAMMPS keeps it


def test_a_dump_cut_off_by_a_kill_keeps_its_complete_frames() -> None:
    text = (HOT / "extrapolative_structures.dump").read_text()
    cut = text[: text.rindex("ITEM: ATOMS") + 200]
    frames = parse_dump(cut, ["Si"], "hot", TRICLINIC_START.cell[:])
    assert [f.info["step"] for f in frames] == [40, 45, 50]


def test_last_trusted_frame_is_the_last_check_below_upper_in_the_start_orientation() -> None:
    checks = (HOT / "trusted_checks.dump").read_text()
    trusted = last_frame(checks, ["Si"], "hot", TRICLINIC_START.cell[:])
    assert trusted is not None
    assert trusted.info["step"] == 50  # the run halted at the check of step 55
    assert trusted.info["max_gamma"] < 4.0
    # step 50 also reached gamma_lower, so the gamma-triggered dump holds the same frame
    dumped = parse_dump((HOT / "extrapolative_structures.dump").read_text(), ["Si"], "hot",
                        TRICLINIC_START.cell[:])  # fmt: skip
    same = next(frame for frame in dumped if frame.info["step"] == 50)
    np.testing.assert_allclose(trusted.positions, same.positions, atol=1e-12)
    np.testing.assert_allclose(trusted.cell[:], same.cell[:], atol=1e-12)
    np.testing.assert_array_equal(trusted.arrays["gamma"], same.arrays["gamma"])


def test_a_finished_run_trusts_its_last_check_and_an_empty_dump_trusts_nothing() -> None:
    cold_start = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    checks = (COLD / "trusted_checks.dump").read_text()
    trusted = last_frame(checks, ["Si"], "cold", cold_start.cell[:])
    assert trusted is not None and trusted.info["step"] == 200  # 203 is not a check
    assert last_frame("", ["Si"], "x", cold_start.cell[:]) is None


def test_empty_dump_means_no_frames() -> None:
    assert parse_dump((COLD / "extrapolative_structures.dump").read_text(), ["Si"], "x") == []
    assert parse_dump("", ["Si"], "x") == []


def test_yace_given_to_pace_extrapolation_is_reported() -> None:
    folder = DATA / "bad_conversion"
    texts = [(folder / name).read_text() for name in ("log.lammps", "lammps.err")]
    assert first_error(*texts) == "Exception: bad conversion"
    assert first_error("ERROR: Lost atoms: original 16 current 15 (src/thermo.cpp:494)") == (
        "ERROR: Lost atoms: original 16 current 15 (src/thermo.cpp:494)"
    )
    assert first_error((COLD / "log.lammps").read_text()) is None


# --- how to run: the profile ----------------------------------------------------------------


def test_help_of_the_real_build() -> None:
    about = parse_help((DATA / "lmp_help.txt").read_text())
    assert about.version == "4 Feb 2025"
    assert about.packages == {"ML-PACE"}


def test_profile_of_a_lammps_with_ml_pace(tmp_path: Path) -> None:
    lmp = fake_lmp_help(tmp_path)
    profile = LammpsProfile.from_command([str(lmp), "-sf", "omp"])
    assert profile.executable == str(lmp) and profile.version == "4 Feb 2025"
    assert profile.argv("in", "log") == [
        str(lmp),
        "-sf",
        "omp",
        "-nocite",
        "-in",
        "in",
        "-log",
        "log",
    ]
    assert pickle.loads(pickle.dumps(MDEngineSpec("lammps", profile))).lammps == profile


def test_lammps_without_ml_pace_is_a_user_error_naming_the_package(tmp_path: Path) -> None:
    without = tmp_path / "help.txt"
    without.write_text((DATA / "lmp_help.txt").read_text().replace("ML-PACE", "MANYBODY"))
    lmp = fake_lmp_help(tmp_path, without)
    with pytest.raises(LammpsError, match="has no ML-PACE package") as caught:
        LammpsProfile.from_command([str(lmp)])
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)
    assert not lammps_has_ml_pace(str(lmp))
    assert not lammps_has_ml_pace("/bin/echo")


def test_missing_lammps_is_a_lammps_error() -> None:
    with pytest.raises(LammpsError, match="LAMMPS not found"):
        LammpsProfile.from_command(["no-such-lmp-here"])


# --- choosing the engine --------------------------------------------------------------------


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds only an empty folder, so no real `lmp` is found there."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_engine_ase_is_taken_as_configured() -> None:
    assert select_engine(InferenceConfig(engine="ase")) == MDEngineSpec(
        "ase", reason="inference.engine is ase"
    )


def test_engine_lammps_must_have_ml_pace(tmp_path: Path) -> None:
    inference = InferenceConfig(engine="lammps", lammps_command=["/bin/echo"])
    with pytest.raises(LammpsError, match="no ML-PACE"):
        select_engine(inference)
    lmp = fake_lmp_help(tmp_path)
    engine = select_engine(InferenceConfig(engine="lammps", lammps_command=[str(lmp)]))
    assert engine.name == "lammps" and engine.lammps is not None
    assert engine.lammps.executable == str(lmp)


def test_engine_auto_is_the_default_and_prefers_lammps(tmp_path: Path) -> None:
    lmp = fake_lmp_help(tmp_path)
    assert InferenceConfig().engine == "auto"
    engine = select_engine(InferenceConfig(lammps_command=[str(lmp)]))
    assert engine.name == "lammps" and "engine auto found" in engine.reason


def test_engine_auto_falls_back_to_lmp_on_path(empty_path: Path) -> None:
    fake_lmp_help(empty_path)
    engine = select_engine(InferenceConfig(lammps_command=["no-such-lmp-here"]))
    assert engine.lammps is not None and engine.lammps.executable == str(empty_path / "lmp")


def test_engine_auto_without_lammps_is_ase_and_says_why(
    empty_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="mlip_autopipec.inference.engines")
    engine = select_engine(InferenceConfig())
    assert engine.name == "ase" and engine.lammps is None
    assert "no LAMMPS with ML-PACE" in engine.reason and "'lmp' not found" in engine.reason
    assert "MD engine: ase" in caplog.text


def test_unknown_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownEngineError, match="'gromacs'"):
        run_md_task(bulk("Si"), spec(), MDEngineSpec("gromacs"), potential(tmp_path), tmp_path)


# --- the runner, with a program that replays a recorded run or fails on demand --------------


def potential(folder: Path) -> PotentialFiles:
    for name in ("p.yaml", "p.yace", "p.asi"):
        (folder / name).write_text("recorded runs do not read it\n")
    return PotentialFiles(folder / "p.yaml", folder / "p.yace", folder / "p.asi")


def lammps_engine(program: Path) -> MDEngineSpec:
    return MDEngineSpec("lammps", LammpsProfile(executable=str(program)))


def test_runner_turns_a_recorded_run_into_an_md_result(tmp_path: Path) -> None:
    replay = fake_program(
        tmp_path,
        "replay",
        f'cp "{HOT}/log.lammps" log.lammps\ncp "{HOT}/extrapolative_structures.dump" .\n'
        f'cp "{HOT}/trusted_checks.dump" .\n',
    )
    run_spec = replace(spec(), run_id="hot", gamma_every=5, gamma_lower=1.5, max_frames=3)
    run_spec = replace(run_spec, max_restarts=0)  # a replay cannot follow a restart
    result = run_md_task(
        TRICLINIC_START, run_spec, lammps_engine(replay), potential(tmp_path), tmp_path
    )
    run_dir = tmp_path / "hot"
    assert (run_dir / "potential.yaml").read_text() == (tmp_path / "p.yaml").read_text()
    assert (run_dir / "structure.data").is_file() and (run_dir / "in.lammps").is_file()
    assert result.error is None and result.halted and result.steps_done == 55
    assert [f.info["step"] for f in result.frames] == [40, 45, 50]  # max_frames
    assert result.last_trusted is not None and result.last_trusted.info["step"] == 50
    assert len(result.segments) == 1 and result.halts == 1
    assert result.extrapolative_share(1.5) == pytest.approx(4 / 12)


def test_a_failing_lammps_reports_its_error_line(tmp_path: Path) -> None:
    crash = fake_program(
        tmp_path, "crash", 'echo "ERROR: Lost atoms: original 16 current 15"\nexit 1\n'
    )
    result = run_md_task(
        TRICLINIC_START, spec(), lammps_engine(crash), potential(tmp_path), tmp_path
    )
    assert result.error == "lmp exited with 1: ERROR: Lost atoms: original 16 current 15"
    assert not result.halted and result.frames == []


def test_a_hanging_lammps_is_killed_with_its_process_group(tmp_path: Path) -> None:
    hang = fake_program(tmp_path, "hanging-lmp", "sleep 300 &\necho $! > child.pid\nwait\n")
    run_spec = replace(spec(), run_id="hang", timeout=2.0)
    result = run_md_task(
        TRICLINIC_START, run_spec, lammps_engine(hang), potential(tmp_path), tmp_path
    )
    assert result.error == "MD run hang exceeded 2 s"
    child = int((tmp_path / "hang" / "child.pid").read_text())
    assert not _alive(child)


def _alive(pid: int) -> bool:
    for _ in range(50):  # the killed child may take a moment to be reaped by init
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        if Path(f"/proc/{pid}/stat").is_file() and ") Z " in Path(f"/proc/{pid}/stat").read_text():
            return False
        time.sleep(0.1)
    return True


def test_a_graded_apart_input_takes_forces_from_the_potential_and_gamma_from_the_grader() -> None:
    from mlip_autopipec.inference.lammps import GRADER_ACTIVE_SET_NAME, GRADER_NAME, setup_commands

    lines = setup_commands(["Si", "Ge"], graded_apart=True)
    assert "pair_style hybrid/scaled 1.0 pace 0.0 pace/extrapolation" in lines
    assert "pair_coeff * * pace potential.yaml Si Ge" in lines
    assert (
        f"pair_coeff * * pace/extrapolation {GRADER_NAME} {GRADER_ACTIVE_SET_NAME} Si Ge" in lines
    )
    assert not any("potential.asi" in line for line in lines)
    text = write_lammps_input(spec(), ["Si"], graded_apart=True)
    assert "fix pace_gamma all pair 10 pace/extrapolation gamma 1" in text  # the grader's gamma
