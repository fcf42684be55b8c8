"""Physical validation of a potential against DFT: the structures to compute (from the config),
the properties from energies/stresses/forces, and the plots. Never opens the database."""
