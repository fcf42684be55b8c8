"""Which fit is handed over: the best by validation, not the newest."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mlip_autopipec.orchestration.handover import choose
from mlip_autopipec.orchestration.training import Candidate
from mlip_autopipec.training.pacemaker import TrainingResult


def fits(*iterations: int, final: int | None = None) -> list[Candidate]:
    found = [Candidate(f"iter_{n:03d}", n, cast(TrainingResult, None)) for n in iterations]
    if final is not None:
        found.append(Candidate(f"final_{final:03d}", final, cast(TrainingResult, None)))
    return found


def test_the_best_by_validation_is_handed_over_not_the_newest() -> None:
    choice = choose(fits(0, 1, 2, 3), {"iter_001": 0.12, "iter_002": 0.08, "iter_003": 0.30})
    assert choice.candidate.name == "iter_002"
    assert "the newest, iteration 3's fit, scored worse" in choice.reason


def test_the_final_fit_competes_with_the_loops_fits() -> None:
    scores = {"iter_000": 0.5, "iter_001": 0.2, "final_001": 0.1}
    assert choose(fits(0, 1, final=1), scores).candidate.name == "final_001"
    worse = choose(fits(0, 1, final=1), {**scores, "final_001": 0.3})
    assert worse.candidate.name == "iter_001"
    assert "the final fit (every label up to iteration 1), scored worse" in worse.reason


def test_ties_go_to_the_newer_fit_and_unscored_fits_are_not_chosen() -> None:
    scores = {"iter_001": 0.1, "iter_002": 0.1, "iter_003": None}
    assert choose(fits(0, 1, 2, 3), scores).candidate.name == "iter_002"


def test_without_validation_the_newest_is_handed_over_and_says_so() -> None:
    choice = choose(fits(0, 1, final=1), {})
    assert choice.candidate.name == "final_001"
    assert "no validation" in choice.reason


def test_nothing_to_hand_over_is_an_error() -> None:
    with pytest.raises(ValueError, match="no finished fit"):
        choose(cast(Any, []), {})


def test_the_handed_over_fit_is_read_back_by_name_and_from_older_campaigns(
    tmp_path: Path,
) -> None:
    from mlip_autopipec.orchestration.report_validation import fit_name
    from mlip_autopipec.orchestration.validation import handed_over_fit

    layout = SimpleNamespace(handover_choice_file=tmp_path / "choice.json")
    campaign = cast(Any, SimpleNamespace(layout=layout))
    assert handed_over_fit(campaign) is None
    layout.handover_choice_file.write_text(json.dumps({"fit": "final_003", "iteration": 3}))
    assert handed_over_fit(campaign) == "final_003"
    layout.handover_choice_file.write_text(json.dumps({"iteration": 2}))  # before final fits
    assert handed_over_fit(campaign) == "iter_002"
    layout.handover_choice_file.write_text(json.dumps({"fit": "../../etc", "iteration": 1}))
    assert handed_over_fit(campaign) == "iter_001"
    assert fit_name({"iteration": 2}) == "iteration 2"
    assert "final_003" in fit_name({"fit": "final_003", "iteration": 3})


def test_the_loop_fits_can_have_a_basis_of_their_own_the_final_fit_keeps_the_full_one() -> None:
    from mlip_autopipec.config import TrainingConfig
    from mlip_autopipec.orchestration.training import final_settings, loop_settings

    plain = TrainingConfig(number_of_functions_per_element=300, final_kappa=0.01)
    assert loop_settings(plain) is plain
    small = plain.model_copy(update={"loop_functions_per_element": 60})
    assert loop_settings(small).number_of_functions_per_element == 60
    final = final_settings(small)
    assert final.number_of_functions_per_element == 300 and final.kappa == 0.01
    assert not final.upfit and final.maxiter == small.final_maxiter


def test_every_scored_fit_keeps_its_rows_so_a_loss_can_be_read(
    tmp_path: Path, config_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-over scores every fit; each one's rows are written beside the chosen one's."""
    from mlip_autopipec.config import config_from_dict
    from mlip_autopipec.orchestration import validation
    from mlip_autopipec.orchestration.campaign import Campaign

    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    documents = {
        "iter_001": {"comparisons": [{"name": "a0", "potential": 5.4}], "score": {"score": 0.3}},
        "final_001": {"comparisons": [{"name": "a0", "potential": 5.9}], "score": {"score": 0.9}},
    }
    by_fit = dict(zip(["fit1", "final"], documents.values(), strict=True))
    found = [
        Candidate("iter_001", 1, cast(TrainingResult, "fit1")),
        Candidate("final_001", 1, cast(TrainingResult, "final")),
    ]
    monkeypatch.setattr(validation, "validate_candidate", lambda _c, fit, _r: by_fit[fit])
    ranked = validation.score_fits(campaign, found, cast(Any, None))
    assert [candidate.name for candidate, _ in ranked] == ["iter_001", "final_001"]
    for name, document in documents.items():
        kept = json.loads(validation.scored_file(campaign, name).read_text())
        assert kept == {"fit": name, **document}


