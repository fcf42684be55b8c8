"""Typed configuration tree: one frozen Pydantic model per section of the YAML file.

The sections live in their own modules (exploration, dft, training); this one holds the
run-time sections and the root `MLIPConfig`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from mlip_autopipec.config.dft import DFTConfig
from mlip_autopipec.config.dft_check import DFTCheckConfig
from mlip_autopipec.config.exploration import (
    ExplorationConfig,
    SystemConfig,
)
from mlip_autopipec.config.fields import (
    ArgumentList,
    Bool,
    Float,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
    resolve_path,
)
from mlip_autopipec.config.files import creatable_problem
from mlip_autopipec.config.labeled_file import labeled_file_problem
from mlip_autopipec.config.training import TrainingConfig
from mlip_autopipec.config.validation import ValidationConfig

# Physical plausibility of MD and of the local cluster (values beyond make every run useless).
MIN_TEMPERATURE, MAX_TEMPERATURE = 1.0, 20000.0  # K
MAX_PRESSURE = 5e6  # bar (500 GPa)
MAX_TIMESTEP = 5.0  # fs
MAX_STEPS = 10**8
MAX_LOCAL_WORKERS = 1024


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
    max_restarts: NonNegativeInt = Field(
        3,
        description="Restarts of a halted MD run from its last trusted frame with fresh "
        "velocities, within the run's steps; 0: a halt ends the run.",
    )
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

    @field_validator("temperatures")
    @classmethod
    def _thermostatted(cls, value: list[float]) -> list[float]:
        for kelvin in value:
            if not MIN_TEMPERATURE <= kelvin <= MAX_TEMPERATURE:
                raise ValueError(
                    f"{kelvin:g} K: thermostatted MD needs {MIN_TEMPERATURE:g}-"
                    f"{MAX_TEMPERATURE:g} K (0 K explores nothing; hotter is a plasma)"
                )
        return value

    @field_validator("pressures")
    @classmethod
    def _condensed_matter(cls, value: list[float] | None) -> list[float] | None:
        for bar in value or []:
            if abs(bar) > MAX_PRESSURE:
                raise ValueError(
                    f"{bar:g} bar ({bar / 1e4:g} GPa) is beyond any material's stability "
                    f"(at most {MAX_PRESSURE:g} bar = {MAX_PRESSURE / 1e4:g} GPa)"
                )
        return value

    @field_validator("timestep")
    @classmethod
    def _stable_integration(cls, value: float) -> float:
        if value > MAX_TIMESTEP:
            raise ValueError(
                f"{value:g} fs is far above the ~1/10 of the fastest vibration that MD "
                f"integration needs; use 0.5-2 fs (at most {MAX_TIMESTEP:g})"
            )
        return value

    @field_validator("steps")
    @classmethod
    def _finite_run(cls, value: int) -> int:
        if value > MAX_STEPS:
            raise ValueError(f"{value} steps per run is beyond any budget (at most {MAX_STEPS:g})")
        return value

    @field_validator("gamma_lower")
    @classmethod
    def _extrapolation(cls, value: float) -> float:
        if value < 1.0:
            raise ValueError(
                f"{value:g}: gamma below 1 is inside the training data (interpolation); "
                "extracting from there keeps every frame; use 1.5-5"
            )
        return value

    @model_validator(mode="after")
    def _gamma_order(self) -> InferenceConfig:
        if self.gamma_lower >= self.gamma_upper:
            raise ValueError("gamma_lower must be smaller than gamma_upper")
        if self.gamma_every > self.steps:
            raise ValueError(
                f"gamma_every {self.gamma_every} > steps {self.steps}: gamma would be checked "
                "at the start frame only, and an MD that never looked would count as converged"
            )
        return self


class WorkflowConfig(Section):
    work_dir: Path = Field(Path("work"), validate_default=True)
    database: Path | None = Field(
        None, validate_default=True, description="Defaults to work_dir/mlip.db."
    )
    max_iterations: PositiveInt = 3
    target_force_rmse: PositiveFloat = Field(0.1, description="eV/Å")
    max_extrapolative_fraction: Float = Field(0.05, ge=0, le=1)
    validation_set: Path | None = Field(
        None,
        description="Labeled structures (extxyz or any file ASE reads, with energy and forces) "
        "that every fit is scored on and never trained on; its force RMSE then decides "
        "convergence.",
    )

    _resolve = field_validator("work_dir", "database", "validation_set", mode="after")(resolve_path)

    @property
    def database_path(self) -> Path:
        return self.database if self.database is not None else self.work_dir / "mlip.db"

    # work_dir and the database must be creatable and writable; nothing is created here.
    # A command that only reads (status, export) loads with context read_only: a finished
    # campaign on a read-only mount can still be looked at.
    @field_validator("work_dir", mode="after")
    @classmethod
    def _work_dir_writable(cls, value: Path, info: ValidationInfo) -> Path:
        if (info.context or {}).get("read_only"):
            return value
        if (problem := creatable_problem(value, want_folder=True)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("database", mode="after")
    @classmethod
    def _database_writable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (info.context or {}).get("read_only"):
            return value
        work_dir = info.data.get("work_dir")
        path = value if value is not None else work_dir / "mlip.db" if work_dir else None
        if path is not None and (problem := creatable_problem(path, want_folder=False)):
            raise ValueError(problem)
        return value


# Batch-script values are written into #SBATCH/#PBS lines: one line each, no newline.
_ONE_LINE = re.compile(r"^[^\n\r\x00]+$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([kKMGTP]i?B|[kKMGTP]|B)?$")
_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")
# What the typed fields set; `options` may not set it a second time.
_TYPED_OPTIONS = {
    "cores": "cores",
    "memory": "memory",
    "walltime": "walltime",
    "queue": "queue",
    "account": "account",
    "project": "account",
    "job_extra_directives": "job_extra_directives",
    "job_script_prologue": "job_script_prologue",
    "death_timeout": "death_timeout",
    "processes": "tasks_per_job",
    "job_name": "(set by the campaign)",
}
OPTIONS_NOTE = (
    "compute.jobqueue.options go to dask-jobqueue unchecked; strings among them (e.g. "
    "job_extra_directives, job_script_prologue) become lines of the batch script"
)


def _one_line(value: str) -> str:
    if not _ONE_LINE.match(value):
        raise ValueError("must be one non-empty line (it becomes a line of the batch script)")
    return value


def _token(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError("must be a plain name (letters, digits, '_', '.', '+', '-')")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
Token = Annotated[str, AfterValidator(_token)]


class JobqueueConfig(Section):
    """Dask workers as batch jobs (dask-jobqueue): one worker per job."""

    kind: Literal["slurm", "pbs", "sge", "lsf"] = "slurm"
    jobs: PositiveInt = Field(1, description="Batch jobs kept running while tasks remain.")
    cores: PositiveInt = Field(1, description="CPUs each job asks for.")
    tasks_per_job: PositiveInt | None = Field(
        None,
        description="Structures one job labels at once (default: cores); give each pw.x "
        "cores / tasks_per_job ranks through dft.launcher.",
    )
    memory: str = Field("2GB", description="Memory per job, e.g. 4GB or 500MiB.")
    walltime: str | None = Field(None, description="Per job: MM, HH:MM:SS or D-HH:MM:SS.")
    queue: Token | None = Field(None, description="Queue / partition (#SBATCH -p).")
    account: Token | None = Field(None, description="Account / project to charge.")
    job_extra_directives: list[OneLine] = Field(
        default_factory=list, description="Extra scheduler directives, e.g. '--qos=debug'."
    )
    job_script_prologue: list[OneLine] = Field(
        default_factory=list, description="Shell lines run before the worker (module load ...)."
    )
    death_timeout: PositiveFloat = Field(
        120.0,
        description="s a worker waits for a lost orchestrator before its job ends by itself.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Other dask-jobqueue cluster arguments (interface, log_directory, ...), "
        "passed unchecked: strings in them become batch-script lines.",
    )

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _MEMORY.match(value.strip()):
            raise ValueError(f"{value!r} is not a memory size such as 4GB or 500MiB")
        return value.strip()

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str | None) -> str | None:
        if value is not None and not _WALLTIME.match(value):
            raise ValueError(f"{value!r} is not a walltime such as 30, 01:00:00 or 1-12:00:00")
        return value

    @field_validator("options")
    @classmethod
    def _options_not_typed(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in _TYPED_OPTIONS:
                raise ValueError(f"{key!r}: use jobqueue.{_TYPED_OPTIONS[key]} instead of options")
        return value

    @model_validator(mode="after")
    def _tasks_fit(self) -> JobqueueConfig:
        if self.tasks_per_job is not None and self.tasks_per_job > self.cores:
            raise ValueError("tasks_per_job cannot exceed cores")
        return self

    @property
    def worker_threads(self) -> int:
        return self.tasks_per_job or self.cores

    @property
    def notes(self) -> list[str]:
        """What `validate` should point out without refusing the config."""
        return [OPTIONS_NOTE] if self.options else []


class ComputeConfig(Section):
    n_workers: PositiveInt = Field(1, le=MAX_LOCAL_WORKERS)
    threads_per_worker: PositiveInt = Field(1, le=MAX_LOCAL_WORKERS)
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

    @property
    def notes(self) -> list[str]:
        """Warnings for `validate`: settings that are accepted but deserve a look."""
        return self.jobqueue.notes if self.jobqueue is not None else []

    @property
    def task_slots(self) -> int:
        """Tasks the cluster runs at once: jobs x tasks per job, or workers x threads."""
        if self.jobqueue is not None:
            return self.jobqueue.jobs * self.jobqueue.worker_threads
        return self.n_workers * self.threads_per_worker


class MLIPConfig(Section):
    system: SystemConfig
    exploration: ExplorationConfig = ExplorationConfig()
    dft: DFTConfig
    dft_check: DFTCheckConfig = DFTCheckConfig()
    training: TrainingConfig = TrainingConfig()
    inference: InferenceConfig = InferenceConfig()
    workflow: WorkflowConfig = WorkflowConfig()
    compute: ComputeConfig = ComputeConfig()
    validation: ValidationConfig = ValidationConfig()

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

    @field_validator("workflow")
    @classmethod
    def _validation_set_labeled(cls, value: WorkflowConfig, info: ValidationInfo) -> WorkflowConfig:
        """Read once, here, where the elements are known (None when `system` is invalid)."""
        system = info.data.get("system")
        if value.validation_set is not None:
            elements = system.elements if system is not None else None
            problem = labeled_file_problem(value.validation_set, elements)
            if problem is not None:
                raise ValueError(f"validation_set: {problem}")
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
