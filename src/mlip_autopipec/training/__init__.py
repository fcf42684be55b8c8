"""Phase C: labeled structures -> pacemaker data, ACE fit, active set, metrics and plots.

Imports config and plain types only: never the database, never dask.
"""
