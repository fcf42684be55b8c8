"""Programs run by `run_process`: their own session, and the niceness of whoever started them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

AUTOGROUPS = Path("/proc/self/autogroup").is_file()


def autogroup_of_a_program_started_at(niceness: int, folder: Path) -> str:
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from mlip_autopipec.core.process import run_process
        os.nice({niceness})
        run_process(["cat", "/proc/self/autogroup"], Path("{folder}"), 60, "out", "err")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    return (folder / "out").read_text()


@pytest.mark.skipif(not AUTOGROUPS, reason="this kernel schedules no autogroups")
def test_a_program_in_its_own_session_keeps_the_niceness_it_was_started_at(
    tmp_path: Path,
) -> None:
    """setsid gives it an autogroup of its own, which would otherwise be at nice 0 and take an
    even share of the cores whatever the niceness of its processes."""
    assert autogroup_of_a_program_started_at(0, tmp_path).strip().endswith("nice 0")
    assert autogroup_of_a_program_started_at(10, tmp_path).strip().endswith("nice 10")
