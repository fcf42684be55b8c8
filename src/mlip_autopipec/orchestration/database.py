"""Open the campaign's database as the config describes it (no lock: Campaign and scripts)."""

from __future__ import annotations

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core.database import DatabaseManager


def open_database(config: MLIPConfig) -> DatabaseManager:
    return DatabaseManager(
        config.workflow.database_path,
        min_distance=config.system.min_distance,
        allowed_elements=config.system.elements,
    )
