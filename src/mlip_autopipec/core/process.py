"""Running external programs safely: resolved executables, no shell, group-wide timeouts."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlip_autopipec.errors import UserError

PR_SET_PDEATHSIG = 1


class ExecutableNotFoundError(UserError, RuntimeError):
    """A program named in the config is not on PATH or not executable."""


def resolve_executable(name: str) -> str:
    """Absolute path of an executable given by name (searched on PATH) or by path.

    Symbolic links are kept: a virtual environment's `bin/python` must stay itself.
    """
    found = shutil.which(name)
    if found is None:
        raise ExecutableNotFoundError(
            f"{name!r} not found or not executable; install it or give its full path in the config"
        )
    return os.path.abspath(found)


def run_process(
    argv: list[str],
    cwd: Path,
    timeout: float,
    stdout_name: str,
    stderr_name: str,
    env: dict[str, str] | None = None,
) -> tuple[int | None, float]:
    """Run argv in cwd, stdout/stderr to files there; on timeout kill its whole process group.

    Never uses a shell. Returns (exit code, or None when it was killed at the timeout; wall s).
    """
    start = time.perf_counter()
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    environment.update(env or {})
    with open(cwd / stdout_name, "wb") as out, open(cwd / stderr_name, "wb") as err:
        process = subprocess.Popen(  # noqa: S603 - an argument list of resolved paths, no shell
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            env=environment,
            preexec_fn=functools.partial(_prepare_child, os.getpid()),
        )
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_group(process)
            returncode = None
        except BaseException:
            kill_process_group(process)
            raise
    return returncode, time.perf_counter() - start


_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None


def _prepare_child(parent_pid: int) -> None:
    """In the child before exec, after setsid: die with the parent, keep its niceness."""
    _die_with_parent(parent_pid)
    _keep_niceness()


def _keep_niceness() -> None:
    """Give the child's new session the niceness the child has.

    With autogroups (Linux's default on desktops and many servers) each session is scheduled
    as a group of its own at group nice 0, whatever the nice of its processes: pw.x at nice 10
    beside the final fit would still take an even share of the cores from it.
    """
    niceness = os.nice(0)
    if niceness > 0:
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
            group.write(str(niceness))


def _die_with_parent(parent_pid: int) -> None:
    """In the child before exec: get SIGKILL when the process that started us dies.

    Without this, a program started by an orchestrator killed with SIGKILL runs on as an
    orphan in its own session, burning the cores the restarted run needs. libc is loaded
    before the fork (no dlopen in the child); a parent that died during the fork is caught
    by comparing the parent pid. It covers the direct child only: with an MPI launcher,
    the launcher itself is expected to take its ranks down.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(1)


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
