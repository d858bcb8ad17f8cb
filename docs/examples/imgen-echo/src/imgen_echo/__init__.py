"""imgen-echo: a tiny deterministic imgen backend, built step by step in the imgen docs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgen_echo.model import EchoImageGeneration

__all__ = ["EchoImageGeneration"]


def __getattr__(name: str) -> Any:
    # Resolved on first use, so `import imgen_echo` stays as cheap as the plugin module.
    if name == "EchoImageGeneration":
        from imgen_echo.model import EchoImageGeneration

        return EchoImageGeneration
    raise AttributeError(f"module 'imgen_echo' has no attribute {name!r}")
