from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from mlip_autopipec.inference.extraction import (
    cut_environment,
    deduplicate,
    extract_environments,
    relax_boundary,
    select_centres,
)

CUTOFF = 5.0


def big_frame(seed: int = 0) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((3, 3, 3))  # 216 atoms, 16.3 Å
    atoms.rattle(0.1, seed=seed)
    gamma = np.ones(len(atoms))
    gamma[[5, 100]] = [7.0, 4.0]
    atoms.arrays["gamma"] = gamma
    return atoms


def neighbourhood(atoms: Atoms, centre: int, cutoff: float) -> np.ndarray:
    i, vectors = neighbor_list("iD", atoms, cutoff)
    mine = vectors[i == centre]
    return mine[np.lexsort(mine.T)]


def test_cut_environment_keeps_the_centre_neighbourhood() -> None:
    frame = big_frame()
    environment = cut_environment(frame, 5, CUTOFF + 1.0, min_distance=1.5)
    original = neighbourhood(frame, 5, CUTOFF)
    cut = neighbourhood(environment, 0, CUTOFF)
    assert len(cut) == len(original) > 20
    np.testing.assert_allclose(cut, original, atol=1e-8)
    assert environment.numbers[0] == frame.numbers[5]


def test_cut_environment_has_no_overlaps_across_the_new_boundary() -> None:
    environment = cut_environment(big_frame(1), 5, CUTOFF + 1.0, min_distance=2.0)
    distances = neighbor_list("d", environment, 2.0)
    assert len(distances) == 0
    assert environment.pbc.all() and environment.cell.lengths() == pytest.approx([12.0] * 3)


def test_centres_are_merged_within_the_radius() -> None:
    frame = big_frame()
    distances = frame.get_distances(5, range(len(frame)), mic=True)
    neighbour = int(np.argsort(distances)[1])
    assert distances[neighbour] < 3.0
    frame.arrays["gamma"][neighbour] = 6.0
    centres = select_centres(frame, frame.arrays["gamma"], 2.0, merge_radius=3.0)
    assert centres == [5, 100]


def test_extract_environments_cuts_big_cells_and_keeps_small_ones_whole() -> None:
    environments = extract_environments(big_frame(), 2.0, CUTOFF, 1.0, min_distance=1.5)
    assert [env.centre for env in environments] == [5, 100]
    assert [env.gamma for env in environments] == [7.0, 4.0]
    assert not any(env.whole_cell for env in environments)
    small = bulk("Si", "diamond", a=5.43, cubic=True)
    small.arrays["gamma"] = np.array([1, 1, 3.0, 1, 1, 1, 1, 1])
    [whole] = extract_environments(small, 2.0, CUTOFF, 1.0, min_distance=1.5)
    assert whole.whole_cell and len(whole.atoms) == 8 and whole.centre_in_environment == 2
    assert "gamma" not in whole.atoms.arrays


def test_a_thin_slab_is_kept_whole_when_a_cut_would_hold_more_atoms() -> None:
    """8 atoms, 23 Å along its vacuum axis: a 12 Å cube around a centre holds ~40 images."""
    from mlip_autopipec.generation.transforms import slab

    frame = slab(bulk("Si", "diamond", a=5.43), (1, 1, 1), 4, 6.0)
    frame.pbc = True  # as MD runs it
    frame.arrays["gamma"] = np.array([1, 1, 1, 9.0, 1, 1, 1, 1])
    assert cut_environment(frame, 3, CUTOFF + 1.0, 1.5).get_global_number_of_atoms() > 8
    [whole] = extract_environments(frame, 2.0, CUTOFF, 1.0, min_distance=1.5)
    assert whole.whole_cell and len(whole.atoms) == 8 and whole.force_weights is None


def test_nothing_above_threshold_gives_nothing() -> None:
    frame = big_frame()
    frame.arrays["gamma"][:] = 1.0
    assert extract_environments(frame, 2.0, CUTOFF, 1.0, min_distance=1.5) == []


def test_deduplicate_against_each_other_and_reference() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.6, 0.8]])
    assert deduplicate(vectors, None, 0.05) == [0, 2, 3]
    reference = np.array([[0.0, 1.0]])
    assert deduplicate(vectors, reference, 0.05) == [0, 3]


def test_relax_boundary_moves_only_the_outer_atoms() -> None:
    from ase.calculators.lj import LennardJones

    environment = cut_environment(big_frame(2), 5, CUTOFF + 1.0, min_distance=1.5)
    calculator = LennardJones(sigma=2.1, epsilon=0.1, rc=4.0)
    relaxed = relax_boundary(environment, calculator, core_radius=CUTOFF, steps=5)
    distances = environment.get_distances(0, range(len(environment)), mic=True)
    core = distances <= CUTOFF
    moved = np.linalg.norm(relaxed.positions - environment.positions, axis=1)
    np.testing.assert_array_equal(moved[core], 0.0)
    assert moved[~core].max() > 1e-3
    assert relaxed.calc is None and not relaxed.constraints
