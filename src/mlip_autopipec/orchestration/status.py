"""Read-only summaries of a campaign for `status` and the report."""

from __future__ import annotations

from collections import defaultdict

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.orchestration.database import open_database


def status_rows(config: MLIPConfig) -> list[tuple[int, dict[str, int]]]:
    """(iteration, {status: count}) sorted by iteration."""
    per_iteration: dict[int, dict[str, int]] = defaultdict(dict)
    for (iteration, status), count in open_database(config).status_counts().items():
        per_iteration[iteration][status] = count
    return sorted(per_iteration.items())
