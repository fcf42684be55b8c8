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
from mlip_autopipec.config.files import UpfCutoffs, pseudopotential_problem, upf_cutoffs

# Physical plausibility: values outside these make every label useless (or pw.x unrunnable).
MAX_CONV_THR = 1e-4  # Ry: looser accepts an SCF that has not converged
MAX_DEGAUSS = 0.1  # Ry (1.4 eV): wider smears the electrons of any material into a hot gas
MIN_ECUTWFC = 10.0  # Ry: no pseudopotential gives usable forces below this
MIN_KSPACING = 0.03  # 1/Å: denser meshes than this are millions of k-points per cell
MIN_TIMEOUT = 1.0  # s: pw.x cannot start up and run one SCF in less
AUGMENTED_ECUTRHO_FACTOR = 8  # ultrasoft and PAW densities need more than 4 x ecutwfc


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

    @field_validator("conv_thr")
    @classmethod
    def _converged_scf(cls, value: float) -> float:
        if value > MAX_CONV_THR:
            raise ValueError(
                f"{value:g} Ry would accept an unconverged SCF; use 1e-6 or tighter "
                f"(at most {MAX_CONV_THR:g})"
            )
        return value

    @field_validator("degauss")
    @classmethod
    def _narrow_smearing(cls, value: float) -> float:
        if value > MAX_DEGAUSS:
            raise ValueError(
                f"{value:g} Ry ({value * 13.6057:.2g} eV) smears the electrons far beyond any "
                f"physical temperature; use 0.01-0.05 Ry (at most {MAX_DEGAUSS:g})"
            )
        return value

    @field_validator("ecutwfc")
    @classmethod
    def _usable_cutoff(cls, value: float) -> float:
        if value < MIN_ECUTWFC:
            raise ValueError(f"{value:g} Ry is too low for any pseudopotential (use >= 20)")
        return value

    @field_validator("kspacing")
    @classmethod
    def _finite_mesh(cls, value: float) -> float:
        if value < MIN_KSPACING:
            raise ValueError(
                f"{value:g} 1/Å would need millions of k-points; 0.15-0.4 is usual "
                f"(at least {MIN_KSPACING:g})"
            )
        return value

    @field_validator("timeout", "max_timeout")
    @classmethod
    def _runnable(cls, value: float | None) -> float | None:
        if value is not None and value < MIN_TIMEOUT:
            raise ValueError(
                f"{value:g} s is too short for pw.x to start (at least {MIN_TIMEOUT:g})"
            )
        return value

    @model_validator(mode="after")
    def _check_physics(self) -> DFTConfig:
        suggested = self._suggested_cutoffs()
        if suggested.wfc > self.ecutwfc:
            raise ValueError(
                f"ecutwfc {self.ecutwfc:g} Ry is below the {suggested.wfc:.0f} Ry the "
                "pseudopotentials suggest; use at least that"
            )
        if self.ecutrho is None and suggested.augmented:
            rho = max(AUGMENTED_ECUTRHO_FACTOR * self.ecutwfc, suggested.rho)
            self.__dict__["ecutrho"] = rho  # the default for ultrasoft/PAW, not 4 x ecutwfc
        if self.ecutrho is not None and self.ecutrho < 4 * self.ecutwfc:
            raise ValueError("ecutrho must be at least 4 x ecutwfc")
        if self.ecutrho is not None and suggested.rho > self.ecutrho:
            raise ValueError(
                f"ecutrho {self.ecutrho:g} Ry is below the {suggested.rho:.0f} Ry the "
                "pseudopotentials suggest; use at least that"
            )
        if self.max_timeout is not None and self.max_timeout < self.timeout:
            raise ValueError("max_timeout must not be smaller than timeout")
        return self

    def _suggested_cutoffs(self) -> UpfCutoffs:
        """The largest minima the configured pseudopotentials' headers suggest."""
        found = []
        for name in self.pseudopotentials.values():
            try:
                found.append(upf_cutoffs(self.pseudo_dir / name))
            except (OSError, ValueError):
                continue  # reported by the pseudopotentials check
        return UpfCutoffs(
            wfc=max((c.wfc for c in found), default=0.0),
            rho=max((c.rho for c in found), default=0.0),
            augmented=any(c.augmented for c in found),
        )