def test_the_card_says_how_the_validation_md_went_with_the_fits_active_set() -> None:
    """A halted MD check is said in bold with what it may mean; a run to the end plainly."""
    from mlip_autopipec.config import InferenceConfig
    from mlip_autopipec.orchestration.handover import trust_lines

    inference = InferenceConfig(gamma_lower=1.5, gamma_upper=8.0)
    md = {"atoms": 16, "temperature": 1200.0, "steps": 200, "max_gamma": 2.3}
    ran = trust_lines(inference, {"md": {**md, "steps_done": 200, "in_domain": True}})
    assert "ran 200 of 200 steps, max gamma 2.3." in ran and "**" not in ran
    halted = trust_lines(inference, {"md": {**md, "steps_done": 10, "max_gamma": 23.6,
                                            "in_domain": False}})  # fmt: skip
    assert "ran 10 of 200 steps, max gamma 23.6" in halted and "near-singular" in halted
    assert halted.count("**") == 2
    failed = trust_lines(inference, {"md": {**md, "steps_done": 0, "in_domain": False,
                                            "error": "lammps: no pair style"}})  # fmt: skip
    assert "It failed: lammps: no pair style" in failed and "near-singular" not in failed
    assert trust_lines(inference, None) == trust_lines(inference, {"md": None})
    assert "gamma >= 8 is outside" in trust_lines(inference, None)


def test_the_card_says_why_a_dft_value_is_missing() -> None:
    from mlip_autopipec.orchestration.handover import _validation_lines

    row = {"name": "E_vac (unrelaxed)", "unit": "eV", "potential": 2.29, "dft": None,
           "composition": "Ge"}  # fmt: skip
    cost = {"structures": 62, "labeled": 61, "failed": 1}
    card = _validation_lines({"comparisons": [row], "dft_cost": cost})
    assert "| Ge: E_vac (unrelaxed) (eV) | 2.29 | - |" in card
    assert "DFT side: 1 of 62 pw.x calculations failed" in card
    assert "failed" not in _validation_lines(
        {"comparisons": [row], "dft_cost": {**cost, "failed": 0}}
    )


