"""The base of every expected failure: the CLI prints its message as one line, no traceback.

Stage packages and orchestration derive their errors from `UserError`; anything else that
escapes a command is a bug and keeps its traceback. `config` keeps its own `ConfigError`
(config imports nothing of ours), which the CLI reports the same way.
"""


class UserError(Exception):
    """Fix the config, the data or the machine: the message says what and where."""
