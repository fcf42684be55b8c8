"""QERunner and label_structure with a fake pw.x that replays recorded pw.x 6.7 outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from ase.build import bulk

from mlip_autopipec.config import DFTConfig, config_from_dict
from mlip_autopipec.dft.runner import PwProfile, label_structure

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "pw_scripted.py"
QE_DATA = Path(__file__).resolve().parents[1] / "data" / "qe"
CONVERGED = {"stdout": str(QE_DATA / "si2_converged_6.7.out"), "exit": 0, "outdir": True}
FIRST_ATTEMPT = r"diagonalization\s*=\s*'david'"


def dft_config(
    tmp_path: Path, config_dict: dict[str, Any], rules: list[dict[str, Any]]
) -> DFTConfig:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(rules))
    config_dict["dft"]["command"] = [sys.executable, str(FAKE), str(script)]
    return config_from_dict(config_dict, base_dir=tmp_path).dft


def fake_log(run_dir: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(run_dir) / "fake.log").read_text().splitlines()]


def test_error_only_in_crash_is_classified_and_recovered(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    rank1_failure = {
        "when": FIRST_ATTEMPT,
        "stdout": str(QE_DATA / "si2_cdiaghg_rank1_spliced.out"),
        "crash": str(QE_DATA / "si2_cdiaghg_rank1_spliced.CRASH"),
        "exit": 1,
    }
    dft = dft_config(tmp_path, config_dict, [rank1_failure, {"when": ".", **CONVERGED}])
    outcome = label_structure(7, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000007")
    first, second = outcome.attempts
    assert first.errors == ["diagonalization", "nonzero_exit"]
    assert first.message == "cdiaghg (207): problems computing cholesky [CRASH]"
    assert first.correction == "diagonalization david -> ppcg"
    assert first.correction_for == "diagonalization"
    assert second.restart_from is None  # a new solver starts from scratch
    assert outcome.labeled and second.errors == []
    assert not (Path(second.run_dir) / "CRASH").exists()
    assert outcome.failure_kind is None and outcome.error_codes == []


def test_stale_crash_from_a_killed_run_cannot_leak(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    dft = dft_config(tmp_path, config_dict, [{"when": ".", **CONVERGED}])
    stale = tmp_path / "dft" / "000003" / "attempt_0"
    stale.mkdir(parents=True)
    (stale / "CRASH").write_text((QE_DATA / "si2_cdiaghg_rank1_spliced.CRASH").read_text())
    outcome = label_structure(3, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000003")
    assert outcome.labeled and outcome.attempts[0].errors == []
    assert not (stale / "CRASH").exists()


@pytest.mark.parametrize("linked", ["structure", "attempt"])
def test_stale_attempt_cleanup_never_follows_a_symlink(
    tmp_path: Path, config_dict: dict[str, Any], linked: str
) -> None:
    dft = dft_config(tmp_path, config_dict, [{"when": ".", **CONVERGED}])
    outside = tmp_path / "outside"
    (outside / "attempt_0").mkdir(parents=True)
    (outside / "attempt_0" / "precious.txt").write_text("keep me")
    structure_dir = tmp_path / "dft" / "000009"
    if linked == "structure":
        structure_dir.parent.mkdir()
        structure_dir.symlink_to(outside, target_is_directory=True)
    else:
        structure_dir.mkdir(parents=True)
        (structure_dir / "attempt_0").symlink_to(outside / "attempt_0", target_is_directory=True)
    outcome = label_structure(9, bulk("Si", "diamond", a=5.43), dft, structure_dir)
    assert not outcome.labeled and outcome.failure_kind == "unsafe_run_folder"
    assert outcome.reason is not None and "symbolic link" in outcome.reason
    assert (outside / "attempt_0" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("restart", [True, False])
def test_recovered_attempt_restarts_from_the_previous_charge_density(
    tmp_path: Path, config_dict: dict[str, Any], restart: bool
) -> None:
    unconverged = {
        "when": r"mixing_beta\s*=\s*0\.7\b",
        "stdout": str(QE_DATA / "si2_scf_not_converged_6.7.out"),
        "exit": 2,
        "outdir": True,
    }
    dft = dft_config(tmp_path, config_dict, [unconverged, {"when": ".", **CONVERGED}])
    outcome = label_structure(
        5, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000005", restart=restart
    )
    first, second = outcome.attempts
    assert first.errors == ["scf_not_converged", "nonzero_exit"]
    assert first.scf_iterations == 1 and second.scf_iterations == 6
    assert outcome.labeled
    [started] = fake_log(second.run_dir)
    if restart:
        assert second.restart_from == "attempt_0 charge_density"
        assert started["startingpot"] and not started["startingwfc"]
        assert started["density_present"]
    else:
        assert second.restart_from is None
        assert not started["startingpot"] and not started["density_present"]
    for attempt in outcome.attempts:  # large files are not kept once the label is done
        assert not (Path(attempt.run_dir) / "tmp").exists()


def test_failure_carries_its_codes_as_data(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    missing = {
        "when": ".",
        "stdout": str(QE_DATA / "si2_missing_pseudo_6.7.out"),
        "crash": str(QE_DATA / "si2_missing_pseudo_6.7.CRASH"),
        "exit": 1,
    }
    dft = dft_config(tmp_path, config_dict, [missing])
    outcome = label_structure(2, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000002")
    assert not outcome.labeled and len(outcome.attempts) == 1
    assert outcome.failure_kind == "pseudopotential"
    assert outcome.error_codes == ["pseudopotential", "nonzero_exit"]
    assert outcome.reason == (
        "pseudopotential,nonzero_exit after 1 attempt(s): "
        "readpp (1): file /usr/share/espresso/pseudo/Si.missing.UPF not found"
    )


def test_relaxation_output_is_never_retried_or_stored(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    relax = {"when": ".", "stdout": str(QE_DATA / "si2_relax_converged_6.7.out"), "exit": 0}
    dft = dft_config(tmp_path, config_dict, [relax])
    outcome = label_structure(4, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000004")
    assert not outcome.labeled and len(outcome.attempts) == 1
    assert outcome.failure_kind == "not_single_point"


def test_missing_program_is_a_failure_kind(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    dft = dft_config(tmp_path, config_dict, [])
    dft = dft.model_copy(update={"command": ["no-such-pw.x"]})
    outcome = label_structure(1, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000001")
    assert outcome.failure_kind == "executable_not_found"
    assert outcome.reason is not None and "no-such-pw.x" in outcome.reason


def test_threads_are_pinned_unless_the_launcher_sets_them(
    tmp_path: Path, config_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    dft = dft_config(tmp_path, config_dict, [{"when": ".", **CONVERGED}])
    outcome = label_structure(6, bulk("Si", "diamond", a=5.43), dft, tmp_path / "dft" / "000006")
    assert fake_log(outcome.attempts[0].run_dir)[0]["omp"] == "1"
    launched = dft.model_copy(update={"launcher": ["env", "OMP_NUM_THREADS=2"]})
    assert PwProfile.from_config(launched).env == ()
    outcome = label_structure(
        8, bulk("Si", "diamond", a=5.43), launched, tmp_path / "dft" / "000008"
    )
    assert fake_log(outcome.attempts[0].run_dir)[0]["omp"] == "2"
