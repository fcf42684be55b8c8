"""Typed configuration tree: one frozen Pydantic model per section of the YAML file.

The sections live in their own modules (exploration, dft, training); this one holds the
run-time sections and the root `MLIPConfig`, and re-exports every section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlip_autopipec.config.dft import DFTConfig
from mlip_autopipec.config.exploration import (
    ExplorationConfig,
    FilterConfig,
    GenerationConfig,
    SelectionConfig,
    SurfaceSpec,
    SurrogateConfig,
    SystemConfig,
)
from mlip_autopipec.config.fields import (
    ArgumentList,
    Bool,
    Float,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Section,
    check_element,
    resolve_path,
)
from mlip_autopipec.config.files import creatable_problem
from mlip_autopipec.config.training import TrainingConfig

__all__ = [
    "ComputeConfig",
    "DFTConfig",
    "ExplorationConfig",
    "FilterConfig",
    "GenerationConfig",
    "InferenceConfig",
    "JobqueueConfig",
    "MLIPConfig",
    "SelectionConfig",
    "Section",
    "SurfaceSpec",
    "SurrogateConfig",
    "SystemConfig",
    "TrainingConfig",
    "WorkflowConfig",
    "check_element",
    "resolve_path",
]


class InferenceConfig(Section):
    engine: Literal["auto", "ase", "lammps"] = Field(
        "auto", description="auto: LAMMPS when one with ML-PACE is found, else ASE + pyace."
    )
    lammps_command: ArgumentList = Field(
        default_factory=lambda: ["lmp"],
        min_length=1,
        description="The LAMMPS executable (name on PATH or path), then extra arguments.",
    )
    temperatures: list[NonNegativeFloat] = Field(
        default_factory=lambda: [300.0, 900.0], min_length=1
    )
    pressures: list[Float] | None = Field(
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
    relax_boundary: Bool = Field(
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
    database: Path | None = Field(
        None, validate_default=True, description="Defaults to work_dir/mlip.db."
    )
    max_iterations: PositiveInt = 3
    target_force_rmse: PositiveFloat = Field(0.1, description="eV/Å")
    max_extrapolative_fraction: Float = Field(0.05, ge=0, le=1)

    _resolve = field_validator("work_dir", "database", mode="after")(resolve_path)

    @property
    def database_path(self) -> Path:
        return self.database if self.database is not None else self.work_dir / "mlip.db"

    # work_dir and the database must be creatable and writable; nothing is created here.
    @field_validator("work_dir", mode="after")
    @classmethod
    def _work_dir_writable(cls, value: Path) -> Path:
        if (problem := creatable_problem(value, want_folder=True)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("database", mode="after")
    @classmethod
    def _database_writable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        work_dir = info.data.get("work_dir")
        path = value if value is not None else work_dir / "mlip.db" if work_dir else None
        if path is not None and (problem := creatable_problem(path, want_folder=False)):
            raise ValueError(problem)
        return value


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
