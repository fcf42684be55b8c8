"""A side computed directly with an ASE calculator (the potential, or any model in tests):
stage 1, its own equilibrium, stage 2 there, and the vacancy relaxed with ASE (fixed cell);
likewise each alloy composition."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.validation.alloys import AlloyPlan, AlloySide, alloy_side
from mlip_autopipec.validation.equilibrium import find_equilibrium
from mlip_autopipec.validation.evaluate import SideProperties, side_properties
from mlip_autopipec.validation.properties import Calculated, Results
from mlip_autopipec.validation.structures import ValidationPlan, equilibrium_plan

logger = logging.getLogger(__name__)

RELAX_FMAX = 0.01  # eV/Å
RELAX_STEPS = 300


def calculate(structures: dict[str, Atoms], calculator: Any) -> Results:
    """Energy, forces and stress of every structure with one ASE calculator."""
    results = {}
    for name, atoms in structures.items():
        probe = atoms.copy()
        probe.calc = calculator
        results[name] = Calculated(
            energy=float(probe.get_potential_energy()),
            forces=np.array(probe.get_forces()),
            stress=np.array(probe.get_stress(voigt=True)),
        )
    return results


def relax_positions(
    atoms: Atoms, calculator: Any, fmax: float = RELAX_FMAX, steps: int = RELAX_STEPS
) -> tuple[float, bool]:
    """Energy after relaxing the ions at fixed cell (BFGS), and whether it converged."""
    from ase.optimize import BFGS

    probe = atoms.copy()
    probe.calc = calculator
    converged = bool(BFGS(probe, logfile=None).run(fmax=fmax, steps=steps))
    return float(probe.get_potential_energy()), converged


def calculator_side(
    calculator: Any, scan: ValidationPlan, side: str = "potential"
) -> SideProperties:
    """Both stages with `calculator`: its own a0 from its E-V scan, everything else there."""
    equilibrium = find_equilibrium(scan, calculate(scan.structures, calculator), side)
    plan = equilibrium_plan(scan, equilibrium.volume)
    results = calculate(plan.structures, calculator)
    relaxed = None
    notes = []
    if "vacancy_defect" in plan.structures:
        relaxed, converged = relax_positions(plan.structures["vacancy_defect"], calculator)
        if not converged:
            notes.append(f"vacancy: relaxation not converged to {RELAX_FMAX} eV/Å")
    found = side_properties(side, equilibrium, plan, results, relaxed)
    found.notes.extend(notes)
    return found


def alloy_calculator_side(calculator: Any, plan: AlloyPlan, side: str = "potential") -> AlloySide:
    """One alloy composition with `calculator`: its own a0, the random cell there."""
    equilibrium = find_equilibrium(plan.scan, calculate(plan.scan.structures, calculator), side)
    random = calculate(plan.random_at(equilibrium.volume), calculator)
    return alloy_side(side, plan, equilibrium, random)


def potential_calculator(potential: Path) -> Any:
    """The ACE potential as an ASE calculator (pyace), for the potential's side."""
    from mlip_autopipec.core.quiet_imports import pyace_calculator

    return pyace_calculator(str(potential))
