"""imgen-echo: a tiny deterministic imgen backend, built step by step in the imgen docs."""

from __future__ import annotations

from imgen_echo.model import EchoImageGeneration

__all__ = ["EchoImageGeneration"]
