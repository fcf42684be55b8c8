"""The validation section: which physical properties to compare between the potential and DFT."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlip_autopipec.config.fields import Bool, Float, PositiveFloat, PositiveInt, Section

Property = Literal["eos", "elastic", "vacancy", "surface", "phonons", "md", "alloys"]
ALL_PROPERTIES: tuple[Property, ...] = (
    "eos",
    "elastic",
    "vacancy",
    "surface",
    "phonons",
    "md",
    "alloys",
)


class ValidationConfig(Section):
    """Potential vs DFT on small cells, each side at its own equilibrium (see README)."""

    enabled: Bool = Field(
        True, description="Validate the final potential when `run` stops (a failure is logged)."
    )
    properties: list[Property] = Field(
        default_factory=lambda: list(ALL_PROPERTIES),
        description="Which of eos, elastic, vacancy, surface, phonons, md, alloys to compute "
        "(each pure element of a one-species prototype gets the first six; alloys: the "
        "configured alloy compositions' a0 and mixing energies).",
    )
    eos_points: PositiveInt = Field(
        7, ge=5, description="Volumes of the E-V scan (stage 1) that finds each side's a0."
    )
    eos_volume_range: Float = Field(
        0.08, gt=0, le=0.2, description="Volumes span 1 +- this times the reference volume."
    )
    elastic_strain: Float = Field(
        0.01, gt=0, le=0.05, description="Strain of the + and - strained cells at a0."
    )
    vacancy_supercell: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (2, 2, 2), description="Repeats of the primitive cell for the vacancy."
    )
    vacancy_relax_steps: int = Field(
        12,
        ge=0,
        le=100,
        description="pw.x single points at most for the DFT vacancy relaxation (BFGS on pw.x "
        "forces, fixed cell); 0 leaves the DFT relaxed vacancy energy out.",
    )
    phonon_supercell: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (2, 2, 2), description="Repeats of the primitive cell for phonopy's displacements."
    )
    phonon_displacement: PositiveFloat = Field(0.01, le=0.1, description="Å")
    md_steps: PositiveInt = Field(
        200, description="Steps of the MD at the highest inference temperature (no DFT)."
    )

    @field_validator("properties")
    @classmethod
    def _unique(cls, value: list[Property]) -> list[Property]:
        if len(set(value)) != len(value):
            raise ValueError("properties are listed more than once")
        return value
