"""Phase B with the real pw.x (Debian package) on small Si cells, plus fakes for hard faults."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.dft.runner import label_structure
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.labeling import LabelingProgress
from mlip_autopipec.orchestration.labeling import label_selected as label_campaign

pytestmark = pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x not installed")

FAKE_PW = Path(__file__).resolve().parents[1] / "fakes" / "pw_faulty.py"


# Real pw.x gets a limit it never needs (a 2-atom run takes seconds, more on a busy machine);
# only the fake hang runs under a short one, in a config of its own.
REAL_TIMEOUT = 600


def label_selected(config: MLIPConfig, retry_failed: bool = False) -> LabelingProgress:
    return label_campaign(Campaign.open(config), retry_failed=retry_failed)


def make_config(tmp_path: Path, config_dict: dict[str, Any], **dft: Any) -> MLIPConfig:
    config_dict["dft"].update({"timeout": REAL_TIMEOUT, **dft})
    config_dict["workflow"] = {"work_dir": str(tmp_path / "work")}
    return config_from_dict(config_dict, base_dir=tmp_path)


def si2(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=seed)
    return atoms


def si8(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def select(config: MLIPConfig, structures: list[Atoms]) -> list[int]:
    return open_database(config).add_structures(structures, keys.SELECTED, 0, "test")


def attempt_dirs(config: MLIPConfig) -> list[Path]:
    return sorted((config.workflow.work_dir / "dft").glob("*/sub_*/attempt_*"))


def test_real_pw_labels_si2_and_si8_once(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    config = make_config(tmp_path, config_dict)
    ids = select(config, [si2(1), si8(2)])
    summary = label_selected(config)
    assert (summary.labeled, summary.failed) == (2, 0)
    assert summary.dft_wall_time > 0
    database = open_database(config)
    for row_id, natoms in zip(ids, (2, 8), strict=True):
        record = database.get(row_id)
        assert record.status == keys.LABELED
        assert record.key_value_pairs[keys.DFT_ATTEMPTS] == 1
        forces = record.atoms.get_forces()
        assert forces.shape == (natoms, 3) and np.all(np.isfinite(forces))
        assert -110 * natoms < record.atoms.get_potential_energy() < -100 * natoms  # Si, eV
        assert record.atoms.get_stress().shape == (6,)
    runs_before = attempt_dirs(config)
    again = label_selected(config)
    assert again.queued == 0 and attempt_dirs(config) == runs_before


def test_unconverged_scf_is_not_stored_as_label(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = make_config(tmp_path, config_dict, electron_maxstep=1, recovery=False)
    [row_id] = select(config, [si2(3)])
    summary = label_selected(config)
    record = open_database(config).get(row_id)
    assert summary.failed == 1 and record.status == keys.FAILED
    assert "scf_not_converged" in record.key_value_pairs[keys.REASON]
    assert record.key_value_pairs[keys.FAILURE_KIND] == "scf_not_converged"
    assert record.atoms.calc is None
    fixed = make_config(tmp_path, config_dict, electron_maxstep=100, recovery=False)
    assert label_selected(fixed).queued == 0  # failed rows stay failed unless asked
    retried = label_selected(fixed, retry_failed=True)
    assert retried.labeled == 1 and open_database(fixed).get(row_id).status == keys.LABELED


def test_recovery_ladder_turns_a_failure_into_a_label(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = make_config(tmp_path, config_dict, electron_maxstep=1, max_retries=3)
    [row_id] = select(config, [si2(4)])
    label_selected(config)
    record = open_database(config).get(row_id)
    assert record.status == keys.LABELED
    attempts = record.data[keys.DFT_ATTEMPTS]
    assert len(attempts) >= 2 and record.key_value_pairs[keys.DFT_ATTEMPTS] == len(attempts)
    assert "scf_not_converged" in attempts[0]["errors"]
    assert attempts[0]["correction"] == "mixing_beta 0.7 -> 0.35, electron_maxstep 1 -> 50"
    assert attempts[-1]["errors"] == [] and attempts[-1]["parameters"]["mixing_beta"] == 0.35
    assert attempts[1]["restart_from"] == "attempt_0 charge_density"
    assert not list((config.workflow.work_dir / "dft").glob("*/sub_*/attempt_*/tmp"))


def test_restart_from_the_failed_attempts_density_saves_scf_iterations(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """The same correction with and without the restart, on the same structure: the restarted
    attempt starts from attempt 0's density (2 SCF steps in) and needs fewer iterations."""
    config = make_config(tmp_path, config_dict, electron_maxstep=2, max_retries=1)
    atoms = si2(4)
    iterations = {}
    for restart in (True, False):
        outcome = label_structure(
            1, atoms, config.dft, tmp_path / f"dft_{restart}" / "000001", restart
        )
        assert outcome.labeled, outcome.reason
        first, second = outcome.attempts
        assert first.errors[0] == "scf_not_converged" and first.scf_iterations == 2
        assert second.restart_from == ("attempt_0 charge_density" if restart else None)
        assert "The initial density is read from file" in _output(second.run_dir) or not restart
        iterations[restart] = second.scf_iterations
    assert iterations[True] < iterations[False], iterations


