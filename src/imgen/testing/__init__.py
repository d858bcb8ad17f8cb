"""Testing helpers for backend authors: the conformance kit, the `fake` backend, a local server,
and `exception_text` to prove that no error reveals a secret.

Each is imported on first access, so the entry-point module `imgen.testing.plugin` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgen.testing.contract import BackendContract
    from imgen.testing.exchanges import Delay, RecordedRequest, Reply, Reset
    from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration
    from imgen.testing.leaks import exception_text
    from imgen.testing.server import LocalServer

__all__ = [
    "AsyncFakeImageGeneration",
    "BackendContract",
    "Delay",
    "FakeImageGeneration",
    "LocalServer",
    "RecordedRequest",
    "Reply",
    "Reset",
    "exception_text",
]

_HOMES = {
    "BackendContract": "imgen.testing.contract",
    "FakeImageGeneration": "imgen.testing.fake",
    "AsyncFakeImageGeneration": "imgen.testing.fake",
    "LocalServer": "imgen.testing.server",
    "RecordedRequest": "imgen.testing.exchanges",
    "Reply": "imgen.testing.exchanges",
    "Delay": "imgen.testing.exchanges",
    "Reset": "imgen.testing.exchanges",
    "exception_text": "imgen.testing.leaks",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'imgen.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir() and tab completion list the lazily imported names too.
    return sorted({*globals(), *__all__})
