"""StructureBuilder and its transformations: determinism, shapes and compositions."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import GenerationConfig, SurfaceSpec, SystemConfig
from mlip_autopipec.core import keys
from mlip_autopipec.generation import (
    BuildError,
    GeneratedStructure,
    StructureBuilder,
    builder,
    transforms,
)
from mlip_autopipec.generation.filters import close_pairs, scaled_radii

SI = SystemConfig(elements=["Si", "Ge"], prototype="diamond", lattice_constant=5.43)
GENERATION = GenerationConfig(
    seed=7,
    supercells=[(1, 1, 1), (2, 1, 1)],
    volumetric_strains=[-0.03, 0.0, 0.03],
    shear_strains=[0.05],
    rattle_stdev=[0.05, 0.1],
    rattles_per_structure=2,
    mc_rattle=True,
    vacancies=2,
    alloy_compositions=[{"Si": 0.5, "Ge": 0.5}, {"Si": 0.75, "Ge": 0.25}],
    surfaces=[SurfaceSpec(miller=(1, 1, 1), layers=2, vacuum=6.0)],
)
ORIGINS = [
    builder.STRAIN,
    builder.SHEAR,
    builder.RATTLE,
    builder.MC_RATTLE,
    builder.VACANCY,
    builder.ALLOY,
    builder.SURFACE,
]
RANDOM_ORIGINS = [builder.SHEAR, builder.RATTLE, builder.MC_RATTLE, builder.VACANCY, builder.ALLOY]


@functools.cache
def build(seed: int = 7, iteration: int = 0, mc_rattle: bool = True) -> list[GeneratedStructure]:
    """Cached: tests only read the structures."""
    generation = GENERATION.model_copy(update={"seed": seed, "mc_rattle": mc_rattle})
    return StructureBuilder(SI, generation, iteration).build()


def by_origin(structures: list[GeneratedStructure], origin: str) -> list[Atoms]:
    return [item.atoms for item in structures if item.origin == origin]


def same_structures(first: list[Atoms], second: list[Atoms]) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(a.numbers, b.numbers)
        and np.allclose(a.positions, b.positions, rtol=0, atol=1e-12)
        and np.allclose(a.cell.array, b.cell.array, rtol=0, atol=1e-12)
        for a, b in zip(first, second, strict=True)
    )


def test_counts_per_origin_follow_the_config() -> None:
    counts = Counter(item.origin for item in build())
    alloys = 2 * 2 * 2  # supercells x compositions x arrangements
    parents = 2 * 2 + alloys  # pure Si and Ge per supercell, and every alloy arrangement
    deformed = parents * 3  # x volumetric strains
    assert counts[builder.STRAIN] == deformed
    assert counts[builder.SHEAR] == deformed  # one shear value
    assert counts[builder.RATTLE] == 2 * deformed * 2 * 2  # parents x stdevs x copies
    assert counts[builder.MC_RATTLE] == counts[builder.RATTLE]
    assert counts[builder.VACANCY] == 2 * 2 * 2  # pure crystals x supercells x vacancies
    assert counts[builder.ALLOY] == alloys
    assert counts[builder.SURFACE] == 2  # one per pure crystal


@pytest.mark.parametrize("origin", ORIGINS)
def test_each_generator_is_deterministic_for_a_seed(origin: str) -> None:
    first, second = by_origin(build(), origin), by_origin(build(), origin)
    assert first
    assert same_structures(first, second)


@pytest.mark.parametrize("origin", RANDOM_ORIGINS)
def test_another_seed_or_iteration_gives_other_random_structures(origin: str) -> None:
    reference = by_origin(build(seed=7), origin)
    assert not same_structures(reference, by_origin(build(seed=8), origin))
    assert not same_structures(reference, by_origin(build(seed=7, iteration=1), origin))


def test_generators_do_not_share_random_state() -> None:
    """Turning the Monte-Carlo rattle off leaves every other generator's output unchanged."""
    with_mc, without_mc = build(), build(mc_rattle=False)
    for origin in (builder.RATTLE, builder.VACANCY, builder.ALLOY, builder.SHEAR):
        assert same_structures(by_origin(with_mc, origin), by_origin(without_mc, origin))