def _output(run_dir: str) -> str:
    return (Path(run_dir) / "pw.out").read_text()


def test_missing_pseudopotential_is_a_classified_failure(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    pseudo_dir = tmp_path / "pseudo"
    pseudo_dir.mkdir()
    shutil.copy("/usr/share/espresso/pseudo/Si.pbe-rrkj.UPF", pseudo_dir / "Si.local.UPF")
    config = make_config(
        tmp_path, config_dict, pseudo_dir=str(pseudo_dir), pseudopotentials={"Si": "Si.local.UPF"}
    )
    (pseudo_dir / "Si.local.UPF").unlink()  # disappears after validation, as on a cluster
    [row_id] = select(config, [si2(5)])
    label_selected(config)
    record = open_database(config).get(row_id)
    assert record.status == keys.FAILED
    reason = record.key_value_pairs[keys.REASON]
    assert "pseudopotential" in reason and "Si.local.UPF not found" in reason
    assert record.key_value_pairs[keys.FAILURE_KIND] == "pseudopotential"
    assert record.key_value_pairs[keys.DFT_ATTEMPTS] == 1  # not retried: nothing to correct
    [run_dir] = attempt_dirs(config)
    assert "from readpp : error #" in (run_dir / "CRASH").read_text()  # what the parser read


def test_crash_and_garbage_fail_cleanly_while_the_batch_goes_on(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    command = [sys.executable, str(FAKE_PW), "3=crash,4=garbage", shutil.which("pw.x")]
    config = make_config(tmp_path, config_dict, command=command)
    three = Atoms(
        "Si3",
        scaled_positions=[[0, 0, 0], [0.33, 0.33, 0], [0.66, 0.66, 0]],
        cell=[6, 6, 3],
        pbc=True,
    )
    four = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    ids = select(config, [si2(6), three, four])
    summary = label_selected(config)
    database = open_database(config)
    records = [database.get(row_id) for row_id in ids]
    assert [record.status for record in records] == [keys.LABELED, keys.FAILED, keys.FAILED]
    kinds = [record.key_value_pairs.get(keys.FAILURE_KIND) for record in records]
    assert kinds[1:] == ["crashed", "interrupted"]
    assert "killed by signal SIGSEGV" in records[1].key_value_pairs[keys.REASON]
    assert summary.labeled == 1 and summary.failed == 2


def test_hang_is_killed_with_its_children_and_the_batch_goes_on(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """Only fakes run here, so the hang can have a short limit of its own."""
    command = [sys.executable, str(FAKE_PW), "1=hang,4=garbage", shutil.which("pw.x")]
    config = make_config(tmp_path, config_dict, command=command, timeout=3)
    one = Atoms("Si", cell=[2.7, 2.7, 2.7], pbc=True)
    four = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    ids = select(config, [one, four])
    summary = label_selected(config)
    database = open_database(config)
    hang, garbage = (database.get(row_id).key_value_pairs for row_id in ids)
    assert hang[keys.FAILURE_KIND] == "timeout_killed"
    assert hang[keys.REASON] == "timeout_killed after 1 attempt(s): killed after 3 s"
    assert garbage[keys.FAILURE_KIND] == "interrupted"
    assert summary.failed == 2
    hang_dir = config.workflow.work_dir / "dft" / f"{ids[0]:06d}" / "sub_0" / "attempt_0"
    child_pid = int((hang_dir / "child.pid").read_text())
    assert not Path(f"/proc/{child_pid}").exists() or _is_zombie(child_pid)


def _is_zombie(pid: int) -> bool:
    return " Z " in Path(f"/proc/{pid}/stat").read_text()


def test_sigkill_during_a_batch_loses_nothing_and_repeats_nothing(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["compute"] = {"n_workers": 1}
    config = make_config(tmp_path, config_dict)
    config_path = tmp_path / "config.yaml"
    import yaml

    config_path.write_text(yaml.safe_dump({**config_dict, "workflow": {"work_dir": "work"}}))
    ids = select(config, [si2(10 + i) for i in range(5)])
    cli = [sys.executable, "-m", "mlip_autopipec", "label", str(config_path)]
    process = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = open_database(config)
    deadline = time.monotonic() + 300
    while database.count(status=keys.LABELED) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # waiting for a state to be reached, not for a race to settle
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = {r.id: r for r in database.select(status=keys.LABELED)}
    assert len(before) >= 2
    assert database.count(status=keys.LABELED) < len(ids), "killed too late to test resuming"

    resumed = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = {r.id: r for r in database.select()}
    assert all(r.status == keys.LABELED for r in after.values())
    assert len(after) == len(ids)
    for row_id, record in before.items():  # finished labels untouched, not recomputed
        assert after[row_id].atoms.get_potential_energy() == record.atoms.get_potential_energy()
        assert after[row_id].data == record.data
    for row_id in before:  # finished before the kill: one submission, never run again
        assert len(list((config.workflow.work_dir / "dft" / f"{row_id:06d}").glob("sub_*"))) == 1


def test_a_run_that_finished_after_its_orchestrator_died_is_not_run_again(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """pw.x went on to its end after the kill (it runs in a session of its own, and on a batch
    cluster in a job of its own); the restart reads the label back instead of paying again."""
    config = make_config(tmp_path, config_dict)
    finished, interrupted = select(config, [si2(21), si2(22)])
    layout = Campaign.open(config).layout
    database = open_database(config)
    structure = database.get(finished).atoms
    ran = label_structure(finished, structure, config.dft, layout.submission_dir(finished, 0))
    assert ran.labeled
    half_way = layout.submission_dir(interrupted, 0) / "attempt_0"
    label_structure(interrupted, database.get(interrupted).atoms, config.dft, half_way.parent)
    output = half_way / "pw.out"
    output.write_text(output.read_text().split("End of self-consistent calculation")[0])
    database.set_status([finished, interrupted], keys.LABELING)  # what the kill left behind

    summary = label_selected(config)

    assert (summary.labeled, summary.failed) == (2, 0)
    record = database.get(finished)
    assert record.status == keys.LABELED
    assert record.atoms.get_potential_energy() == ran.result.energy
    assert np.array_equal(record.atoms.get_forces(), ran.result.forces)
    structure_dir = config.workflow.work_dir / "dft"
    assert len(list((structure_dir / f"{finished:06d}").glob("sub_*"))) == 1  # not run again
    assert len(list((structure_dir / f"{interrupted:06d}").glob("sub_*"))) == 2  # run again
