"""MD that goes on after a halt: a halted segment restarts from its last trusted frame.

A segment that reaches `gamma_upper` keeps its frames (as every run does) and the run goes on
from the last checked frame whose max gamma was below `gamma_upper`, with fresh velocities
from a new, deterministic seed, up to `max_restarts` times. The segments share the run's
budgets: `steps`, `max_frames` and `timeout` hold for the run as a whole. Engine-independent:
it only calls an engine's `MDRunner` once per segment.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from ase import Atoms

from mlip_autopipec.inference.md_types import (
    MDResult,
    MDRunner,
    MDRunSpec,
    MDSegment,
    PotentialFiles,
)

logger = logging.getLogger(__name__)


def segment_seed(seed: int, segment: int) -> int:
    """The run's seed for its first segment, then a new one per restart, the same every time."""
    if segment == 0:
        return seed
    return int(np.random.SeedSequence([seed, segment]).generate_state(1)[0])


def segment_dir(run_dir: Path, segment: int) -> Path:
    return run_dir if segment == 0 else run_dir / f"restart_{segment}"


def run_with_restarts(
    runner: MDRunner, atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path
) -> MDResult:
    """One run of `spec.steps` steps in at most `1 + spec.max_restarts` segments."""
    result = MDResult(run_id=spec.run_id, temperature=spec.temperature, start=spec.start)
    deadline = time.monotonic() + spec.timeout
    start = atoms
    for index in range(spec.max_restarts + 1):
        time_left = spec.timeout if index == 0 else deadline - time.monotonic()
        segment_spec = _segment_spec(spec, result, index, time_left)
        part = runner(start, potential, segment_spec, segment_dir(run_dir, index))
        _append(result, part, MDSegment(segment_spec.seed, result.steps_done, start), spec)
        if not _goes_on(part, result, spec, deadline):
            break
        start = part.last_trusted if part.last_trusted is not None else start
        logger.info(
            "MD %s restarts from step %s after a halt at step %d",
            spec.run_id,
            start.info.get("step", "start"),
            result.steps_done,
        )
    return result


def _segment_spec(spec: MDRunSpec, result: MDResult, index: int, time_left: float) -> MDRunSpec:
    # A restart's first check repeats the trusted frame it starts from; that frame is dropped
    # (see _append), so it may not take a place of the run's frame budget.
    frames_left = spec.max_frames - len(result.frames) + (1 if index > 0 else 0)
    return replace(
        spec,
        steps=spec.steps - result.steps_done,
        seed=segment_seed(spec.seed, index),
        max_frames=frames_left,
        timeout=max(time_left, 1.0),
    )


def _append(result: MDResult, part: MDResult, segment: MDSegment, spec: MDRunSpec) -> None:
    """Add one segment's outcome to the run, steps counted from the run's first step."""
    restarted = bool(result.segments)
    segment.steps_done, segment.halted, segment.error = part.steps_done, part.halted, part.error
    segment.max_gamma_per_check = list(part.max_gamma_per_check)
    if part.last_trusted is not None:
        segment.last_trusted = _shifted(part.last_trusted, segment.first_step)
    checks, frames = part.max_gamma_per_check, part.frames
    if restarted:  # its step 0 is the previous segment's last trusted frame, counted there
        checks = checks[1:]
        frames = [frame for frame in frames if frame.info.get("step") != 0]
    result.max_gamma_per_check += checks
    room = spec.max_frames - len(result.frames)
    result.frames += [
        _as_started(_shifted(frame, segment.first_step), spec) for frame in frames[:room]
    ]
    result.steps_done += part.steps_done
    result.halts += int(part.halted)
    result.halted = result.halts > 0
    result.error = part.error
    if segment.last_trusted is not None:
        result.last_trusted = segment.last_trusted
    result.segments.append(segment)


def _shifted(frame: Atoms, first_step: int) -> Atoms:
    """`frame` with its step counted from the run's start (a frame of a segment counts from 0)."""
    frame.info["step"] = int(frame.info.get("step", 0)) + first_step
    return frame


def _as_started(frame: Atoms, spec: MDRunSpec) -> Atoms:
    """A copy of `frame` with the periodic axes of the run's start (a slab's frame is a slab)."""
    stored = frame.copy()
    stored.pbc = spec.periodic
    return stored


def _goes_on(part: MDResult, result: MDResult, spec: MDRunSpec, deadline: float) -> bool:
    """Restart only after a clean halt that made progress, while steps, frames and time remain.

    A halt at a segment's first check (step 0) would only repeat itself: its start is
    already at or above `gamma_upper`.
    """
    return (
        part.halted
        and part.error is None
        and part.steps_done > 0
        and result.steps_done < spec.steps
        and len(result.frames) < spec.max_frames
        and time.monotonic() < deadline
    )
