"""The commented example configuration that `mlip-autopipe init` writes."""

EXAMPLE_CONFIG = """\
# MLIP-AutoPipe campaign: diamond silicon, PBE.
# Relative paths are resolved against this file's folder. Check with:
#   mlip-autopipe validate config.yaml
system:
  elements: [Si]
  prototype: diamond          # ase.build.bulk prototype; or list seed_structures: [file.cif]
  lattice_constant: 5.43      # Å; ASE's reference value when left out
  min_distance: 1.0           # Å; no stored structure has two atoms closer than this

exploration:
  anchors:                    # labeled in iteration 0 whatever selection picks
    enabled: true             # E-V scan (0, +-2, +-5, +-8 % volume), +-1.5/3 % uniaxial and
                              # shear strains, small displacements, in the 8-atom cell below
    energy_weight: 20.0       # their energies must be learned to < 1 meV/atom (elastic constants)
  generation:
    seed: 42                  # every generator is deterministic for a seed
    supercells: [[1, 1, 1]]   # the 8-atom cubic cell
    volumetric_strains: [-0.04, 0.0, 0.04]   # volume strains (+0.04: 4 % more volume)
    shear_strains: [0.03]
    rattle_stdev: [0.05, 0.1] # Å
    rattles_per_structure: 1
    mc_rattle: true           # Monte-Carlo rattle that keeps a minimum distance
    vacancies: 1
    surfaces:
      - {miller: [1, 1, 1], layers: 4, vacuum: 6.0}   # an 8-atom slab, 6 Å vacuum each side
    filters:
      min_distance_scale: 0.6 # x sum of covalent radii
      max_atoms: 64
  surrogate:
    name: chgnet              # runs offline with its bundled weights; or mace + model_path
    torch_threads: 1
    max_force: 20.0           # eV/Å
    max_energy_above_min: 1.0 # eV/atom
  selection:
    method: maxvol            # iterations >= 1: MaxVol in the ACE basis (or fps, random)
    initial_method: fps       # iteration 0, before any potential exists (or random, kmedoids)
    # n_select: 8             # picks per iteration; default: a multiple of the Dask task slots >= 8

dft:
  command: [pw.x]
  launcher: []                # e.g. [mpirun, -np, "4"]; here one pw.x process per Dask worker
  pseudo_dir: /usr/share/espresso/pseudo
  pseudopotentials: {Si: Si.pbe-rrkj.UPF}
  ecutwfc: 24.0               # Ry
  ecutrho: 96.0               # Ry
  kspacing: 0.3               # 1/Å including 2π; passes the DFT check (0.6 does not)
  occupations: smearing
  smearing: mv                # Marzari-Vanderbilt
  degauss: 0.02               # Ry
  conv_thr: 1.0e-8
  mixing_beta: 0.7
  electron_maxstep: 100
  timeout: 600                # s, hard limit per pw.x run
  max_retries: 3              # corrections tried before a structure is marked failed

training:
  cutoff: 5.0                 # Å
  number_of_functions_per_element: 300   # capped at 3/4 of the training atoms until they suffice
  loop_functions_per_element: 60  # the loop's fits, for MD and selection: gamma stays telling
  kappa: 0.05                 # force weight in the loop's fits (short up-fits for exploration)
  maxiter: 150
  final_maxiter: 1000         # after the loop: a fit from scratch on every label, handed over
  final_kappa: 0.01           # if it validates best; low, so strain energies are learned
  test_fraction: 0.15

inference:
  engine: auto                # LAMMPS with ML-PACE if found (lammps_command, PATH), else ASE
  temperatures: [300, 1000, 1800]   # K; 1800 K is above silicon's melting point
  steps: 300
  timestep: 1.0               # fs
  gamma_lower: 1.5            # keep frames at or above this extrapolation grade
  gamma_upper: 8.0            # stop the MD at or above this one
  gamma_every: 10

workflow:
  work_dir: work
  max_iterations: 4
  target_force_rmse: 0.1      # eV/Å
  max_extrapolative_fraction: 0.05

compute:
  n_workers: 2                # one pw.x per worker
  threads_per_worker: 1
"""
