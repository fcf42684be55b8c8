"""Typed configuration tree: one frozen Pydantic model per section of the YAML file."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from ase.data import chemical_symbols
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]


def _plain_arguments(value: list[str]) -> list[str]:
    if any(not arg or "\x00" in arg for arg in value):
        raise ValueError("arguments must be non-empty strings")
    return value


# A program and its arguments as an argument list (never a shell string).
ArgumentList = Annotated[list[str], AfterValidator(_plain_arguments)]

# A value that is written verbatim into a pw.x or LAMMPS input must be a plain token:
# no quotes, newlines, '&', '/', '!' or spaces that could open a new namelist or command.
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a relative path against the config file's folder (given as context)."""
    if value is None:
        return None
    try:
        value = Path(value).expanduser()
    except RuntimeError as error:  # "~unknownuser/..."
        raise ValueError(str(error)) from None
    base_dir = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base_dir is not None:
        value = Path(base_dir) / value
    return value


def check_element(symbol: str) -> str:
    if symbol not in chemical_symbols[1:]:
        raise ValueError(f"{symbol!r} is not a chemical symbol")
    return symbol


class SystemConfig(Section):
    """What material: its elements, and either a bulk prototype or seed structure files."""

    elements: list[str] = Field(min_length=1)
    prototype: Literal["diamond", "fcc", "bcc", "hcp", "sc", "rocksalt", "zincblende"] | None = (
        "diamond"
    )
    lattice_constant: PositiveFloat | None = None
    seed_structures: list[Path] = Field(default_factory=list)
    min_distance: PositiveFloat = Field(
        0.5, description="No two atoms of a stored structure may be closer than this (Å)."
    )

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
        missing = [str(p) for p in value if not p.is_file()]
        if missing:
            raise ValueError(f"seed structure file(s) not found: {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _has_a_source(self) -> SystemConfig:
        if self.prototype is None and not self.seed_structures:
            raise ValueError("give a prototype or at least one seed structure file")
        if self.prototype in ("rocksalt", "zincblende") and len(self.elements) < 2:
            raise ValueError(f"the {self.prototype} prototype needs two elements")
        return self


class SurfaceSpec(Section):
    miller: tuple[int, int, int]
    layers: PositiveInt = 4
    vacuum: PositiveFloat = 8.0

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
    max_aspect_ratio: PositiveFloat = Field(6.0, gt=1)
    min_cell_angle: float = Field(30.0, gt=0, lt=90)
    max_atoms: PositiveInt = 256


class GenerationConfig(Section):
    seed: int = 0
    supercells: list[tuple[PositiveInt, PositiveInt, PositiveInt]] = Field(
        default_factory=lambda: [(1, 1, 1)]
    )
    volumetric_strains: list[float] = Field(
        default_factory=lambda: [-0.04, 0.0, 0.04],
        description="Isotropic strains: every cell vector is scaled by 1 + strain.",
    )
    shear_strains: list[float] = Field(
        default_factory=lambda: [0.03],
        description="Engineering shear of one randomly chosen plane of each strained cell.",
    )
    rattle_stdev: list[NonNegativeFloat] = Field(default_factory=lambda: [0.05, 0.1])
    rattles_per_structure: int = Field(2, ge=0)
    mc_rattle: bool = Field(
        True, description="Also make Monte-Carlo rattles that keep atoms apart (filter limits)."
    )
    vacancies: int = Field(1, ge=0, description="Vacancy structures per supercell.")
    alloy_compositions: list[dict[str, PositiveFloat]] = Field(default_factory=list)
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
    n_select: PositiveInt = 8
    min_distance: NonNegativeFloat = Field(
        0.0,
        description="Stop picking when the farthest candidate is closer than this to the "
        "picked and labeled ones (Euclidean, standardized descriptor space).",
    )


class ExplorationConfig(Section):
    generation: GenerationConfig = GenerationConfig()
    surrogate: SurrogateConfig = SurrogateConfig()
    selection: SelectionConfig = SelectionConfig()


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
    mixing_beta: float = Field(0.7, gt=0, le=1)
    electron_maxstep: PositiveInt = 100
    timeout: PositiveFloat = Field(3600.0, description="Hard limit per pw.x run in seconds.")
    max_timeout: PositiveFloat | None = Field(
        None, description="A walltime failure may be retried with a longer limit up to this."
    )
    max_retries: int = Field(3, ge=0)
    recovery: bool = True

    _resolve = field_validator("pseudo_dir", mode="after")(resolve_path)

    @field_validator("pseudo_dir")
    @classmethod
    def _plain_pseudo_dir(cls, value: Path) -> Path:
        if not _SAFE_PATH.match(str(value)):
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
            if not _SAFE_FILENAME.match(filename):
                raise ValueError(f"{symbol}: {filename!r} is not a plain file name")
        pseudo_dir = info.data.get("pseudo_dir")
        if pseudo_dir is not None:
            missing = [
                f"{el}: {pseudo_dir / name} not found"
                for el, name in value.items()
                if not (pseudo_dir / name).is_file()
            ]
            if missing:
                raise ValueError("; ".join(missing))
        return value

    @model_validator(mode="after")
    def _check_physics(self) -> DFTConfig:
        if self.ecutrho is not None and self.ecutrho < 4 * self.ecutwfc:
            raise ValueError("ecutrho must be at least 4 x ecutwfc")
        if self.max_timeout is not None and self.max_timeout < self.timeout:
            raise ValueError("max_timeout must not be smaller than timeout")
        return self


class TrainingConfig(Section):
    """pacemaker settings (see pacemaker's input.yaml reference)."""

    cutoff: float = Field(5.0, gt=1.0, le=15.0, allow_inf_nan=False, description="rcut (Å)")
    number_of_functions_per_element: PositiveInt = 100
    embedding_npot: Literal["FinnisSinclair", "FinnisSinclairShiftedScaled"] = (
        "FinnisSinclairShiftedScaled"
    )
    embedding_ndensity: PositiveInt = Field(2, le=4)
    embedding_fs_parameters: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0, 0.5])
    radial_basis: Literal["ChebExpCos", "ChebPow", "SBessel"] = "SBessel"
    radial_parameters: list[PositiveFloat] = Field(default_factory=lambda: [5.25], min_length=1)
    nradmax_by_orders: list[PositiveInt] = Field(
        default_factory=lambda: [15, 6, 4, 3, 2, 2], min_length=1, max_length=6
    )
    lmax_by_orders: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0, 3, 3, 2, 2, 1], min_length=1, max_length=6
    )
    kappa: float = Field(0.3, ge=0, le=1, description="Force weight in the loss.")
    l1_reg: NonNegativeFloat = 1e-8
    l2_reg: NonNegativeFloat = 1e-8
    optimizer: Literal["BFGS", "L-BFGS-B", "Nelder-Mead"] = "BFGS"
    maxiter: PositiveInt = 200
    ladder_step: list[PositiveFloat] = Field(default_factory=list, max_length=2)
    ladder_type: Literal["body_order", "power_order"] = "body_order"
    batch_size: PositiveInt = 100
    test_fraction: float = Field(0.1, ge=0, lt=1)
    reference_energies: dict[str, float] | None = Field(
        None, description="Isolated-atom energies (eV); fitted by least squares when absent."
    )
    seed: int = 42
    timeout: PositiveFloat = 7200.0
    command: ArgumentList = Field(default_factory=lambda: ["pacemaker"], min_length=1)
    upfit: bool = True
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

    @field_validator("embedding_fs_parameters")
    @classmethod
    def _fs_parameters_per_density(cls, value: list[float], info: ValidationInfo) -> list[float]:
        ndensity = info.data.get("embedding_ndensity")
        if ndensity is not None and len(value) != 2 * ndensity:
            raise ValueError(
                f"needs 2 x embedding_ndensity = {2 * ndensity} values, got {len(value)}"
            )
        return value

    @field_validator("lmax_by_orders")
    @classmethod
    def _lmax_per_order(cls, value: list[int], info: ValidationInfo) -> list[int]:
        nradmax = info.data.get("nradmax_by_orders")
        if nradmax is not None and len(value) != len(nradmax):
            raise ValueError(f"needs one value per order like nradmax_by_orders ({len(nradmax)})")
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


