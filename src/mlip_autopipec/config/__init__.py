"""Configuration: the typed tree behind the user's YAML file."""

from mlip_autopipec.config.dft import DFTConfig
from mlip_autopipec.config.dft_check import DFTCheckConfig
from mlip_autopipec.config.exploration import (
    AnchorsConfig,
    ExplorationConfig,
    FilterConfig,
    GenerationConfig,
    SelectionConfig,
    SurfaceSpec,
    SurrogateConfig,
    SystemConfig,
)
from mlip_autopipec.config.loader import ConfigError, config_from_dict, load_config
from mlip_autopipec.config.models import (
    ComputeConfig,
    InferenceConfig,
    JobqueueConfig,
    MLIPConfig,
    WorkflowConfig,
)
from mlip_autopipec.config.training import TrainingConfig
from mlip_autopipec.config.validation import ValidationConfig

__all__ = [
    "ComputeConfig",
    "ConfigError",
    "DFTCheckConfig",
    "DFTConfig",
    "AnchorsConfig",
    "ExplorationConfig",
    "FilterConfig",
    "GenerationConfig",
    "InferenceConfig",
    "JobqueueConfig",
    "MLIPConfig",
    "SelectionConfig",
    "SurfaceSpec",
    "SurrogateConfig",
    "SystemConfig",
    "TrainingConfig",
    "ValidationConfig",
    "WorkflowConfig",
    "config_from_dict",
    "load_config",
]
