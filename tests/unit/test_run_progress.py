"""What `run` shows: progress in order with the right totals, and plain readable lines when
the output is not a terminal."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase.build import bulk
from rich.console import Console

from mlip_autopipec.cli_progress import RunDisplay, duration
from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.labeling import label_phase
from mlip_autopipec.orchestration.summaries import LabelSummary, PhaseProgress, SelectSummary
from mlip_autopipec.orchestration.workflow import PhaseExecutor, WorkflowManager
from mlip_autopipec.training.inputs import InputError

FAKE_PW = Path(__file__).resolve().parents[1] / "fakes" / "pw_scripted.py"
CONVERGED = Path(__file__).resolve().parents[1] / "data" / "qe" / "si2_converged_6.7.out"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def started(self, iteration: int, name: str) -> None:
        self.events.append(("started", iteration, name))

    def advanced(self, done: int, total: int | None, detail: str) -> None:
        self.events.append(("advanced", done, total))

    def finished(self, iteration: int, name: str, summary: Any, seconds: float) -> None:
        self.events.append(("finished", iteration, name, summary.describe()))


def make_binary(config_dict: dict[str, Any]) -> None:
    """Si-Ge, with a basis pyace has for two elements."""
    config_dict["system"]["elements"] = ["Si", "Ge"]
    config_dict["dft"]["pseudopotentials"]["Ge"] = "Ge.pbe-kjpaw.UPF"
    config_dict["training"] = {"nradmax_by_orders": [15, 6, 4], "lmax_by_orders": [0, 3, 3]}


def cells(symbols: list[str], count: int, shift: float) -> list[Any]:
    """`count` 8-atom diamond cells with `symbols`, each with its first atom moved a little
    differently (so no two are duplicates)."""
    result = []
    for k in range(count):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.set_chemical_symbols(symbols)
        atoms.positions[0, 0] += shift + 0.01 * k
        result.append(atoms)
    return result


def test_label_phase_reports_every_structure_with_the_right_total(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"when": ".", "stdout": str(CONVERGED), "exit": 0}]))
    config_dict["dft"]["command"] = [sys.executable, str(FAKE_PW), str(script)]
    config_dict["compute"] = {"n_workers": 1}
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    structures = []
    for seed in range(3):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.rattle(0.02, seed=seed)
        structures.append(atoms)
    campaign.database.add_structures(structures, keys.SELECTED, 0, "t")
    seen: list[tuple[int, int | None]] = []
    summary = label_phase(campaign, 0, lambda done, total, detail: seen.append((done, total)))
    assert summary.labeled == 3 and summary.failed == 0
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert {total for _, total in seen} == {3}
    assert "labeled 3, 0 failed" in summary.describe()


def test_labeling_starts_the_longest_pw_x_runs_first(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """A long run started last keeps the whole batch waiting: irreducible k-points x atoms^2
    decides the order (one worker here, so the order is the order they ran in)."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"when": ".", "stdout": str(CONVERGED), "exit": 0}]))
    config_dict["dft"]["command"] = [sys.executable, str(FAKE_PW), str(script)]
    config_dict["compute"] = {"n_workers": 1}
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    primitive = bulk("Si", "diamond", a=5.43)
    cubic = bulk("Si", "diamond", a=5.43, cubic=True)
    rattled = cubic.copy()
    rattled.rattle(0.05, seed=1)  # no symmetry left: many more k-points than `cubic`
    campaign.database.add_structures([primitive, cubic, rattled], keys.SELECTED, 0, "t")
    label_phase(campaign, 0)  # the 2-atom recording fails the 8-atom cells: only the order counts

    def started(row_id: int) -> int:
        (log,) = campaign.layout.dft_dir(row_id).rglob("fake.log")
        return log.stat().st_mtime_ns

    labeled = {row.id: row.atoms for row in campaign.database.select()}
    first, second, third = (labeled[i] for i in sorted(labeled, key=started))
    assert len(first) == 8 and not np.allclose(first.positions, cubic.positions)  # rattled
    assert len(second) == 8 and np.allclose(second.positions, cubic.positions)
    assert len(third) == 2


