"""Where MD starts (every kind of labeled structure) and how a halted run goes on (restarts)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.core.cells import as_computed
from mlip_autopipec.generation import SURFACE
from mlip_autopipec.generation.builder import VACANCY
from mlip_autopipec.generation.filters import check_cell_shape
from mlip_autopipec.inference.exploration_md import run_with_restarts, segment_seed
from mlip_autopipec.inference.extraction import EXTRACT_ORIGIN
from mlip_autopipec.inference.md_types import MDResult, MDRunSpec, PotentialFiles
from mlip_autopipec.inference.planning import NoStartStructureError, StartCandidate, plan_md
from mlip_autopipec.orchestration.inference import (
    START_KINDS_BY_ORIGIN,
    SUMMARY_FILE,
    InferenceSummary,
    MDRunStats,
    _stats,
    load_summary,
)

INFERENCE = InferenceConfig(temperatures=[300.0, 900.0], pressures=[0.0, 1000.0])


def si(repeat: tuple[int, int, int] = (1, 1, 1)) -> Atoms:
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)


def slab() -> Atoms:
    atoms = si()
    atoms.center(vacuum=5.0, axis=2)
    atoms.pbc = (True, True, False)
    return atoms


def vacancy_cell() -> Atoms:
    atoms = si((2, 1, 1))
    del atoms[0]
    return atoms


def labeled() -> list[StartCandidate]:
    cluster = si()
    cluster.pbc = False
    return [
        StartCandidate(si(), "builder:strain", -5.4),
        StartCandidate(vacancy_cell(), VACANCY, -5.3),
        StartCandidate(slab(), SURFACE, -5.0),
        StartCandidate(si((2, 2, 2)), EXTRACT_ORIGIN, -5.4),
        StartCandidate(si((2, 1, 1)), "import:cells.extxyz", -5.41),
        StartCandidate(cluster, "import:cluster.extxyz", -5.2),
    ]


# --- where MD starts ------------------------------------------------------------------------


def test_every_kind_runs_every_temperature_and_slabs_only_nvt() -> None:
    runs = plan_md(labeled(), INFERENCE, 1, START_KINDS_BY_ORIGIN)
    ids = [spec.run_id for _, spec in runs]
    assert ids == [
        "T300_P0_bulk_r0", "T300_P1000_bulk_r0", "T900_P0_bulk_r0", "T900_P1000_bulk_r0",
        "T300_P0_vacancy_r0", "T300_P1000_vacancy_r0", "T900_P0_vacancy_r0",
        "T900_P1000_vacancy_r0", "T300_surface_r0", "T900_surface_r0",
    ]  # fmt: skip
    for atoms, spec in runs:
        assert spec.run_id.split("_")[-2] == spec.start
        assert (spec.pressure is None) == (spec.start == "surface")
        assert atoms.pbc.all() and atoms.calc is None  # slabs run periodic with their vacuum
    surface_starts = [atoms for atoms, spec in runs if spec.start == "surface"]
    assert all(atoms.cell[2, 2] == slab().cell[2, 2] for atoms in surface_starts)
    # ... but each run knows its start's periodic axes, so its frames are stored as a slab
    assert {spec.periodic for _, spec in runs if spec.start == "surface"} == {(True, True, False)}
    assert {spec.periodic for _, spec in runs if spec.start != "surface"} == {(True, True, True)}
    assert {len(atoms) for atoms, spec in runs if spec.start == "vacancy"} == {15}


def test_cut_out_environments_and_unclassifiable_imports_never_start_md() -> None:
    runs = plan_md(labeled(), INFERENCE, 1, START_KINDS_BY_ORIGIN)
    bulk_sizes = [len(atoms) for atoms, spec in runs if spec.start == "bulk"]
    assert bulk_sizes == [16, 8, 16, 8]  # the imported periodic cell is bulk; no 64-atom cut
    only_cut_out = [c for c in labeled() if c.origin in (EXTRACT_ORIGIN, "import:cluster.extxyz")]
    with pytest.raises(NoStartStructureError, match="no labeled bulk, vacancy or surface"):
        plan_md(only_cut_out, INFERENCE, 1, START_KINDS_BY_ORIGIN)


def test_a_slab_alone_is_enough_to_start_nvt_runs() -> None:
    runs = plan_md([StartCandidate(slab(), SURFACE, -5.0)], INFERENCE, 1, START_KINDS_BY_ORIGIN)
    assert [spec.run_id for _, spec in runs] == ["T300_surface_r0", "T900_surface_r0"]


def test_within_a_kind_large_cells_first_then_low_energy_cycling() -> None:
    small, large, lowest = si(), bulk("Si").repeat((3, 3, 2)), si()
    lowest.rattle(0.01, seed=1)
    candidates = [
        StartCandidate(small, "a", -5.0),
        StartCandidate(large, "b", -4.0),
        StartCandidate(lowest, "c", -5.5),
    ]
    inference = InferenceConfig(temperatures=[300.0, 900.0], runs_per_temperature=2)
    runs = plan_md(candidates, inference, 0, START_KINDS_BY_ORIGIN)
    assert [len(atoms) for atoms, _ in runs] == [36, 8, 8, 36]
    np.testing.assert_array_equal(runs[1][0].positions, lowest.positions)  # -5.5 before -5.0
    np.testing.assert_array_equal(runs[2][0].positions, small.positions)
    assert runs[1][0] is not lowest  # a copy, not the row's atoms


def test_md_starts_cover_every_composition_at_every_temperature() -> None:
    """Pure Ge sits about 2000 eV/atom below Si with these pseudopotentials: ordering starts
    by energy per atom would start every run from Ge. Every composition runs at every
    temperature, each with a run id and a seed of its own."""

    def alloy(ge_sites: list[int]) -> Atoms:
        atoms = si()
        symbols = atoms.get_chemical_symbols()
        for site in ge_sites:
            symbols[site] = "Ge"
        atoms.set_chemical_symbols(symbols)
        return atoms

    ge, ge_rattled = alloy(list(range(8))), alloy(list(range(8)))
    ge_rattled.rattle(0.01, seed=2)
    candidates = [
        StartCandidate(si(), "builder:strain", -107.0),
        StartCandidate(ge, "builder:strain", -2233.0),
        StartCandidate(ge_rattled, "builder:rattle", -2233.2),
        StartCandidate(alloy([0, 1, 2, 3]), "builder:alloy", -1170.0),
        StartCandidate(alloy([0, 1]), "builder:alloy", -638.5),
    ]
    inference = InferenceConfig(temperatures=[300.0, 1500.0], runs_per_temperature=2)
    runs = plan_md(candidates, inference, 3, START_KINDS_BY_ORIGIN)
    found = {(spec.temperature, atoms.get_chemical_formula()) for atoms, spec in runs}
    formulas = {"Si8", "Ge8", "Ge2Si6", "Ge4Si4"}
    assert found == {(t, f) for t in (300.0, 1500.0) for f in formulas}
    assert len(runs) == 2 * 2 * len(formulas)
    assert len({spec.run_id for _, spec in runs}) == len({spec.seed for _, spec in runs}) == 16
    assert "T300_bulk_r0_Ge0.5Si0.5" in {spec.run_id for _, spec in runs}
    # within Ge energies are compared: the rattled cell at -2233.2 eV/atom first, then the other
    ge_starts = [atoms for atoms, spec in runs if atoms.get_chemical_formula() == "Ge8"]
    first, second = (atoms.get_scaled_positions() for atoms in ge_starts[:2])
    np.testing.assert_allclose(first, ge_rattled.get_scaled_positions())
    np.testing.assert_allclose(second, ge.get_scaled_positions())


def test_start_conditions_show_the_range_of_a_kinds_starts() -> None:
    def run(start: str, volume: float, pressure: float | None) -> MDRunStats:
        return MDRunStats(
            "r", 300.0, 10, False, 0.0, [], 0, None, start, start_volume=volume,
            start_pressure=pressure,
        )  # fmt: skip

    summary = InferenceSummary(1, "fit", [
        run("bulk", 24.21, 3.6), run("bulk", 20.46, -0.4), run("bulk", 22.3, 1.0),
        run("vacancy", 23.45, 2.7), run("vacancy", 23.45, 2.7), run("surface", 30.0, None),
    ])  # fmt: skip
    assert summary.start_conditions() == {
        "bulk": "20.46-24.21 Å³/atom, -0.4 to +3.6 GPa",
        "vacancy": "23.45 Å³/atom, +2.7 GPa",
        "surface": "30.00 Å³/atom",
    }


def test_seeds_differ_per_run_and_iteration_and_are_reproducible() -> None:
    first = [spec.seed for _, spec in plan_md(labeled(), INFERENCE, 1, START_KINDS_BY_ORIGIN)]
    again = [spec.seed for _, spec in plan_md(labeled(), INFERENCE, 1, START_KINDS_BY_ORIGIN)]
    later = [spec.seed for _, spec in plan_md(labeled(), INFERENCE, 2, START_KINDS_BY_ORIGIN)]
    assert first == again
    assert len(set(first)) == len(first)
    assert not set(first) & set(later)


# --- restarts after a halt, with a scripted engine ------------------------------------------


class ScriptedEngine:
    """An MDRunner that halts each segment at a scripted step (None: runs to the end).

    Positions move by 0.001 Å per step, so a frame tells which step of which start it is;
    max gamma is 1 at a check, 3 (>= lower) one check before the halt and 20 (>= upper) at it.
    """

    def __init__(self, halts: list[int | None], fail_at: int | None = None) -> None:
        self.halts = halts
        self.fail_at = fail_at
        self.calls: list[tuple[Atoms, MDRunSpec, Path]] = []

    def __call__(
        self, atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path
    ) -> MDResult:
        index = len(self.calls)
        self.calls.append((atoms.copy(), spec, run_dir))
        result = MDResult(run_id=spec.run_id, temperature=spec.temperature)
        if index == self.fail_at:
            result.error = "exploded"
            return result
        halt = self.halts[index] if index < len(self.halts) else None
        last = spec.steps if halt is None or halt > spec.steps else halt
        for step in range(0, last + 1, spec.gamma_every):
            gamma = 20.0 if step == halt else 3.0 if step + spec.gamma_every == halt else 1.0
            frame = atoms.copy()
            frame.positions += 0.001 * step
            frame.arrays["gamma"] = np.full(len(frame), gamma)
            frame.info.update(step=step, max_gamma=gamma)
            result.max_gamma_per_check.append(gamma)
            if gamma >= spec.gamma_lower and len(result.frames) < spec.max_frames:
                result.frames.append(frame.copy())
            if gamma >= spec.gamma_upper:
                result.halted = True
                break
            result.last_trusted = frame
        result.steps_done = halt if result.halted and halt is not None else spec.steps
        return result


def restart_spec(**changes: object) -> MDRunSpec:
    inference = InferenceConfig(steps=100, gamma_every=10, gamma_lower=2.0, gamma_upper=10.0)
    base = MDRunSpec.from_config(inference, "T900_bulk_r0", 900.0, None, seed=7)
    return replace(base, **changes)


def potential() -> PotentialFiles:
    return PotentialFiles(Path("p.yaml"), Path("p.yace"), Path("p.asi"))


def test_a_halted_run_restarts_from_its_last_trusted_frame_with_fresh_velocities() -> None:
    engine = ScriptedEngine(halts=[30, 40])
    result = run_with_restarts(engine, si(), potential(), restart_spec(), Path("run"))
    first, second, third = result.segments
    assert first.last_trusted is not None and first.last_trusted.info["step"] == 20
    np.testing.assert_allclose(second.start.positions, si().positions + 0.020)
    np.testing.assert_array_equal(engine.calls[1][0].positions, first.last_trusted.positions)
    assert [s.seed for s in result.segments] == [segment_seed(7, i) for i in range(3)]
    assert len({s.seed for s in result.segments}) == 3 and first.seed == 7
    assert [spec.steps for _, spec, _ in engine.calls] == [100, 70, 30]
    assert [s.steps_done for s in result.segments] == [30, 40, 30]
    assert result.steps_done == 100 and result.halts == 2 and result.halted
    assert [dir_ for _, _, dir_ in engine.calls] == [
        Path("run"), Path("run/restart_1"), Path("run/restart_2")
    ]  # fmt: skip
    # frames of every segment, steps counted from the run's start
    assert [f.info["step"] for f in result.frames] == [20, 30, 60, 70]
    # a restart's step-0 check repeats the trusted frame: counted once
    assert len(result.max_gamma_per_check) == 4 + 4 + 3
    assert result.last_trusted is third.last_trusted
    assert result.last_trusted is not None and result.last_trusted.info["step"] == 100


def test_a_slab_runs_periodic_and_its_frames_are_stored_as_a_slab() -> None:
    """The MD cell is periodic with its vacuum; the frames keep the slab's open axis, so the
    cell-shape filter that passed the slab passes its frames (the vacuum is not a shape)."""
    start = si()
    start.center(vacuum=15.0, axis=2)  # 35 Å tall: 6.5 x its width with the vacuum counted
    start.pbc = True
    engine = ScriptedEngine(halts=[30, 40])
    spec = restart_spec(periodic=(True, True, False))
    result = run_with_restarts(engine, start, potential(), spec, Path("run"))
    assert result.frames and all(f.pbc.tolist() == [True, True, False] for f in result.frames)
    assert all(atoms.pbc.all() for atoms, _, _ in engine.calls)  # restarts run periodic
    assert all(check_cell_shape(f, 6.0, 20.0) is None for f in result.frames)
    assert check_cell_shape(as_computed(result.frames[0]), 6.0, 20.0) is not None


def test_max_restarts_zero_is_one_segment_as_before() -> None:
    engine = ScriptedEngine(halts=[30])
    result = run_with_restarts(engine, si(), potential(), restart_spec(max_restarts=0), Path("r"))
    assert len(engine.calls) == 1 and result.halted and result.steps_done == 30
    assert [f.info["step"] for f in result.frames] == [20, 30]


def test_restarts_are_capped_and_share_the_step_budget() -> None:
    engine = ScriptedEngine(halts=[20, 20, 20, 20, 20])
    result = run_with_restarts(engine, si(), potential(), restart_spec(max_restarts=2), Path("r"))
    assert len(result.segments) == 3 and result.halts == 3
    assert result.steps_done == 60 <= 100


def test_a_halt_at_the_first_check_is_not_repeated() -> None:
    engine = ScriptedEngine(halts=[0])
    result = run_with_restarts(engine, si(), potential(), restart_spec(), Path("r"))
    assert len(engine.calls) == 1 and result.halted and result.last_trusted is None


def test_a_failing_segment_ends_the_run_with_what_it_has() -> None:
    engine = ScriptedEngine(halts=[30], fail_at=1)
    result = run_with_restarts(engine, si(), potential(), restart_spec(), Path("r"))
    assert len(engine.calls) == 2 and result.error == "exploded"
    assert [f.info["step"] for f in result.frames] == [20, 30]


def test_the_frame_budget_holds_for_the_whole_run() -> None:
    engine = ScriptedEngine(halts=[30, 40, 20])
    result = run_with_restarts(engine, si(), potential(), restart_spec(max_frames=3), Path("r"))
    assert [f.info["step"] for f in result.frames] == [20, 30, 60]
    assert len(engine.calls) == 2  # the budget is full: nothing more could be kept


# --- what the summary records ---------------------------------------------------------------


def test_run_stats_record_start_kind_restarts_and_halts() -> None:
    engine = ScriptedEngine(halts=[30, 40])
    result = run_with_restarts(engine, si(), potential(), restart_spec(), Path("run"))
    stats, frames = _stats(result, gamma_lower=2.0)
    assert stats.start == "bulk" and stats.restarts == 2 and stats.halts == 2
    assert stats.segment_steps == [30, 40, 30] and stats.steps_done == 100
    assert stats.n_frames == len(frames) == 4


def test_a_summary_written_before_restarts_still_loads(tmp_path: Path) -> None:
    old_run = {
        "run_id": "T300_r0",
        "temperature": 300.0,
        "steps_done": 40,
        "halted": True,
        "extrapolative_share": 0.2,
        "max_gamma_per_check": [1.0, 12.0],
        "n_frames": 1,
        "error": None,
    }
    summary = {"iteration": 1, "potential": "p", "runs": [old_run], "engine": "ase"}
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(summary))
    loaded = load_summary(tmp_path)
    run = loaded.runs[0]
    assert (run.start, run.restarts, run.halts, run.segment_steps) == ("bulk", 0, 1, [40])
    assert loaded.halted == 1 and loaded.restarts == 0
    assert loaded.runs_by_start() == {"bulk": 1}