def test_dft_side_alongside_passes_its_progress_and_a_failure_leaves_it_to_the_hand_over(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading
    from dataclasses import dataclass

    from mlip_autopipec.orchestration import validation_dft
    from mlip_autopipec.orchestration.labeling import LabelingProgress

    @dataclass(frozen=True)
    class StandIn:  # for a Campaign
        name: str
        nice: int = 0

    release = threading.Event()
    computed = SimpleNamespace(name="the reference")

    def reference(campaign: Any, on_progress: Any) -> Any:
        assert campaign.nice == validation_dft.NICE_ALONGSIDE  # the fit keeps its core
        on_progress(LabelingProgress(labeled=3, queued=5))
        release.wait()
        if campaign.name == "broken":
            raise RuntimeError("pw.x not found")
        return computed

    monkeypatch.setattr(validation_dft, "dft_reference", reference)
    seen: list[int] = []

    def show(counts: LabelingProgress) -> None:  # the thread goes on once its count is shown
        seen.append(counts.labeled)
        release.set()

    alongside = validation_dft.DFTReferenceAlongside(cast(Any, StandIn("campaign")))
    assert alongside.wait(show) is computed
    assert seen and set(seen) == {3}
    broken = validation_dft.DFTReferenceAlongside(cast(Any, StandIn("broken")))
    assert broken.wait() is None
    assert "pw.x not found" in caplog.text


def fake_fit(
    folder: Path, functions: int, rows: set[str] | None, cutoff: float = 5.0
) -> TrainingResult:
    """A finished fit as `with_grader` reads it: basis, training rows, an active set."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "output_potential.asi").write_text("active set")
    (folder / "output_potential.yaml").write_text(f"basis of {functions}")
    section = {
        "bonds": {"ALL": {"rcut": cutoff}},
        "functions": {"number_of_functions_per_element": functions, "ALL": {"lmax": [0, 3]}},
    }
    return cast(
        TrainingResult,
        SimpleNamespace(
            folder=folder,
            potential=folder / "output_potential.yaml",
            active_set=folder / "output_potential.asi",
            yace=folder / "output_potential.yace",
            metrics=SimpleNamespace(potential_section=section),
            training_rows=lambda: None if rows is None else frozenset(rows),
        ),
    )


def test_a_final_fit_is_graded_by_its_loop_fit_on_the_same_structures_with_a_smaller_basis(
    tmp_path: Path,
) -> None:
    from mlip_autopipec.orchestration.training import with_grader

    rows = {"row_1", "row_2", "row_3"}
    final = Candidate("final_002", 2, fake_fit(tmp_path / "final", 150, rows))
    first = Candidate("iter_001", 1, fake_fit(tmp_path / "iter1", 60, {"row_1"}))
    loop = [first, Candidate("iter_002", 2, fake_fit(tmp_path / "iter2", 60, rows))]
    graded = with_grader(final, loop)
    assert graded.grader is loop[1].fit
    files = graded.potential_files()
    assert files.grading.yaml == loop[1].fit.potential and files.yaml == final.fit.potential
    # not another iteration's fit, not other structures, not an equal or larger basis
    assert with_grader(final, loop[:1]).grader is None
    other_rows = Candidate("iter_002", 2, fake_fit(tmp_path / "other", 60, rows | {"row_4"}))
    assert with_grader(final, [other_rows]).grader is None
    same_basis = Candidate("iter_002", 2, fake_fit(tmp_path / "same", 150, rows))
    assert with_grader(final, [same_basis]).grader is None
    other_cutoff = Candidate("iter_002", 2, fake_fit(tmp_path / "rcut", 60, rows, cutoff=6.0))
    assert with_grader(final, [other_cutoff]).grader is None  # another basis altogether
    unreadable = Candidate("final_002", 2, fake_fit(tmp_path / "gone", 150, None))
    assert with_grader(unreadable, loop).grader is None
    (loop[1].fit.active_set).unlink()
    assert with_grader(final, loop).grader is None
    # without a grader, gamma comes from the fit's own files
    own = final.potential_files().grading
    assert (own.yaml, own.active_set) == (final.fit.potential, final.fit.active_set)


def test_the_grader_files_are_handed_over_only_with_a_grader(tmp_path: Path) -> None:
    from mlip_autopipec.orchestration.handover import GRADER_FILES, _copy_files

    folder = tmp_path / "potential"
    folder.mkdir()
    grader = fake_fit(tmp_path / "iter", 60, set())
    _copy_files(grader, GRADER_FILES, folder)
    assert (folder / "grader.yaml").read_text() == "basis of 60"
    assert (folder / "grader.asi").read_text() == "active set"
    _copy_files(None, GRADER_FILES, folder)  # the next hand-over has none: no stale grader
    assert not (folder / "grader.yaml").exists() and not (folder / "grader.asi").exists()


def test_the_card_says_what_grades_gamma_and_how_both_active_sets_grade_the_test_split(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from mlip_autopipec.config import InferenceConfig
    from mlip_autopipec.orchestration.handover import Choice, _files_line, trust_lines

    inference = InferenceConfig(gamma_lower=1.5, gamma_upper=8.0)
    final = Candidate("final_003", 3, fake_fit(tmp_path / "final", 150, set()))
    graded = replace(final, grader=fake_fit(tmp_path / "iter_003", 60, set()))
    validation = {
        "gamma_on_test_split": {"own": [99.98, 1070.25], "grader": [1.11, 3.11]},
        "md": {"atoms": 16, "temperature": 1200.0, "steps": 200, "steps_done": 10,
               "max_gamma": 9.1, "in_domain": False},
    }  # fmt: skip
    text = trust_lines(inference, validation, Choice(graded, "best", {}))
    assert "`grader.yaml` + `grader.asi` (iter_003)" in text
    assert "2 test-split structures" in text and "and 100-1070 by this fit's own." in text
    assert "1.11-3.11 by the grader's active set" in text
    alone = {**validation, "gamma_on_test_split": {"own": [], "grader": [1.11, 3.11]}}
    assert "1.11-3.11 by the grader's active set." in trust_lines(
        inference, alone, Choice(graded, "best", {})
    )
    assert "The grader's gamma reached 8 in a crystal.**" in text and "near-singular" not in text
    assert "grader.yaml" in _files_line(Choice(graded, "best", {}))
    plain = trust_lines(inference, validation, Choice(final, "best", {}))
    assert "grader" not in plain and "near-singular" in plain


def test_the_card_gives_the_validation_md_of_every_other_composition() -> None:
    from mlip_autopipec.config import InferenceConfig
    from mlip_autopipec.orchestration.handover import trust_lines
    from mlip_autopipec.orchestration.report_validation import md_lines

    inference = InferenceConfig(gamma_lower=1.5, gamma_upper=8.0)
    run = {"atoms": 16, "temperature": 1200.0, "steps": 200, "steps_done": 200,
           "max_gamma": 1.3, "in_domain": True}  # fmt: skip
    others = [
        {**run, "composition": "Ge", "max_gamma": 2.1},
        {**run, "composition": "Ge0.5Si0.5", "steps_done": 40, "max_gamma": 9.2,
         "in_domain": False},
    ]  # fmt: skip
    validation = {"md": {**run, "composition": "Si"}, "md_other_compositions": others}
    text = trust_lines(inference, validation)
    assert "for the other compositions: Ge (16 atoms) 200 of 200 steps, max gamma 2.1; " in text
    assert "**Ge0.5Si0.5 (16 atoms) 40 of 200 steps, max gamma 9.2**." in text
    lines = md_lines(validation)
    assert lines[0] == "  MD 1200 K: 200 of 200 steps, max gamma 1.3"
    assert lines[2] == "  MD Ge0.5Si0.5 1200 K: 40 of 200 steps, max gamma 9.2 (left its domain)"


def test_the_test_split_gammas_leave_out_a_cut_outs_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from ase.build import bulk

    from mlip_autopipec.inference.md_types import GammaGrader, PotentialFiles
    from mlip_autopipec.orchestration import validation

    rows = [
        SimpleNamespace(atoms=bulk("Si"), data={"force_weights": [1.0, 0.0]}),  # a cut-out
        SimpleNamespace(atoms=bulk("Si"), data={}),
    ]
    campaign = cast(Any, SimpleNamespace(database=SimpleNamespace(select=lambda **_: rows)))
    per_atom = {"own.yaml": [np.array([2.0, 50.0]), np.array([3.0, 1.0])],
                "grader.yaml": [np.array([1.1, 9.0]), np.array([0.5, 1.5])]}  # fmt: skip
    monkeypatch.setattr(validation, "graded", lambda grading, _: per_atom[grading.yaml.name])
    (tmp_path / "own.asi").write_text("active set")
    own = PotentialFiles(tmp_path / "own.yaml", tmp_path / "own.yace", tmp_path / "own.asi")
    assert validation.test_split_gammas(campaign, own) is None  # no grader: nothing to compare
    files = PotentialFiles(
        own.yaml, own.yace, own.active_set, GammaGrader(tmp_path / "grader.yaml", tmp_path / "g")
    )
    assert validation.test_split_gammas(campaign, files) == {
        "own": [2.0, 3.0],
        "grader": [1.1, 1.5],
    }