def test_workflow_tells_the_observer_in_order(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    def select(campaign: Campaign, iteration: int, progress: PhaseProgress | None) -> Any:
        for done in range(1, 4):
            assert progress is not None
            progress(done, 3, "picking")
        return SelectSummary(iteration=iteration, selected=0)  # nothing new: the loop stops

    def passing(campaign: Campaign, iteration: int, progress: PhaseProgress | None) -> Any:
        return LabelSummary(labeled=1)

    config_dict["workflow"] = {"work_dir": "work", "max_iterations": 3}
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    phases = {name: passing for name in ("explore", "label", "train", "infer", "extract")}
    recorder = Recorder()
    manager = WorkflowManager(
        campaign, PhaseExecutor(campaign, {**phases, "select": select}), recorder
    )
    assert "nothing new to label" in manager.run()
    names = [event[2] for event in recorder.events if event[0] == "started"]
    # After the loop stops the final fit and the validation are shown like phases; here there
    # is no label and no potential, so both fail, say so, and cost the campaign nothing.
    assert names == [
        "explore", "label", "train", "infer", "extract", "select", "final fit", "validate"
    ]  # fmt: skip
    final_fit = next(e for e in recorder.events if e[0] == "finished" and e[2] == "final fit")
    assert "failed (no labeled structures" in final_fit[3]
    select_events = recorder.events[recorder.events.index(("started", 1, "select")) :]
    assert select_events[1:4] == [("advanced", d, 3) for d in (1, 2, 3)]
    assert select_events[4][:3] == ("finished", 1, "select")
    assert recorder.events[-1][:3] == ("finished", 1, "validate")
    assert "failed" in recorder.events[-1][3]


def test_plain_output_has_no_control_characters_and_few_lines() -> None:
    stream = io.StringIO()
    display = RunDisplay(Console(file=stream, force_terminal=False, width=200))
    assert not display.live
    display.started(2, "label")
    for done in range(1, 101):
        display.advanced(done, 100, "0 failed, 2 running")
    display.finished(2, "label", LabelSummary(labeled=100, dft_wall_time=3600.0), 226.0)
    text = stream.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "iteration 2: label ..."
    assert lines[-1].startswith("iteration 2: label done in 3 min 46 s: labeled 100, 0 failed")
    assert len(lines) <= 4  # the start, the finished count, the summary: not one per step


def test_durations_read_naturally() -> None:
    assert [duration(s) for s in (12.4, 226, 3900)] == ["12 s", "3 min 46 s", "1 h 05 min"]


def test_an_unsound_label_fails_its_row_and_keeps_the_batch(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """Forces of the wrong shape must not roll back the other labels of the same batch."""
    import numpy as np

    from mlip_autopipec.dft.parser import PwResult
    from mlip_autopipec.dft.runner import LabelOutcome
    from mlip_autopipec.orchestration.labeling import UNSOUND_LABEL, _to_update

    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    good, bad = campaign.database.add_structures(
        [bulk("Si", "diamond", a=5.43), bulk("Si", "diamond", a=5.5)], keys.SELECTED, 0, "t"
    )
    campaign.database.set_status([good, bad], keys.LABELING)
    stress = np.zeros(6)
    results = {
        good: PwResult(True, -200.0, np.zeros((2, 3)), stress, scf_iterations=5),
        bad: PwResult(True, -200.0, np.zeros((3, 3)), stress, scf_iterations=5),
    }
    updates = [_to_update(LabelOutcome(i, r), {good: 2, bad: 2}, None) for i, r in results.items()]
    campaign.database.store_results(updates)
    assert campaign.database.get(good).status == keys.LABELED
    failed = campaign.database.get(bad)
    assert failed.status == keys.FAILED
    assert failed.key_value_pairs[keys.FAILURE_KIND] == UNSOUND_LABEL
    assert "forces have shape (3, 3)" in failed.key_value_pairs[keys.REASON]


def test_run_refuses_a_basis_pyace_has_not_before_any_phase(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["system"]["elements"] = ["Si", "Ge"]
    config_dict["dft"]["pseudopotentials"]["Ge"] = "Ge.pbe-kjpaw.UPF"
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    ran: list[str] = []

    def phase(name: str) -> Any:
        return lambda campaign, iteration, progress: ran.append(name)

    names = ("explore", "select", "label", "train", "infer", "extract")
    manager = WorkflowManager(campaign, PhaseExecutor(campaign, {n: phase(n) for n in names}))
    with pytest.raises(InputError, match="5 orders work"):
        manager.run()
    assert ran == []


def test_a_failed_phase_is_logged_kept_for_status_and_cleared_by_success(
    tmp_path: Path, config_dict: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from mlip_autopipec.orchestration.status import failed_phase
    from mlip_autopipec.training.pacemaker import TrainingError

    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    outcome: dict[str, Any] = {"train": TrainingError("pace_activeset: under-determined")}

    def train(campaign: Campaign, iteration: int, progress: PhaseProgress | None) -> Any:
        if isinstance(outcome["train"], Exception):
            raise outcome["train"]
        return LabelSummary(labeled=1)

    def passing(campaign: Campaign, iteration: int, progress: PhaseProgress | None) -> Any:
        return LabelSummary(labeled=1)

    phases = {name: passing for name in ("explore", "label", "infer", "extract", "select")}
    executor = PhaseExecutor(campaign, {**phases, "train": train})
    with pytest.raises(TrainingError):
        WorkflowManager(campaign, executor).run()
    assert failed_phase(campaign) == "iteration 0 train failed: pace_activeset: under-determined"
    assert "iteration 0 train failed: pace_activeset: under-determined" in caplog.text
    outcome["train"] = None
    executor.phases["train"] = train
    manager = WorkflowManager(campaign, executor)
    manager._run_phase(0, "train")
    assert failed_phase(campaign) is None


def test_selection_reports_picks_per_composition(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    from mlip_autopipec.orchestration.exploration import picks_by_composition
    from mlip_autopipec.orchestration.summaries import per_composition

    make_binary(config_dict)
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    alloy = si.copy()
    alloy.set_chemical_symbols(["Si", "Ge"] * 4)
    ge = si.copy()
    ge.set_chemical_symbols(["Ge"] * 8)
    database = campaign.database
    other = alloy.copy()
    other.set_chemical_symbols(["Ge", "Si"] * 4)  # another arrangement
    database.add_structures([si, alloy, other], keys.SELECTED, 1, "t")
    database.add_structures([ge], keys.CANDIDATE, 1, "t")  # not sent to DFT
    database.add_structures([ge.copy()], keys.SELECTED, 0, "t")  # another iteration
    counts = picks_by_composition(database, 1)
    assert counts == {"Si": 1, "Ge0.5Si0.5": 2}
    assert per_composition(counts) == "; to DFT per composition: Ge0.5Si0.5 2, Si 1"
    assert per_composition({"Si": 4}) == ""  # one composition: nothing to say
    summary = SelectSummary(iteration=1, selected=3, method="maxvol", by_composition=counts)
    assert summary.describe().endswith("by maxvol; to DFT per composition: Ge0.5Si0.5 2, Si 1")


def test_picks_go_to_the_compositions_with_the_fewest_explored_structures(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """Anchors do not count (every crystal has the same fixed set); a composition with no
    candidates left gets nothing; with one composition every pick goes to it."""
    from mlip_autopipec.core.composition import balanced_shares, composition
    from mlip_autopipec.generation.anchors import ANCHOR_ORIGINS
    from mlip_autopipec.orchestration.exploration import _composition_shares

    make_binary(config_dict)
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    database = campaign.database
    database.add_structures(cells(["Si"] * 8, 2, 0.1), keys.SELECTED, 0, "md")
    database.add_structures(cells(["Ge"] * 8, 5, 0.2), keys.SELECTED, 0, ANCHOR_ORIGINS[0])
    survivors_atoms = (
        cells(["Si"] * 8, 6, 0.3) + cells(["Si", "Ge"] * 4, 1, 0.4) + cells(["Ge"] * 8, 3, 0.5)
    )
    database.add_structures(survivors_atoms, keys.CANDIDATE, 1, "md")
    survivors = database.select(**{keys.STATUS: keys.CANDIDATE})
    shares = {
        composition(survivors[members[0]].atoms.get_chemical_symbols()): count
        for members, count in _composition_shares(database, survivors, 4)
    }
    half, ge, pure_si = (composition(s) for s in (["Si", "Ge"], ["Ge"], ["Si"]))
    assert shares == {half: 1, ge: 3}  # Si has 2 MD labels; Ge's 5 anchors do not count
    assert sum(count for _, count in _composition_shares(database, survivors, 10)) == 10
    assert balanced_shares({pure_si: 3}, {pure_si: 50}, 8) == {pure_si: 3}
    only_si = [row for row in survivors if set(row.atoms.get_chemical_symbols()) == {"Si"}]
    assert _composition_shares(database, only_si, 4) == [(list(range(6)), 4)]


def test_no_composition_is_left_below_half_an_even_share_of_the_labels() -> None:
    """Two pure crystals with 17 anchors each and three alloys with none: the alloys are
    served first until each holds half an even share (1/10 of five compositions)."""
    from mlip_autopipec.core.composition import balanced_shares, composition

    si, ge = composition(["Si"]), composition(["Ge"])
    alloys = [composition(["Si"] * (8 - n) + ["Ge"] * n) for n in (2, 4, 6)]
    available = dict.fromkeys([si, ge, *alloys], 50)
    sent = {si: 17, ge: 17}
    shares = balanced_shares(available, {}, 32, sent)
    total = 34 + 32
    assert sum(shares.values()) == 32
    assert all(shares[alloy] >= 0.1 * total for alloy in alloys), shares
    # Once every composition holds its floor, the fewest explored get the next picks.
    assert (
        balanced_shares(available, {si: 3}, 4, {si: 20, ge: 20, **dict.fromkeys(alloys, 20)})[ge]
        == 1
    )


def cache_surrogate_results(campaign: Campaign, row_ids: list[int]) -> None:
    """Surrogate values as the pre-screen and selection read them, without loading a model."""
    from mlip_autopipec.surrogate import SurrogatePipeline

    config = campaign.config
    identity = SurrogatePipeline(config.exploration, config.system.elements).identity
    results = {
        keys.SURROGATE_MODEL: identity,
        keys.SURROGATE_ENERGY: -5.0,
        keys.SURROGATE_MAX_FORCE: 0.1,
    }
    campaign.database.annotate(
        dict.fromkeys(row_ids, results),
        {row_id: {keys.DESCRIPTOR: [float(row_id), 0.0]} for row_id in row_ids},
    )


def test_a_short_iteration_is_topped_up_from_earlier_unpicked_candidates(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """MD gave one candidate for four picks: three more come from iteration 0's unpicked
    candidates (never a rejected one), counted as picks of iteration 1 where they were
    picked, kept in iteration 0 where they were made; a rerun picks nothing more."""
    from mlip_autopipec.orchestration.exploration import picks_by_composition, select_candidates

    config_dict["exploration"] = {
        "selection": {"method": "random", "n_select": 4},
        "surrogate": {"max_force": 1000.0, "max_energy_above_min": 100.0},
    }
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    database = campaign.database
    earlier = database.add_structures(
        cells(["Si"] * 8, 5, 0.1), keys.CANDIDATE, 0, "builder:rattle"
    )
    rejected = database.add_structures(
        cells(["Si"] * 8, 1, 0.2), keys.REJECTED, 0, "builder:rattle"
    )
    own = database.add_structures(cells(["Si"] * 8, 1, 0.3), keys.CANDIDATE, 1, "md:extract")
    cache_surrogate_results(campaign, earlier + rejected + own)

    summary = select_candidates(campaign, 1)
    assert (summary.selected, summary.topped_up, summary.selected_in_iteration) == (4, 3, 4)
    picked = database.select(**{keys.STATUS: keys.SELECTED})
    assert own[0] in {row.id for row in picked}
    assert {row.id for row in picked} <= set(earlier + own)
    assert {row.key_value_pairs[keys.SELECTION_ITERATION] for row in picked} == {1}
    assert sorted(row.key_value_pairs[keys.SELECTION_RANK] for row in picked) == [0, 1, 2, 3]
    assert sorted(row.iteration for row in picked) == [0, 0, 0, 1]
    assert picks_by_composition(database, 1) == {"Si": 4}
    assert picks_by_composition(database, 0) == {}

    again = select_candidates(campaign, 1)
    assert (again.selected, again.selected_in_iteration) == (0, 4)
    # Iteration 2 has no candidates of its own: the two left from iteration 0 are its picks.
    second = select_candidates(campaign, 2)
    assert (second.selected, second.topped_up) == (2, 2)
    assert SelectSummary(iteration=2, selected=2, topped_up=2).describe() == (
        "pre-screened out 0, selected 2 (2 from earlier candidates)"
    )


def test_a_composition_md_did_not_reach_draws_on_earlier_candidates(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """MD found only Ge environments, but the alloy has no label yet: it gets picks from the
    candidates iteration 0 left, though Ge's own would fill the batch."""
    from mlip_autopipec.generation.anchors import ANCHOR_ORIGINS
    from mlip_autopipec.orchestration.exploration import picks_by_composition, select_candidates

    make_binary(config_dict)
    config_dict["exploration"] = {
        "selection": {"method": "random", "n_select": 4},
        "surrogate": {"max_force": 1000.0, "max_energy_above_min": 100.0},
    }
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    database = campaign.database
    for symbol, shift in (("Si", 0.0), ("Ge", 0.05)):
        database.add_structures(cells([symbol] * 8, 5, shift), keys.SELECTED, 0, ANCHOR_ORIGINS[0])
    alloys = database.add_structures(cells(["Si", "Ge"] * 4, 3, 0.1), keys.CANDIDATE, 0, "alloy")
    own = database.add_structures(cells(["Ge"] * 8, 6, 0.2), keys.CANDIDATE, 1, "md:extract")
    cache_surrogate_results(campaign, alloys + own)

    summary = select_candidates(campaign, 1)
    assert summary.selected == 4 and summary.topped_up >= 1
    assert picks_by_composition(database, 1).get("Ge0.5Si0.5", 0) >= 1


def test_the_error_on_new_data_of_each_composition_reaches_the_report(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """Read back per iteration as written before the fit; a record without per-composition
    errors (one composition, or an older campaign) shows none."""
    import json

    from mlip_autopipec.core.composition import composition
    from mlip_autopipec.orchestration.report import _per_composition
    from mlip_autopipec.orchestration.status import IterationRow, _add_honest_errors

    make_binary(config_dict)
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    si, half = composition(["Si"]), composition(["Si", "Ge"])

    def record(iteration: int, errors: dict[Any, float] | None) -> None:
        path = campaign.layout.new_data_errors_file(iteration)
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = [
            {"composition": [list(pair) for pair in key], "errors": {"rmse_forces": value}}
            for key, value in (errors or {}).items()
        ]
        path.write_text(json.dumps({"errors": None, "by_composition": entries or None}))

    record(1, {si: 30.0, half: 90.0})
    record(2, None)
    first, second = IterationRow(1), IterationRow(2)
    _add_honest_errors(first, campaign)
    _add_honest_errors(second, campaign)
    assert first.new_data_forces_by_composition == {"Ge0.5Si0.5": 90.0, "Si": 30.0}
    assert "Ge0.5Si0.5 90, Si 30" in _per_composition(first)
    assert second.new_data_forces_by_composition == {} and _per_composition(second) == ""