class InferenceConfig(Section):
    engine: Literal["ase", "lammps"] = "ase"
    lammps_command: ArgumentList = Field(default_factory=lambda: ["lmp"], min_length=1)
    temperatures: list[NonNegativeFloat] = Field(
        default_factory=lambda: [300.0, 900.0], min_length=1
    )
    pressures: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        None, min_length=1, description="bar; NPT runs at each pressure when given."
    )
    steps: PositiveInt = 500
    timestep: PositiveFloat = Field(1.0, description="fs")
    runs_per_temperature: PositiveInt = 1
    gamma_lower: PositiveFloat = 2.0
    gamma_upper: PositiveFloat = 10.0
    gamma_every: PositiveInt = 10
    max_frames: PositiveInt = 10
    extraction_buffer: NonNegativeFloat = 1.0
    relax_boundary: bool = Field(
        False, description="Relax the cut-out environment's outer atoms, core fixed."
    )
    timeout: PositiveFloat = 3600.0

    @field_validator("temperatures", "pressures")
    @classmethod
    def _unique(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("values must be unique (use runs_per_temperature for repeats)")
        return value

    @model_validator(mode="after")
    def _gamma_order(self) -> InferenceConfig:
        if self.gamma_lower >= self.gamma_upper:
            raise ValueError("gamma_lower must be smaller than gamma_upper")
        return self


class WorkflowConfig(Section):
    work_dir: Path = Field(Path("work"), validate_default=True)
    database: Path | None = Field(None, description="Defaults to work_dir/mlip.db.")
    max_iterations: PositiveInt = 3
    target_force_rmse: PositiveFloat = Field(0.1, description="eV/Å")
    max_extrapolative_fraction: float = Field(0.05, ge=0, le=1)

    _resolve = field_validator("work_dir", "database", mode="after")(resolve_path)

    @property
    def database_path(self) -> Path:
        return self.database if self.database is not None else self.work_dir / "mlip.db"


class JobqueueConfig(Section):
    kind: Literal["slurm", "pbs", "sge", "lsf"] = "slurm"
    jobs: PositiveInt = 1
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the dask-jobqueue cluster (cores, memory, queue, walltime, ...).",
    )


