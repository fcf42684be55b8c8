"""Exploration sections: the material, how candidates are generated, filtered and selected."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlip_autopipec.config.fields import (
    Bool,
    Float,
    Int,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
    check_element,
    resolve_path,
)
from mlip_autopipec.config.seed_files import seed_file_problem


class SystemConfig(Section):
    """What material: its elements, and either a bulk prototype or seed structure files."""

    elements: list[str] = Field(min_length=1)
    prototype: Literal["diamond", "fcc", "bcc", "hcp", "sc", "rocksalt", "zincblende"] | None = (
        "diamond"
    )
    lattice_constant: PositiveFloat | None = Field(
        None, ge=1.0, le=30.0, description="Å; no crystal's conventional cell is outside 1-30 Å."
    )
    lattice_constants: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="Å per element, for each pure end member of a one-species prototype "
        "(diamond, fcc, ...); default: lattice_constant for the first element, else ASE's "
        "reference value. Alloys sit at the composition-weighted mean (Vegard's law).",
    )
    seed_structures: list[Path] = Field(default_factory=list)
    min_distance: PositiveFloat = Field(
        0.5, description="No two atoms of a stored structure may be closer than this (Å)."
    )

    def lattice_constant_of(self, element: str) -> float | None:
        """lattice_constants[element], else lattice_constant for the first element, else None
        (ASE's reference value)."""
        if element in self.lattice_constants:
            return self.lattice_constants[element]
        return self.lattice_constant if element == self.elements[0] else None

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, value: list[str]) -> list[str]:
        for symbol in value:
            check_element(symbol)
        if len(set(value)) != len(value):
            raise ValueError("elements are listed more than once")
        return value

    @field_validator("seed_structures")
    @classmethod
    def _seed_files_exist(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        value = [p for p in (resolve_path(p, info) for p in value) if p is not None]
        missing = [str(p) for p in value if not p.exists()]
        if missing:
            raise ValueError(f"seed structure file(s) not found: {', '.join(missing)}")
        elements = info.data.get("elements") or []
        problems = [problem for p in value if (problem := seed_file_problem(p, elements))]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _has_a_source(self) -> SystemConfig:
        if self.prototype is None and not self.seed_structures:
            raise ValueError("give a prototype or at least one seed structure file")
        if self.prototype in ("rocksalt", "zincblende") and len(self.elements) < 2:
            raise ValueError(f"the {self.prototype} prototype needs two elements")
        unknown = sorted(set(self.lattice_constants) - set(self.elements))
        if unknown:
            raise ValueError(f"lattice_constants: {', '.join(unknown)} not in system.elements")
        return self


class SurfaceSpec(Section):
    miller: tuple[Int, Int, Int]
    layers: PositiveInt = 4
    vacuum: PositiveFloat = 8.0
    repeat: tuple[PositiveInt, PositiveInt] = Field(
        (1, 1), description="In-plane repeats of the slab cell (a 1x1 cell can be a column)."
    )

    @field_validator("miller")
    @classmethod
    def _not_zero(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if value == (0, 0, 0):
            raise ValueError("Miller indices (0, 0, 0) do not define a plane")
        return value


class FilterConfig(Section):
    min_distance_scale: PositiveFloat = Field(
        0.6, description="Reject when two atoms are closer than this x sum of covalent radii."
    )
    max_aspect_ratio: Float = Field(6.0, gt=1, description="Longest cell vector / thinnest width.")
    min_cell_angle: Float = Field(30.0, gt=0, lt=90)
    max_atoms: PositiveInt = 256


class GenerationConfig(Section):
    seed: Int = 0
    supercells: list[tuple[PositiveInt, PositiveInt, PositiveInt]] = Field(
        default_factory=lambda: [(1, 1, 1)]
    )
    volumetric_strains: list[Float] = Field(
        default_factory=lambda: [-0.04, 0.0, 0.04],
        description="Volume strains: the cell is scaled isotropically to (1 + strain) x its "
        "volume (+0.04: 4 % larger volume, 1.3 % longer cell vectors).",
    )
    shear_strains: list[Float] = Field(
        default_factory=lambda: [0.03],
        description="Engineering shear of one randomly chosen plane of each strained cell.",
    )
    rattle_stdev: list[NonNegativeFloat] = Field(default_factory=lambda: [0.05, 0.1])
    rattles_per_structure: NonNegativeInt = 2
    mc_rattle: Bool = Field(
        True, description="Also make Monte-Carlo rattles that keep atoms apart (filter limits)."
    )
    vacancies: NonNegativeInt = Field(1, description="Vacancy structures per supercell.")
    alloy_compositions: list[dict[str, PositiveFloat]] = Field(
        default_factory=list,
        description="{symbol: fraction}, fractions adding up to 1; each alloy is built at its "
        "Vegard lattice constant, strained, sheared and rattled like a pure parent.",
    )
    alloy_arrangements: PositiveInt = Field(
        2, description="Random substitutional arrangements per alloy composition and supercell."
    )
    surfaces: list[SurfaceSpec] = Field(default_factory=list)
    filters: FilterConfig = FilterConfig()

    @field_validator("volumetric_strains", "shear_strains")
    @classmethod
    def _strain_range(cls, value: list[float]) -> list[float]:
        for strain in value:
            if not -0.5 < strain < 0.5:
                raise ValueError(f"strain {strain} is outside (-0.5, 0.5)")
        return value

    @field_validator("alloy_compositions")
    @classmethod
    def _compositions(cls, value: list[dict[str, float]]) -> list[dict[str, float]]:
        for composition in value:
            for symbol in composition:
                check_element(symbol)
            total = sum(composition.values())
            if abs(total - 1.0) > 1e-6:
                shown = ", ".join(f"{el}: {x:g}" for el, x in composition.items())
                raise ValueError(f"{{{shown}}}: fractions add up to {total:g}, not 1")
        return value


class SurrogateConfig(Section):
    name: Literal["chgnet", "mace"] = "chgnet"
    model_path: Path | None = None
    foundation_model: str | None = Field(
        None, description="Named MACE-MP model (needs network access the first time)."
    )
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: PositiveInt = 2
    batch_size: PositiveInt = 16
    max_force: PositiveFloat = Field(20.0, description="eV/Å; larger predicted forces: rejected.")
    max_energy_above_min: PositiveFloat = Field(
        1.0, description="eV/atom above the lowest candidate; higher: rejected."
    )

    _resolve = field_validator("model_path", mode="after")(resolve_path)

    @field_validator("model_path")
    @classmethod
    def _model_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"model file not found: {value}")
        return value

    @model_validator(mode="after")
    def _mace_has_a_model(self) -> SurrogateConfig:
        if self.name == "mace" and self.model_path is None and self.foundation_model is None:
            raise ValueError(
                "the mace surrogate needs model_path (a MACE model file) or foundation_model "
                "(a MACE-MP name such as 'medium', downloaded on first use)"
            )
        return self


class SelectionConfig(Section):
    """Which candidates go to DFT, and how many per iteration."""

    method: Literal["maxvol", "fps", "random"] = Field(
        "maxvol",
        description="maxvol: D-optimality in the current ACE basis (pace_select conditioned on "
        "the fit's active set); fps: farthest points in the surrogate's descriptor space; "
        "random: a seeded random draw.",
    )
    initial_method: Literal["fps", "random", "kmedoids"] = Field(
        "fps",
        description="Used by maxvol while there is no fit yet (iteration 0): fps, random, or "
        "kmedoids (one representative per cluster of surrogate descriptors).",
    )
    n_select: PositiveInt | None = Field(
        None,
        description="Picks per iteration; default: the smallest multiple of the compute "
        "task slots that is at least 8, so every worker stays busy.",
    )
    seed: NonNegativeInt = Field(
        0,
        description="Seed of the random draw (mixed with the iteration, so draws differ per "
        "iteration) and of kmedoids' k-means.",
    )
    min_distance: NonNegativeFloat = Field(
        0.0,
        description="fps only: stop picking when the farthest candidate is closer than this to "
        "the picked and labeled ones (Euclidean, standardized descriptor space).",
    )


class AnchorsConfig(Section):
    """The near-equilibrium manifold labeled in iteration 0 whatever selection picks: an E-V
    scan, uniaxial and shear strains, small displacements and a vacancy of each crystal, in
    the cell its bulk data is labeled in (the first supercell when it has at most 16 atoms,
    else the crystal's own cell, else its primitive cell); and each alloy composition near its
    equilibrium: a small E-V scan in that cell and other arrangements in cells of other
    shapes."""

    enabled: Bool = True
    volume_strains: list[Float] = Field(
        default_factory=lambda: [-0.08, -0.05, -0.02, 0.0, 0.02, 0.05, 0.08],
        description="Volume strains of the E-V scan of the anchor cell.",
    )
    alloy_volume_strains: list[Float] = Field(
        default_factory=lambda: [-0.03, 0.0, 0.03],
        description="Volume strains of each alloy composition's anchor: its first random "
        "arrangement at Vegard's lattice constant, unrattled ([]: no alloy anchors).",
    )
    alloy_arrangements: PositiveInt = Field(
        3,
        description="Arrangements of each alloy composition labeled unrattled at Vegard's "
        "lattice constant: the first with its E-V scan, the others alternately in a column of "
        "primitive cells and in the anchor cell. One arrangement leaves a fit free to give "
        "other arrangements (an ordered alloy) energies 50-100 meV/atom off.",
    )
    strains: list[PositiveFloat] = Field(
        default_factory=lambda: [0.015, 0.03],
        description="Uniaxial (xx) and shear (yz) strains, each applied with + and - sign.",
    )
    displacement: NonNegativeFloat = Field(
        0.03, le=0.2, description="Å, stdev of the random displacements (0: none)."
    )
    displaced_cells: NonNegativeInt = Field(
        2, description="Randomly displaced copies of the anchor cell."
    )
    vacancy: Bool = Field(
        True,
        description="One vacancy per element of each crystal, unrelaxed in the anchor cell "
        "(when it has at least 8 atoms): selection seldom picks a vacancy cell, and without "
        "one a vacancy formation energy is a guess (the Si-Ge example's silicon: 1.2 eV off).",
    )
    energy_weight: PositiveFloat = Field(
        5.0, description="Energy weight of an anchor in the fit, relative to 1 for other data."
    )

    @field_validator("volume_strains", "alloy_volume_strains", "strains")
    @classmethod
    def _small(cls, value: list[float]) -> list[float]:
        for strain in value:
            if not -0.3 < strain < 0.3:
                raise ValueError(f"strain {strain} is outside (-0.3, 0.3): not near equilibrium")
        return value


class ExplorationConfig(Section):
    anchors: AnchorsConfig = AnchorsConfig()
    generation: GenerationConfig = GenerationConfig()
    surrogate: SurrogateConfig = SurrogateConfig()
    selection: SelectionConfig = SelectionConfig()