def test_rng_for_depends_on_every_label() -> None:
    draw = lambda *labels: transforms.rng_for(*labels).random(4)  # noqa: E731
    assert np.array_equal(draw(1, "rattle", 0), draw(1, "rattle", 0))
    assert not np.array_equal(draw(1, "rattle", 0), draw(1, "rattle", 1))
    assert not np.array_equal(draw(1, "rattle", 0), draw(2, "rattle", 0))
    assert not np.array_equal(draw(1, "rattle", 0), draw(1, "vacancy", 0))


def test_volumetric_strain_is_a_volume_strain() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    result = transforms.strained(atoms, 0.04)
    assert result.get_volume() == pytest.approx(atoms.get_volume() * 1.04)
    assert np.allclose(result.cell.array, atoms.cell.array * 1.04 ** (1 / 3))
    assert np.allclose(result.get_scaled_positions(), atoms.get_scaled_positions())


@pytest.mark.parametrize("plane", range(3))
def test_shear_keeps_the_volume_and_changes_one_angle(plane: int) -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    result = transforms.sheared(atoms, 0.1, plane)
    assert result.get_volume() == pytest.approx(atoms.get_volume())
    angles = result.cell.cellpar()[3:]
    assert sum(not np.isclose(angle, 90.0) for angle in angles) == 1


def test_gaussian_rattle_moves_atoms_by_about_stdev() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(3)
    result = transforms.gaussian_rattle(atoms, 0.1, np.random.default_rng(0))
    displacement = result.positions - atoms.positions
    assert displacement.std() == pytest.approx(0.1, rel=0.15)


def test_mc_rattle_keeps_pairs_apart_where_a_gaussian_rattle_does_not() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    radii = scaled_radii(atoms, 0.85)  # limit 1.89 Å, bonds are 2.35 Å
    stdev = 0.3
    gaussian = transforms.gaussian_rattle(atoms, stdev, np.random.default_rng(1))
    mc = transforms.mc_rattle(atoms, stdev, np.random.default_rng(1), radii)
    assert len(close_pairs(gaussian, radii)[0]) > 0
    assert len(close_pairs(mc, radii)[0]) == 0
    assert np.abs(mc.positions - atoms.positions).std() > 0.1


def test_mc_rattle_respects_the_floor_distance() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    radii = np.zeros(len(atoms))
    mc = transforms.mc_rattle(atoms, 0.3, np.random.default_rng(2), radii, floor=2.0)
    assert len(close_pairs(mc, radii, floor=2.0)[0]) == 0


def test_vacancy_removes_one_atom() -> None:
    for atoms in by_origin(build(), builder.VACANCY):
        assert len(atoms) in (7, 15)


@pytest.mark.parametrize(
    ("composition", "n_sites", "expected"),
    [
        ({"Si": 0.5, "Ge": 0.5}, 16, {"Si": 8, "Ge": 8}),
        ({"Si": 3, "Ge": 1}, 16, {"Si": 12, "Ge": 4}),
        ({"Si": 1, "Ge": 1, "Sn": 1}, 8, {"Si": 3, "Ge": 3, "Sn": 2}),
        ({"Si": 0.9, "Ge": 0.1}, 8, {"Si": 7, "Ge": 1}),
    ],
)
def test_composition_counts(composition: dict[str, float], n_sites: int, expected: dict) -> None:
    assert transforms.composition_counts(composition, n_sites) == expected


def test_alloys_have_the_requested_compositions() -> None:
    alloys = by_origin(build(), builder.ALLOY)
    observed = [Counter(atoms.get_chemical_symbols()) for atoms in alloys]
    assert observed == [
        {"Si": 4, "Ge": 4}, {"Si": 4, "Ge": 4},
        {"Si": 6, "Ge": 2}, {"Si": 6, "Ge": 2},
        {"Si": 8, "Ge": 8}, {"Si": 8, "Ge": 8},
        {"Si": 12, "Ge": 4}, {"Si": 12, "Ge": 4},
    ]  # fmt: skip
    first, second = alloys[0], alloys[1]  # two arrangements of one composition
    assert not np.array_equal(first.numbers, second.numbers)


