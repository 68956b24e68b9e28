"""The launcher configs in configs/accelerate parse, load with accelerate's own loader, and say what they claim.

Each yaml goes through what ``accelerate launch --config_file`` does with it (``load_config_from_file`` and the
launch command's validation), so an unknown key or a launcher that would be picked differently fails here,
not on a rented GPU node.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, patch_environment
from accelerate.utils.launch import prepare_multi_gpu_env

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "accelerate"
YAMLS = ["ddp.yaml", "fsdp-8b.yaml", "deepspeed-zero3-70b.yaml"]


def _launch_args(name: str):
    """The launcher's arguments after it has read ``name`` (as ``accelerate launch --config_file``)."""
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / name), "train.py"])
    return _validate_launch_command(args)


@pytest.mark.parametrize("name", [*YAMLS, "deepspeed-zero3.json"])
def test_each_file_says_what_it_is_for_and_what_memory_it_needs(name):
    text = (CONFIGS / name).read_text(encoding="utf-8")
    header = json.loads(text)["_comment"] if name.endswith(".json") else text.split("\ncompute_environment")[0]
    assert name.endswith(".json") or header.startswith("# ")
    assert "16 bytes/param" in header and "GB" in header, header


@pytest.mark.parametrize("name", YAMLS)
def test_accelerate_loads_each_yaml(name):
    cfg = load_config_from_file(str(CONFIGS / name))
    assert isinstance(cfg, ClusterConfig)
    assert cfg.num_processes >= 2 and cfg.num_machines == 1 and not cfg.use_cpu


def test_ddp_config_is_multi_gpu_without_forced_autocast():
    raw = yaml.safe_load((CONFIGS / "ddp.yaml").read_text(encoding="utf-8"))
    assert raw["distributed_type"] == "MULTI_GPU" and raw["mixed_precision"] == "no"
    args, defaults, _ = _launch_args("ddp.yaml")
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    assert defaults.distributed_type == DistributedType.MULTI_GPU and args.num_processes == 8


def test_fsdp_config_fully_shards_llama_decoder_layers_in_bf16():
    raw = yaml.safe_load((CONFIGS / "fsdp-8b.yaml").read_text(encoding="utf-8"))
    assert raw["distributed_type"] == "FSDP" and raw["mixed_precision"] == "bf16"
    fsdp = raw["fsdp_config"]
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True  # FSDP2's full shard
    args, _, _ = _launch_args("fsdp-8b.yaml")
    assert args.use_fsdp and args.mixed_precision == "bf16"
    # The environment the launcher hands its workers, read back by accelerate's FSDP plugin as a worker would.
    env = prepare_multi_gpu_env(args)
    assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
    with patch_environment(**{k: v for k, v in env.items() if k not in os.environ}):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]
    assert plugin.state_dict_type.name == "FULL_STATE_DICT" and plugin.activation_checkpointing


def test_deepspeed_config_is_zero3_from_its_json():
    raw = yaml.safe_load((CONFIGS / "deepspeed-zero3-70b.yaml").read_text(encoding="utf-8"))
    assert raw["distributed_type"] == "DEEPSPEED"
    ds_file = ROOT / raw["deepspeed_config"]["deepspeed_config_file"]  # relative to the repository root
    assert ds_file == CONFIGS / "deepspeed-zero3.json"
    args, defaults, mixed_precision_from_file = _launch_args("deepspeed-zero3-70b.yaml")
    assert args.use_deepspeed and args.num_processes == 8
    # With a deepspeed_config_file, accelerate's DeepSpeedPlugin refuses these in the accelerate config
    # (``_deepspeed_config_checks``); they belong in the JSON.
    refused = {"gradient_accumulation_steps", "gradient_clipping", "zero_stage", "offload_optimizer_device"}
    refused |= {"offload_param_device", "offload_param_nvme_path", "offload_optimizer_nvme_path"}
    refused |= {"zero3_save_16bit_model", "mixed_precision"}
    assert not refused & set(defaults.deepspeed_config) and not mixed_precision_from_file

    ds = json.loads(ds_file.read_text(encoding="utf-8"))
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"]["device"] == "cpu"  # a 70B full fine-tune does not fit 8x80 GB without it
    assert ds["bf16"]["enabled"] is True and "fp16" not in ds
    assert ds["gradient_clipping"] == "auto"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
