"""Pre-DFT filters name the right reason; the config refuses exploration settings it can't use."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import ConfigError, FilterConfig, config_from_dict
from mlip_autopipec.generation import (
    check_cell_shape,
    check_max_atoms,
    check_min_distance,
    first_rejection,
)
from mlip_autopipec.generation import filters as f

SI_LIMIT = 0.6 * 2 * 1.11  # scale x sum of Si covalent radii: 1.332 Å


def dimer(distance: float, pbc: bool = False) -> Atoms:
    return Atoms("Si2", positions=[[0, 0, 0], [distance, 0, 0]], cell=[10, 10, 10], pbc=pbc)


@pytest.mark.parametrize(("distance", "rejected"), [(1.2, True), (1.3, True), (1.4, False)])
def test_min_distance_uses_scaled_covalent_radii(distance: float, rejected: bool) -> None:
    rejection = check_min_distance(dimer(distance), scale=0.6)
    assert (rejection is not None) == rejected
    if rejection is not None:
        assert rejection.kind == f.TOO_CLOSE
        assert f"{distance:.3f} Å" in rejection.detail
        assert f"{SI_LIMIT:.3f} Å" in rejection.detail


def test_min_distance_sees_periodic_images() -> None:
    atoms = Atoms("Si", positions=[[0, 0, 0]], cell=[1.2, 5, 5], pbc=True)
    rejection = check_min_distance(atoms, scale=0.6)
    assert rejection is not None and rejection.kind == f.TOO_CLOSE
    assert check_min_distance(Atoms("Si", cell=[1.2, 5, 5], pbc=False), scale=0.6) is None


def test_min_distance_floor_wins_when_larger() -> None:
    assert check_min_distance(dimer(1.8), scale=0.6) is None
    rejection = check_min_distance(dimer(1.8), scale=0.6, floor=2.0)
    assert rejection is not None and "2.000 Å" in rejection.detail


def test_bulk_silicon_passes_every_filter() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    assert first_rejection(atoms, FilterConfig(), min_distance_floor=1.0) is None


@pytest.mark.parametrize("gamma", [20.0, 160.0])
def test_nearly_parallel_cell_vectors_are_rejected(gamma: float) -> None:
    atoms = Atoms("Si", cell=[5, 5, 5, 90, 90, gamma], pbc=True)
    rejection = check_cell_shape(atoms, max_aspect_ratio=6.0, min_cell_angle=30.0)
    assert rejection is not None and rejection.kind == f.CELL_ANGLE
    assert "20.0°" in rejection.detail


def test_needle_cell_is_rejected_by_aspect_ratio() -> None:
    atoms = Atoms("Si", cell=[4, 4, 40], pbc=True)
    rejection = check_cell_shape(atoms, max_aspect_ratio=6.0, min_cell_angle=30.0)
    assert rejection is not None and rejection.kind == f.ASPECT_RATIO
    assert "10.00" in rejection.detail


def test_flat_skewed_cell_counts_its_width_not_its_lengths() -> None:
    """Vectors of similar length can still make a very thin cell."""
    cell = np.array([[5.0, 0, 0], [0, 5.0, 0], [4.9, 0, 0.8]])
    atoms = Atoms("Si", cell=cell, pbc=True)
    rejection = check_cell_shape(atoms, max_aspect_ratio=6.0, min_cell_angle=5.0)
    assert rejection is not None and rejection.kind == f.ASPECT_RATIO


def test_slab_vacuum_direction_does_not_count_for_the_shape() -> None:
    slab = Atoms("Si", cell=[4, 4, 40], pbc=(True, True, False))
    assert check_cell_shape(slab, max_aspect_ratio=6.0, min_cell_angle=30.0) is None


def test_max_atoms() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    assert check_max_atoms(atoms, 8) is None
    rejection = check_max_atoms(atoms, 7)
    assert rejection is not None and rejection.kind == f.TOO_MANY_ATOMS
    assert str(rejection) == "max_atoms: 8 atoms, more than 7"


def test_first_rejection_reports_the_cheapest_failed_check_first() -> None:
    atoms = dimer(0.5, pbc=True)
    config = FilterConfig(max_atoms=1)
    rejection = first_rejection(atoms, config)
    assert rejection is not None and rejection.kind == f.TOO_MANY_ATOMS
    rejection = first_rejection(atoms, FilterConfig())
    assert rejection is not None and rejection.kind == f.TOO_CLOSE


def problems(config_dict: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_dict)
    return caught.value.problems


def test_mace_surrogate_without_a_model_is_a_config_error(config_dict: dict[str, Any]) -> None:
    config_dict["exploration"] = {"surrogate": {"name": "mace"}}
    (problem,) = problems(config_dict)
    assert problem.startswith("exploration.surrogate")
    assert "model_path" in problem


def test_alloy_elements_must_be_configured(config_dict: dict[str, Any]) -> None:
    config_dict["exploration"] = {"generation": {"alloy_compositions": [{"Si": 0.5, "Ge": 0.5}]}}
    (problem,) = problems(config_dict)
    assert "alloy_compositions[0]" in problem and "Ge" in problem


def test_alloy_fractions_must_add_up_to_one(config_dict: dict[str, Any]) -> None:
    """Not rescaled in silence: {Si: 1, Ge: 1} may mean 50/50 or a typo."""
    config_dict["system"]["elements"] = ["Si", "Ge"]
    config_dict["dft"]["pseudopotentials"]["Ge"] = "Ge.pbe-kjpaw.UPF"
    config_dict["exploration"] = {"generation": {"alloy_compositions": [{"Si": 1, "Ge": 1}]}}
    (problem,) = problems(config_dict)
    assert problem == (
        "exploration.generation.alloy_compositions: {Si: 1, Ge: 1}: fractions add up to 2, not 1"
    )


def test_two_species_prototype_needs_two_elements(config_dict: dict[str, Any]) -> None:
    config_dict["system"]["prototype"] = "rocksalt"
    (problem,) = problems(config_dict)
    assert "two elements" in problem
