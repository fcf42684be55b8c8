"""Errors of the orchestration layer that the CLI reports as a message, not a traceback."""


class WorkflowError(RuntimeError):
    """A phase cannot go on: its message says what is missing or what failed."""
