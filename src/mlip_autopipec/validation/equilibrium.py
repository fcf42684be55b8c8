"""Stage 1 on one side: its E-V scan -> its own equilibrium volume, with the E(V) checks.

A side whose E(V) has no usable minimum (a failed fit, a fitted minimum outside the scanned
volumes, or the lowest raw point at an end of the scan) runs stage 2 at the reference
lattice constant; its failed checks say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlip_autopipec.validation.checks import Check, energy_volume_checks
from mlip_autopipec.validation.properties import EOSResult, Results, fit_eos
from mlip_autopipec.validation.structures import ValidationPlan


@dataclass(frozen=True)
class Equilibrium:
    """Where one side's stage 2 runs (Å^3/atom) and what stage 1 found on the way."""

    volume: float
    lattice_constant: float
    eos: EOSResult | None = None
    fallback: bool = False  # True: no usable minimum, stage 2 at the reference
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_equilibrium(scan: ValidationPlan, results: Results, side: str) -> Equilibrium:
    """The side's own equilibrium from its E-V points (Birch-Murnaghan fit)."""
    n_atoms = len(scan.primitive)
    v_reference = scan.primitive.get_volume() / n_atoms
    a_reference = scan.lattice_constant
    names = scan.names("eos_")
    if not names:
        note = "no E-V scan configured: stage 2 at the reference lattice constant"
        return Equilibrium(v_reference, a_reference, notes=[note])
    missing = [name for name in names if name not in results]
    if missing:
        detail = f"{len(missing)} of {len(names)} E-V labels missing"
        check = Check("E(V) scan complete", side, False, detail)
        return Equilibrium(v_reference, a_reference, fallback=True, checks=[check])
    volumes = [scan.structures[name].get_volume() / n_atoms for name in names]
    energies = [results[name].energy / n_atoms for name in names]

    def to_a(volume: float) -> float:
        return float(a_reference * (volume / v_reference) ** (1 / 3))

    checks = energy_volume_checks(volumes, energies, side, to_a)
    eos, fit_check = _fit(volumes, energies, a_reference, v_reference, side)
    checks.append(fit_check)
    usable = eos is not None and fit_check.passed and checks[0].passed
    if not usable:
        note = "no usable E(V) minimum: stage 2 at the reference lattice constant"
        return Equilibrium(v_reference, a_reference, eos, True, checks, [note])
    assert eos is not None
    return Equilibrium(eos.v0, eos.a0, eos, False, checks)


def _fit(
    volumes: list[float], energies: list[float], a_reference: float, v_reference: float, side: str
) -> tuple[EOSResult | None, Check]:
    name = "EOS fit (Birch-Murnaghan)"
    try:
        eos = fit_eos(volumes, energies, a_reference, v_reference)
    except (RuntimeError, ValueError) as error:
        return None, Check(name, side, False, f"the fit failed ({error})")
    inside = bool(min(volumes) < eos.v0 < max(volumes))
    detail = f"V0 {eos.v0:.3f} Å^3/atom, a0 {eos.a0:.4f} Å, B {eos.bulk_modulus:.1f} GPa"
    if not inside:
        detail += f"; V0 outside the scanned {min(volumes):.2f}-{max(volumes):.2f} Å^3/atom"
    return eos, Check(name, side, inside, detail)
