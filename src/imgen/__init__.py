"""imgen: one plugin framework for text-to-image models.

Resolve any installed backend by name and generate images:

    import imgen
    with imgen.get_model("openai:gpt-image-1") as model:
        outputs = model.generate(["a red fox in the snow"], num_generations=2)

Importing imgen stays light: no SDK, torch or Pillow is imported until a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgen import errors, images
from imgen.base import AsyncImageGenerationModel, ImageGenerationModel
from imgen.hookspecs import hookimpl, hookspec
from imgen.registry import (
    BackendInfo,
    Registry,
    get_backend,
    get_model,
    list_backends,
    register_backend,
    unregister_backend,
)
from imgen.runtime_parameters import RuntimeParameter, RuntimeParametersModelMixin, env_field
from imgen.serialization import load_model

if TYPE_CHECKING:
    from imgen import testing

__version__ = "0.1.0"

__all__ = [
    "AsyncImageGenerationModel",
    "BackendInfo",
    "ImageGenerationModel",
    "Registry",
    "RuntimeParameter",
    "RuntimeParametersModelMixin",
    "__version__",
    "env_field",
    "errors",
    "get_backend",
    "get_model",
    "hookimpl",
    "hookspec",
    "images",
    "list_backends",
    "load_model",
    "register_backend",
    "testing",
    "unregister_backend",
]


def __getattr__(name: str) -> Any:
    # imgen.testing pulls in the fake backend and the conformance kit; load it on first use.
    if name == "testing":
        import importlib

        return importlib.import_module("imgen.testing")
    raise AttributeError(f"module 'imgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir() and tab completion list the lazily imported `testing` too.
    return sorted({*globals(), *__all__})