def test_each_crystal_and_alloy_sits_at_its_own_lattice_constant() -> None:
    """Pure Si at lattice_constant, pure Ge at ASE's value, alloys at Vegard's law: each
    unstrained cell at its own volume, without a seed file for the other end member."""
    a_ge = bulk("Ge").cell.cellpar()[0] * 2**0.5  # ASE's diamond Ge, conventional
    structures = build()
    strained = [a for a in by_origin(structures, builder.STRAIN) if len(a) == 8]
    volumes = {a.get_chemical_formula(): a.get_volume() / len(a) for a in strained}
    assert set(volumes) >= {"Si8", "Ge8", "Ge4Si4", "Ge2Si6"}
    unstrained = {
        a.get_chemical_formula(): a.cell.lengths()[0]
        for a in strained
        if np.isclose(a.cell.lengths()[0], a.info[keys.KPOINT_CELL][0][0])
    }
    assert unstrained["Si8"] == pytest.approx(5.43)
    assert unstrained["Ge8"] == pytest.approx(a_ge)
    assert unstrained["Ge4Si4"] == pytest.approx(0.5 * 5.43 + 0.5 * a_ge)
    assert unstrained["Ge2Si6"] == pytest.approx(0.75 * 5.43 + 0.25 * a_ge)


def test_random_alloy_arrangements_differ_between_draws() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    first = transforms.random_alloy(atoms, {"Si": 0.5, "Ge": 0.5}, np.random.default_rng(0))
    second = transforms.random_alloy(atoms, {"Si": 0.5, "Ge": 0.5}, np.random.default_rng(1))
    assert not np.array_equal(first.numbers, second.numbers)


def test_surface_has_vacuum_on_both_sides_and_is_periodic_in_plane() -> None:
    slab, _ = by_origin(build(), builder.SURFACE)
    assert list(slab.pbc) == [True, True, False]
    heights = slab.positions[:, 2]
    assert heights.min() == pytest.approx(6.0)
    assert slab.cell[2, 2] - heights.max() == pytest.approx(6.0)


def test_a_slab_is_repeated_in_plane_on_request() -> None:
    """A 1x1 (111) slab of fcc Al is a column 2.9 Å wide; repeat: [2, 2] makes it a slab."""
    system = SystemConfig(elements=["Al"], prototype="fcc")
    column = SurfaceSpec(miller=(1, 1, 1), layers=4, vacuum=6.0)
    wide = column.model_copy(update={"repeat": (2, 2)})
    generation = GenerationConfig(surfaces=[column, wide], volumetric_strains=[], vacancies=0)
    first, second = by_origin(StructureBuilder(system, generation).build(), builder.SURFACE)
    assert len(second) == 4 * len(first) and list(second.pbc) == [True, True, False]
    np.testing.assert_allclose(second.cell.lengths()[:2], 2 * first.cell.lengths()[:2])
    assert second.cell.lengths()[2] == pytest.approx(first.cell.lengths()[2])


@pytest.mark.parametrize(
    ("prototype", "elements", "atoms"),
    [("fcc", ["Cu"], 4), ("bcc", ["Fe"], 2), ("hcp", ["Ti"], 4), ("rocksalt", ["Na", "Cl"], 8)],
)
def test_prototypes(prototype: str, elements: list[str], atoms: int) -> None:
    lattice_constant = 5.64 if prototype == "rocksalt" else None
    system = SystemConfig(elements=elements, prototype=prototype, lattice_constant=lattice_constant)
    base = builder.prototype_structure(system)
    assert len(base.cell) == atoms
    assert set(base.cell.get_chemical_symbols()) == set(elements)


def test_prototype_without_a_known_lattice_constant_says_what_to_set() -> None:
    system = SystemConfig(elements=["Cu"], prototype="diamond")
    with pytest.raises(BuildError, match="lattice_constant"):
        builder.prototype_structure(system)


def test_seed_structures_are_read_from_files(tmp_path: Path) -> None:
    path = tmp_path / "seed.xyz"
    ase.io.write(path, [bulk("Si", "diamond", a=5.43), bulk("Si", "diamond", a=5.5)])
    system = SystemConfig(elements=["Si"], prototype=None, seed_structures=[path])
    generation = GenerationConfig(
        volumetric_strains=[0.0], shear_strains=[], rattles_per_structure=0, vacancies=0
    )
    structures = StructureBuilder(system, generation).build()
    assert [len(item.atoms) for item in structures] == [2, 2]
    assert structures[1].atoms.cell[0, 1] == pytest.approx(2.75)
