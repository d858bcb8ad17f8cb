"""What an engine is: it turns rows into outcomes, as they complete, in any order."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

from imgen.base import ImageGenerationModel
from imgen.batch.inputs import PromptRow
from imgen.batch.outcomes import Outcome
from imgen.errors import InvalidInputError, brief_repr

__all__ = ["ENGINE_NAMES", "Engine", "Settle", "resolve_engine"]

ENGINE_NAMES = ("local", "ray")
T = TypeVar("T")
Settle = Callable[[PromptRow, Outcome], T]
"""`settle(row, outcome)`: what the job does with a finished row (it writes the images)."""


class Engine(Protocol):
    """Generates `num_generations` images for each row; the job writes what it yields."""

    def check(self) -> None:
        """Fail before any work when the engine cannot run here (a missing extra, say)."""

    def run(
        self,
        model: ImageGenerationModel,
        rows: list[PromptRow],
        num_generations: int,
        generation_kwargs: Mapping[str, Any],
        settle: Settle[T],
    ) -> AsyncGenerator[T, None]:
        """Settle each row as soon as it completes, and yield what `settle` returns.

        `settle` may run off the event loop, in a thread of the engine's (the local engine
        writes one row there while it generates the next), one row at a time. The engine
        loads the model where it generates and unloads what it loaded. When the consumer
        stops early, work in flight is abandoned, but rows already made are still settled
        before the stream ends: the job commits what `settle` wrote even if it was never
        yielded.
        """
        ...


def resolve_engine(engine: Literal["local", "ray"] | Engine) -> Engine:
    """The engine a name stands for (its defaults), or the engine given; checked.

    Raises:
        InvalidInputError: An unknown engine name, or an object that is no engine.
        ConfigurationError: The engine cannot run here.
    """
    if isinstance(engine, str):
        if engine == "local":
            from imgen.batch.local import LocalEngine

            engine = LocalEngine()
        elif engine == "ray":
            from imgen.batch.ray_engine import RayEngine

            engine = RayEngine()
        else:
            raise InvalidInputError(
                f"Unknown engine {brief_repr(engine)}: use {' or '.join(map(repr, ENGINE_NAMES))}."
            )
    elif not (callable(getattr(engine, "check", None)) and callable(getattr(engine, "run", None))):
        raise InvalidInputError(
            f"engine must be {' or '.join(map(repr, ENGINE_NAMES))} or an Engine such as "
            f"RayEngine(num_actors=4), got {type(engine).__name__}: {brief_repr(engine)}."
        )
    engine.check()
    return engine
