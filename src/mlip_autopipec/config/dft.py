"""The DFT section: how to run pw.x and with which physical settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlip_autopipec.config.fields import (
    SAFE_FILENAME,
    SAFE_PATH,
    ArgumentList,
    Bool,
    Float,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
    check_element,
    resolve_path,
)
from mlip_autopipec.config.files import pseudopotential_problem


class DFTConfig(Section):
    """How to run pw.x and with which physical settings."""

    command: ArgumentList = Field(default_factory=lambda: ["pw.x"], min_length=1)
    launcher: ArgumentList = Field(default_factory=list, description='e.g. ["mpirun", "-np", "2"]')
    pseudo_dir: Path = Field(Path("/usr/share/espresso/pseudo"), validate_default=True)
    pseudopotentials: dict[str, str]
    ecutwfc: PositiveFloat = 30.0
    ecutrho: PositiveFloat | None = None
    kspacing: PositiveFloat = Field(0.3, description="1/Å including 2π.")
    occupations: Literal["smearing", "fixed"] = "smearing"
    smearing: Literal["mv", "marzari-vanderbilt", "gaussian", "fd", "mp", "cold"] = "mv"
    degauss: PositiveFloat = 0.02
    conv_thr: PositiveFloat = 1e-8
    mixing_beta: Float = Field(0.7, gt=0, le=1)
    electron_maxstep: PositiveInt = 100
    timeout: PositiveFloat = Field(3600.0, description="Hard limit per pw.x run in seconds.")
    max_timeout: PositiveFloat | None = Field(
        None, description="A walltime failure may be retried with a longer limit up to this."
    )
    max_retries: NonNegativeInt = 3
    recovery: Bool = True

    _resolve = field_validator("pseudo_dir", mode="after")(resolve_path)

    @field_validator("pseudo_dir")
    @classmethod
    def _plain_pseudo_dir(cls, value: Path) -> Path:
        if not SAFE_PATH.match(str(value)):
            raise ValueError(
                f"{str(value)!r} must be a plain path (letters, digits, _ . / + -): "
                "it is written into the pw.x input"
            )
        return value

    @field_validator("pseudopotentials")
    @classmethod
    def _pseudo_files(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for symbol, filename in value.items():
            check_element(symbol)
            if not SAFE_FILENAME.match(filename):
                raise ValueError(f"{symbol}: {filename!r} is not a plain file name")
        pseudo_dir = info.data.get("pseudo_dir")
        if pseudo_dir is not None:
            problems = [
                f"{symbol}: {problem}"
                for symbol, name in value.items()
                if (problem := pseudopotential_problem(pseudo_dir / name, symbol)) is not None
            ]
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _check_physics(self) -> DFTConfig:
        if self.ecutrho is not None and self.ecutrho < 4 * self.ecutwfc:
            raise ValueError("ecutrho must be at least 4 x ecutwfc")
        if self.max_timeout is not None and self.max_timeout < self.timeout:
            raise ValueError("max_timeout must not be smaller than timeout")
        return self
