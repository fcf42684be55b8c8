"""The training section: pacemaker settings (see pacemaker's input.yaml reference)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from mlip_autopipec.config.fields import (
    ArgumentList,
    Bool,
    Float,
    Int,
    NonNegativeFloat,
    NonNegativeInt,
    Number,
    PositiveFloat,
    PositiveInt,
    Section,
    check_element,
)


class TrainingConfig(Section):
    """pacemaker settings (see pacemaker's input.yaml reference)."""

    cutoff: Float = Field(5.0, gt=1.0, le=15.0, description="rcut (Å)")
    number_of_functions_per_element: PositiveInt = Field(
        100,
        description="pacemaker's: all functions of an element's atoms. pyace shares them equally "
        "among the element's 2^(n-1) basis blocks for n elements (its pure environments and "
        "each set of other elements around it): in a binary, half for the pure element.",
    )
    embedding_npot: Literal["FinnisSinclair", "FinnisSinclairShiftedScaled"] = (
        "FinnisSinclairShiftedScaled"
    )
    embedding_ndensity: PositiveInt = Field(2, le=4)
    embedding_fs_parameters: list[Float] = Field(
        default_factory=lambda: [1.0, 1.0, 1.0, 0.5], validate_default=True
    )
    radial_basis: Literal["ChebExpCos", "ChebPow", "SBessel"] = "SBessel"
    radial_parameters: list[PositiveFloat] = Field(default_factory=lambda: [5.25], min_length=1)
    nradmax_by_orders: list[PositiveInt] = Field(
        default_factory=lambda: [15, 6, 4, 3, 2, 2], min_length=1, max_length=6
    )
    lmax_by_orders: list[NonNegativeInt] = Field(
        default_factory=lambda: [0, 3, 3, 2, 2, 1],
        min_length=1,
        max_length=6,
        validate_default=True,
    )
    kappa: Float = Field(0.3, ge=0, le=1, description="Force weight in the loss.")
    l1_reg: NonNegativeFloat = 1e-8
    l2_reg: NonNegativeFloat = 1e-8
    optimizer: Literal["BFGS", "L-BFGS-B", "Nelder-Mead"] = "BFGS"
    maxiter: PositiveInt = 200
    ladder_step: list[PositiveFloat] = Field(default_factory=list, max_length=2)
    ladder_type: Literal["body_order", "power_order"] = "body_order"
    loop_functions_per_element: PositiveInt | None = Field(
        None,
        description="Functions per element of the loop's fits, which drive MD and selection "
        "(default: number_of_functions_per_element, which the final fit uses). With about as "
        "many functions as training atoms, gamma of anything new runs into the hundreds; "
        "the last loop fit (fitted on the same structures) then grades the final fit's gamma "
        "in the hand-over.",
    )
    final_maxiter: NonNegativeInt = Field(
        1000,
        le=100_000,
        description="After the loop: one fit from scratch on every label with this many steps "
        "(0: none), a hand-over candidate beside each iteration's fit.",
    )
    final_kappa: Float | None = Field(
        None,
        ge=0,
        le=1,
        description="The final fit's force weight (default: kappa). Strain energies of a few "
        "meV/atom must be learned to 0.1 meV/atom for elastic constants; force errors dominate "
        "the loss unless kappa is small.",
    )
    batch_size: PositiveInt = 100
    test_fraction: Float = Field(0.1, ge=0, lt=1)
    reference_energies: dict[str, Number] | None = Field(
        None, description="Isolated-atom energies (eV); fitted by least squares when absent."
    )
    seed: Int = 42
    timeout: PositiveFloat = 7200.0
    command: ArgumentList = Field(default_factory=lambda: ["pacemaker"], min_length=1)
    upfit: Bool = True
    upfit_max_growth: NonNegativeFloat = Field(
        0.5,
        description="Fit from scratch instead of up-fitting when the training set grew by more "
        "than this fraction since the previous potential (a potential fitted on few structures "
        "is a poor starting point for many more).",
    )
    upfit_fallback_ratio: PositiveFloat = Field(
        3.0,
        description="When an up-fit ends with a train loss above this multiple of the previous "
        "fit's final loss, also fit from scratch and keep the fit with the lower loss.",
    )

    # Defaults are validated too, so that changing one list alone is checked against the other.
    @field_validator("embedding_fs_parameters")
    @classmethod
    def _fs_parameters_per_density(cls, value: list[float], info: ValidationInfo) -> list[float]:
        ndensity = info.data.get("embedding_ndensity")
        if ndensity is not None and len(value) != 2 * ndensity:
            raise ValueError(
                f"needs 2 x embedding_ndensity = {2 * ndensity} values (pacemaker's two "
                f"parameters per density), got {len(value)}"
            )
        return value

    @field_validator("lmax_by_orders")
    @classmethod
    def _lmax_per_order(cls, value: list[int], info: ValidationInfo) -> list[int]:
        nradmax = info.data.get("nradmax_by_orders")
        if nradmax is not None and len(value) != len(nradmax):
            raise ValueError(
                f"needs one value per order like nradmax_by_orders ({len(nradmax)}), "
                f"got {len(value)}"
            )
        if value[0] != 0:
            raise ValueError("the first (two-body) order must have lmax 0")
        return value

    @field_validator("ladder_step")
    @classmethod
    def _ladder_step(cls, value: list[float]) -> list[float]:
        for step in value:
            if not (0 < step < 1 or (step >= 1 and float(step).is_integer())):
                raise ValueError(f"{step} is neither a whole number >= 1 nor a fraction in (0, 1)")
        return value

    @field_validator("reference_energies")
    @classmethod
    def _reference_energies(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for symbol, energy in (value or {}).items():
            check_element(symbol)
            if not math.isfinite(energy):
                raise ValueError(f"{symbol}: energy is not finite")
        return value
