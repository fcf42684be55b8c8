"""Phase C with the real pacemaker on the recorded QE Si data, plus a fake one for hard faults."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import StructureRecord
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.training import (
    candidates,
    final_fit_pending,
    latest_fit,
    train_final,
    train_iteration,
)
from mlip_autopipec.training.dataset import TEST, TRAIN, assign_split
from mlip_autopipec.training.inputs import DataFiles, FitStart, build_input, write_input
from mlip_autopipec.training.metrics import read_loss_history
from mlip_autopipec.training.pacemaker import TrainingError, resolve_tool
from mlip_autopipec.training.splits import SplitEntry
from tests.integration.conftest import TrainedCampaign, training_config

pytestmark = pytest.mark.slow

FAKE_PACEMAKER = Path(__file__).resolve().parents[1] / "fakes" / "pacemaker_faulty.py"
runner = CliRunner()


def calculator(path: Path, active_set: Path | None = None) -> Any:
    from pyace import PyACECalculator

    calc = PyACECalculator(str(path))
    if active_set is not None:
        calc.set_active_set(str(active_set))
    return calc


def labeled_records(campaign: TrainedCampaign, split: str) -> list[StructureRecord]:
    records = open_database(campaign.config).select(**{keys.STATUS: keys.LABELED})
    return [r for r in records if r.key_value_pairs.get(keys.SPLIT) == split]


def test_fit_writes_potential_active_set_plots_and_finite_metrics(
    trained_campaign: TrainedCampaign,
) -> None:
    result = trained_campaign.result
    metrics = result.metrics
    assert result.folder.name == "iter_000" and metrics.start_mode == "scratch"
    assert not result.folder.with_name("iter_000.tmp").exists()
    for path in (result.potential, result.active_set, result.yace, result.log):
        assert path.is_file() and path.stat().st_size > 0, path
    assert len(result.plots) == 3
    assert metrics.test is not None
    assert metrics.train.n_structures + metrics.test.n_structures == 28
    values = [metrics.train.rmse_energy, metrics.train.rmse_forces]
    values += [metrics.test.rmse_energy, metrics.test.rmse_forces, metrics.final_loss]
    assert all(np.isfinite(values)) and all(v > 0 for v in values)
    assert metrics.final_loss < metrics.initial_loss
    assert metrics.n_iterations == 30


def test_splits_are_stored_once_and_follow_the_hash(trained_campaign: TrainedCampaign) -> None:
    records = open_database(trained_campaign.config).select(**{keys.STATUS: keys.LABELED})
    fraction = trained_campaign.config.training.test_fraction
    for record in records:
        assert record.key_value_pairs[keys.SPLIT] == assign_split(
            SplitEntry(record.id, record.key_value_pairs[keys.STRUCTURE_HASH]).key, fraction
        )
    test_summary = trained_campaign.result.metrics.test
    assert test_summary is not None
    assert len(labeled_records(trained_campaign, TEST)) == test_summary.n_structures


def test_potential_with_active_set_gives_per_atom_gamma(trained_campaign: TrainedCampaign) -> None:
    result = trained_campaign.result
    calc = calculator(result.potential, result.active_set)
    max_gamma = []
    for record in labeled_records(trained_campaign, TRAIN):
        atoms = record.atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        gamma = calc.results["gamma"]
        assert gamma.shape == (len(atoms),) and np.all(np.isfinite(gamma))
        max_gamma.append(gamma.max())
    assert np.median(max_gamma) <= 1.01  # the active set was built from these environments
    squeezed = bulk("Si", "diamond", a=5.43 * 0.85, cubic=True)
    squeezed.calc = calc
    squeezed.get_potential_energy()
    assert calc.results["gamma"].max() > 5.0  # far outside the training data


def test_yace_loads_and_matches_the_b_basis_potential(trained_campaign: TrainedCampaign) -> None:
    result = trained_campaign.result
    yaml_calc, yace_calc = calculator(result.potential), calculator(result.yace)
    for record in labeled_records(trained_campaign, TRAIN)[:5]:
        atoms = record.atoms.copy()
        atoms.calc = yaml_calc
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = yace_calc
        assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-6 * len(atoms))
        assert np.allclose(atoms.get_forces(), forces, atol=1e-6)


@pytest.mark.parametrize("split", [TRAIN, TEST])
def test_predictions_agree_with_the_reported_rmse(
    trained_campaign: TrainedCampaign, split: str
) -> None:
    result = trained_campaign.result
    reference = result.metrics.reference_energies["Si"]
    calc = calculator(result.potential)
    energy_errors, force_errors = [], []
    for record in labeled_records(trained_campaign, split):
        dft_energy, dft_forces = record.atoms.get_potential_energy(), record.atoms.get_forces()
        atoms = record.atoms.copy()
        atoms.calc = calc
        corrected = dft_energy - reference * len(atoms)
        energy_errors.append((atoms.get_potential_energy() - corrected) / len(atoms))
        force_errors.append((atoms.get_forces() - dft_forces).ravel())
    summary = result.metrics.train if split == TRAIN else result.metrics.test
    assert summary is not None
    rmse_energy = 1e3 * np.sqrt(np.mean(np.square(energy_errors)))
    rmse_forces = 1e3 * np.sqrt(np.mean(np.square(np.concatenate(force_errors))))
    assert rmse_energy == pytest.approx(summary.rmse_energy, rel=1e-3, abs=0.05)
    assert rmse_forces == pytest.approx(summary.rmse_forces, rel=1e-3, abs=0.05)


def initial_loss_in_log(log: Path) -> float:
    match = re.search(r"Initial state:#0 .*?Loss: ([0-9.eE+-]+)", log.read_text())
    assert match, f"no initial loss in {log}"
    return float(match.group(1))


def test_upfit_continues_from_the_previous_potential(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config = trained_campaign.copy_to(tmp_path)
    scratch = trained_campaign.result.metrics
    before = {r.id: r.key_value_pairs[keys.SPLIT] for r in open_database(config).select()}
    upfit = train_iteration(Campaign.open(config), iteration=1)
    metrics = upfit.metrics
    assert metrics.start_mode == "continue"
    assert metrics.previous_potential == str(
        tmp_path / "work/potentials/iter_000/output_potential.yaml"
    )
    assert metrics.reference_energies == scratch.reference_energies
    assert initial_loss_in_log(upfit.log) == pytest.approx(metrics.initial_loss, rel=1e-4)
    assert initial_loss_in_log(trained_campaign.result.log) == pytest.approx(
        scratch.initial_loss, rel=1e-4
    )
    assert metrics.initial_loss < 0.1 * scratch.initial_loss
    assert metrics.initial_loss == pytest.approx(scratch.final_loss, rel=0.02)
    assert metrics.final_loss <= metrics.initial_loss
    history = read_loss_history(upfit.folder / "metrics.txt")
    assert history[0][0] == 0 and len(history) > 1
    assert {r.id: r.key_value_pairs[keys.SPLIT] for r in open_database(config).select()} == before
    newest = latest_fit(Campaign.open(config))
    assert newest is not None and newest.folder == upfit.folder


def test_stalled_upfit_is_checked_against_a_fit_from_scratch(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    # A ratio this small calls every up-fit stalled, so both fits run and the better one stays.
    config = trained_campaign.copy_to(tmp_path, upfit_fallback_ratio=0.01, maxiter=10)
    result = train_iteration(Campaign.open(config), iteration=1)
    discarded = result.folder / "discarded_fit"
    upfit_log, scratch_log = (
        (result.folder, discarded)
        if result.metrics.start_mode == "continue"
        else (discarded, result.folder)
    )
    kept_loss = read_loss_history(result.folder / "metrics.txt")[-1][1]
    other_loss = read_loss_history(discarded / "metrics.txt")[-1][1]
    assert kept_loss <= other_loss
    assert result.metrics.final_loss == kept_loss
    assert "previous_potential.yaml" in (upfit_log / "input.yaml").read_text()
    assert "previous_potential.yaml" not in (scratch_log / "input.yaml").read_text()
    assert "from scratch" in result.metrics.start_reason
    assert result.active_set.is_file() and result.yace.is_file()
    assert not list(result.folder.parent.glob("*.tmp*"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_one_new_labeled_structure(campaign: TrainedCampaign, config_root: Path) -> None:
    from mlip_autopipec.config import load_config

    config = load_config(config_root / "config.yaml")
    (record,) = open_database(config).select(id=1)
    atoms = record.atoms.copy()
    atoms.positions[0] += 0.01
    atoms.calc = SinglePointCalculator(atoms, **record.atoms.calc.results)
    open_database(config).add_structures([atoms], keys.LABELED, 1, "test")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("crash", "pacemaker failed (exit code 1)"),
        ("silent", "pacemaker failed (exit code 0)"),
        ("hang", "pacemaker did not finish within 1 s"),
    ],
)
def test_failed_fit_leaves_previous_potential_and_database_untouched(
    trained_campaign: TrainedCampaign, tmp_path: Path, fault: str, message: str
) -> None:
    command = [sys.executable, str(FAKE_PACEMAKER), fault]
    config = trained_campaign.copy_to(tmp_path, command=command, timeout=1.0)
    add_one_new_labeled_structure(trained_campaign, tmp_path)
    previous = tmp_path / "work/potentials/iter_000"
    files_before = {p.name: digest(p) for p in previous.iterdir() if p.is_file()}
    rows_before = {r.id: r.key_value_pairs for r in open_database(config).select()}
    with pytest.raises(TrainingError) as caught:
        train_iteration(Campaign.open(config))
    log = tmp_path / "work/potentials/iter_001.tmp/pacemaker.log"
    assert message in str(caught.value) and str(log) in str(caught.value)
    assert log.is_file()
    if fault == "crash":
        assert "fake pacemaker crashed on purpose" in str(caught.value)
    assert not (tmp_path / "work/potentials/iter_001").exists()
    assert {p.name: digest(p) for p in previous.iterdir() if p.is_file()} == files_before
    assert {r.id: r.key_value_pairs for r in open_database(config).select()} == rows_before
    newest = latest_fit(Campaign.open(config))
    assert newest is not None and newest.folder == previous


def test_cli_train_reports_metrics_and_paths(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config_path = trained_campaign.root / "config.yaml"
    result = runner.invoke(app, ["train", str(config_path), "--iteration", "0"])
    assert result.exit_code == 0, result.output
    assert "iter_000" in result.output and "RMSE F" in result.output
    assert "output_potential.asi" in result.output and "energy_parity.png" in result.output
    crashing = trained_campaign.copy_to(
        tmp_path, command=[sys.executable, str(FAKE_PACEMAKER), "crash"]
    )
    add_one_new_labeled_structure(trained_campaign, tmp_path)
    result = runner.invoke(app, ["train", str(tmp_path / "config.yaml")])
    assert result.exit_code == 1
    assert "pacemaker.log" in result.output and "fake pacemaker crashed" in result.output
    assert "src/mlip_autopipec" not in result.output  # pacemaker's traceback, not ours
    assert crashing.workflow.work_dir == tmp_path / "work"


@pytest.mark.parametrize("mode", ["scratch", "continue"])
def test_pacemaker_dry_run_accepts_the_written_input(
    trained_campaign: TrainedCampaign, tmp_path: Path, mode: str
) -> None:
    folder = trained_campaign.result.folder
    for name in ("train.pckl.gzip", "test.pckl.gzip"):
        shutil.copy(folder / name, tmp_path / name)
    shutil.copy(folder / "output_potential.yaml", tmp_path / "previous_potential.yaml")
    config = trained_campaign.config
    files = DataFiles("train.pckl.gzip", "test.pckl.gzip", {"Si": -106.7})
    start = FitStart() if mode == "scratch" else FitStart("continue", "previous_potential.yaml")
    write_input(
        build_input(config.training, config.system.elements, files, start),
        tmp_path / "input.yaml",
    )
    completed = subprocess.run(
        [resolve_tool("pacemaker"), "--dry-run", "input.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Dry run is finished" in completed.stderr


def test_a_run_stopped_after_pacemaker_keeps_the_fit(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    """Killed in pace_activeset: the rerun redoes the active set and the .yace, not the fit."""
    config = trained_campaign.copy_to(tmp_path, maxiter=5)
    add_one_new_labeled_structure(trained_campaign, tmp_path)
    finished = train_iteration(Campaign.open(config))
    fitted = digest(finished.potential)
    staging = finished.folder.with_name(finished.folder.name + ".tmp")
    finished.folder.rename(staging)  # as the kill left it: fit done, no active set yet
    for name in ("output_potential.asi", "output_potential.yace", "metrics.json"):
        (staging / name).unlink()
    # A pacemaker that fails whenever it is started: the rerun must not start it.
    command = [sys.executable, str(FAKE_PACEMAKER), "crash"]
    config = training_config(tmp_path, command=command, maxiter=5)  # same work dir
    resumed = train_iteration(Campaign.open(config))
    assert resumed.folder == finished.folder
    assert digest(resumed.potential) == fitted
    assert resumed.active_set.is_file() and resumed.yace.is_file()
    assert resumed.metrics.start_mode == finished.metrics.start_mode
    assert not staging.exists()


def test_a_basis_larger_than_the_data_is_capped_so_the_active_set_is_determined(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config = trained_campaign.copy_to(tmp_path, number_of_functions_per_element=100_000, maxiter=3)
    add_one_new_labeled_structure(trained_campaign, tmp_path)
    result = train_iteration(Campaign.open(config))
    train_atoms = sum(len(r.atoms) for r in labeled_records_of(config, TRAIN))
    functions = result.metrics.potential_section["functions"]["number_of_functions_per_element"]
    assert functions == int(0.75 * train_atoms)
    assert result.active_set.is_file() and result.yace.is_file()


def test_the_final_fit_starts_from_scratch_on_every_label_with_its_own_settings(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config = trained_campaign.copy_to(tmp_path, final_maxiter=7, final_kappa=0.02, kappa=0.3)
    add_one_new_labeled_structure(trained_campaign, tmp_path)  # labeled in iteration 1
    campaign = Campaign.open(config)
    final = train_final(campaign)
    assert final is not None and final.folder == tmp_path / "work/potentials/final_001"
    written = read_input_yaml(final.folder / "input.yaml")
    assert written["metadata"]["start"] == "scratch" and "initial_potential" not in str(written)
    assert written["fit"]["maxiter"] == 7 and written["fit"]["loss"]["kappa"] == 0.02
    labeled = open_database(config).count(**{keys.STATUS: keys.LABELED})
    test = final.metrics.test
    assert final.metrics.train.n_structures + (test.n_structures if test else 0) == labeled
    assert final.metrics.reference_energies == trained_campaign.result.metrics.reference_energies
    assert final.active_set.is_file() and final.yace.is_file()
    # Finished: returned as it is, never fitted again (a pacemaker that crashes is not started).
    command = [sys.executable, str(FAKE_PACEMAKER), "crash"]
    again = training_config(tmp_path, command=command, final_maxiter=7, final_kappa=0.02)
    kept = train_final(Campaign.open(again))
    assert kept is not None and kept.folder == final.folder
    assert digest(kept.potential) == digest(final.potential)
    names = [c.name for c in candidates(Campaign.open(config))]
    assert names == ["iter_000", "final_001"]  # the loop's fits first, oldest first
    assert train_final(Campaign.open(training_config(tmp_path, final_maxiter=0))) is None


def test_a_final_fit_made_with_other_settings_is_set_aside_and_fitted_again(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config = trained_campaign.copy_to(tmp_path, final_maxiter=7, final_kappa=0.02)
    first = train_final(Campaign.open(config))
    assert first is not None
    first_potential = digest(first.potential)
    validation = tmp_path / "work" / "validation"
    validation.mkdir(parents=True, exist_ok=True)
    (validation / f"{first.folder.name}.json").write_text("{}")  # its validation, stale soon
    campaign = Campaign.open(training_config(tmp_path, final_maxiter=7, final_kappa=0.05))
    assert final_fit_pending(campaign)

    again = train_final(campaign)

    assert again is not None and again.folder == first.folder
    assert read_input_yaml(again.folder / "input.yaml")["fit"]["loss"]["kappa"] == 0.05
    aside = tmp_path / "work" / "potentials" / "superseded" / f"{first.folder.name}-1"
    assert digest(aside / first.potential.name) == first_potential
    assert (aside / "validation" / f"{first.folder.name}.json").is_file()
    assert not (validation / f"{first.folder.name}.json").exists()
    assert not final_fit_pending(campaign)
    assert [c.name for c in candidates(campaign)] == ["iter_000", first.folder.name]


def read_input_yaml(path: Path) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def labeled_records_of(config: Any, split: str) -> list[StructureRecord]:
    records = open_database(config).select(**{keys.STATUS: keys.LABELED})
    return [r for r in records if r.key_value_pairs.get(keys.SPLIT) == split]