class ComputeConfig(Section):
    n_workers: PositiveInt = 1
    threads_per_worker: PositiveInt = 1
    scheduler_address: str | None = None
    jobqueue: JobqueueConfig | None = None
    worker_wait_timeout: PositiveFloat = Field(
        3600.0, description="s to wait for the first worker of a jobqueue or external cluster."
    )

    @model_validator(mode="after")
    def _one_backend(self) -> ComputeConfig:
        if self.scheduler_address and self.jobqueue:
            raise ValueError("give either scheduler_address or jobqueue, not both")
        return self


class MLIPConfig(Section):
    system: SystemConfig
    exploration: ExplorationConfig = ExplorationConfig()
    dft: DFTConfig
    training: TrainingConfig = TrainingConfig()
    inference: InferenceConfig = InferenceConfig()
    workflow: WorkflowConfig = WorkflowConfig()
    compute: ComputeConfig = ComputeConfig()

    @field_validator("exploration")
    @classmethod
    def _alloy_elements_known(
        cls, value: ExplorationConfig, info: ValidationInfo
    ) -> ExplorationConfig:
        system = info.data.get("system")
        for index, composition in enumerate(value.generation.alloy_compositions):
            unknown = [el for el in composition if system and el not in system.elements]
            if unknown:
                raise ValueError(
                    f"generation.alloy_compositions[{index}]: {', '.join(unknown)} not in "
                    "system.elements"
                )
        return value

    @field_validator("dft")
    @classmethod
    def _pseudopotential_per_element(cls, value: DFTConfig, info: ValidationInfo) -> DFTConfig:
        system = info.data.get("system")
        if system is not None:
            missing = [el for el in system.elements if el not in value.pseudopotentials]
            if missing:
                raise ValueError(f"pseudopotentials has no entry for {', '.join(missing)}")
        return value

    @field_validator("training")
    @classmethod
    def _reference_energy_per_element(
        cls, value: TrainingConfig, info: ValidationInfo
    ) -> TrainingConfig:
        system = info.data.get("system")
        if system is not None and value.reference_energies is not None:
            missing = [el for el in system.elements if el not in value.reference_energies]
            if missing:
                raise ValueError(f"reference_energies has no entry for {', '.join(missing)}")
        return value
