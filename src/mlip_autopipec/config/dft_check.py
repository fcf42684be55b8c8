"""The dft_check section: how the DFT settings are checked against denser ones before labeling.

Default tolerances follow from the accuracy asked of a potential. Label noise adds to a fit's
error in quadrature: 30 meV/Å RMS of force noise raises a 100 meV/Å force RMSE (the default
`workflow.target_force_rmse`) by under 5 %. A few meV/atom is what an ACE fit reaches on
energies; relative energies (what training sees: one shift per element drops out) must be
below that: 5 meV/atom is 0.035 eV on the formation energy of a vacancy in an 8-atom cell.
Offsets of that size between cells of different shape remain (each cell keeps its own k-mesh),
which is why the anchors are built in the cell the bulk data is labeled in. pacemaker fits
no stresses, so the stress tolerance only guards the DFT side of validation and NPT runs:
1 GPa is about 1 % of a typical bulk modulus.
"""

from __future__ import annotations

from pydantic import Field

from mlip_autopipec.config.fields import Bool, Float, PositiveFloat, Section


class DFTCheckConfig(Section):
    """pw.x on a few of the campaign's own structures at the dft settings and denser ones."""

    enabled: Bool = Field(
        True, description="Check the dft settings before the first label and when they change."
    )
    kspacing_factor: Float = Field(
        0.6, gt=0.2, lt=1, description="The k-point reference runs at this times dft.kspacing."
    )
    cutoff_factor: Float = Field(
        1.3, gt=1, le=3, description="The cutoff reference runs at this times ecutwfc and ecutrho."
    )
    force_rms: PositiveFloat = Field(30.0, description="meV/Å, RMS over all force components.")
    force_max: PositiveFloat = Field(
        150.0, description="meV/Å, largest change of one atom's force vector."
    )
    energy: PositiveFloat = Field(
        5.0, description="meV/atom, largest change of an energy relative to the others."
    )
    stress: PositiveFloat = Field(1.0, description="GPa, largest change of a stress component.")
