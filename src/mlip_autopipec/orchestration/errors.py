"""Errors of the orchestration layer that the CLI reports as a message, not a traceback."""

from mlip_autopipec.errors import UserError


class WorkflowError(UserError):
    """A phase cannot go on: its message says what is missing or what failed."""
