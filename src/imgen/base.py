"""The base classes every backend subclasses: `ImageGenerationModel` and its async flavour."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import typing
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from imgen.docstrings import Docstring, parse_google_docstring
from imgen.errors import InvalidInputError, brief_repr
from imgen.keys import fill_stored_key
from imgen.outputs import check_outputs
from imgen.retry import RetryPolicy, is_transient
from imgen.runtime_parameters import (
    RuntimeParameter,
    RuntimeParametersModelMixin,
    as_parameter_mapping,
    is_secret_field,
    validation_error,
)
from imgen.seeds import check_prompt_seeds, generate_by_prompt, kwargs_by_prompt, with_image_seed
from imgen.serialization import _Serializable
from imgen.validation import (
    check_generation_kwargs,
    check_inputs,
    check_text_fields,
    kwarg_parameters,
)

if TYPE_CHECKING:
    # asyncio alone costs ~20 ms at import; only async work needs it, so the engine and the
    # event loop are imported where they are used.
    from imgen.event_loop import BackgroundLoop

__all__ = ["AsyncImageGenerationModel", "ImageGenerationModel"]


class ImageGenerationModel(RuntimeParametersModelMixin, _Serializable, ABC):
    """Base class of every image generation backend.

    To write a backend, subclass it and implement:

    - `load`, which sets up clients or weights; call `super().load()` so `_logger` is set.
    - the `model_name` property.
    - `generate`, which returns one list per prompt holding one dict whose `"images"` list has
      `num_generations` base64 strings.

    Attributes:
        generation_kwargs: Keyword arguments passed to every `generate`/`agenerate` call.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        extra="forbid",
        validate_assignment=True,
        protected_namespaces=(),
        # Schemas are built on first instantiation, not at import: `import imgen` stays fast.
        defer_build=True,
    )

    backend_name: ClassVar[str]
    """The registry name, e.g. "openai"; the part before the `:` in a model spec."""
    model_field: ClassVar[str] = "model"
    """The field that receives the model id, the part after the `:` in a model spec."""
    _prompt_seeds_supported: ClassVar[bool] = False
    """Whether `generate` takes `seed` as a list, one seed per prompt (see `imgen.seeds`)."""

    generation_kwargs: RuntimeParameter[dict[str, Any]] = Field(
        default_factory=dict,
        description="Keyword arguments passed to every generate call (size, seed, ...).",
    )
    _logger: logging.Logger | None = PrivateAttr(None)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # pydantic's message would echo every input value, secrets included.
            error = validation_error(exc, type(self))
        else:
            fill_stored_key(self)  # after the environment: `imgen keys set BACKEND`
            return
        raise error  # outside the except block: no __context__ holding pydantic's error

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        implementation = cls.__dict__.get("generate")
        if callable(implementation) and not getattr(implementation, "_checks_batch", False):
            cls.generate = checked_generate(implementation)  # type: ignore[method-assign]

    def __repr_args__(self) -> Any:
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            if name is None or name not in fields or not is_secret_field(fields[name]):
                yield name, value

    def __eq__(self, other: object) -> bool:
        # Field values only: loggers, clients and event loops are per instance.
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __enter__(self) -> typing.Self:
        self.load()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unload()

    def load(self) -> None:
        """Prepare the model (clients, weights) and its logger. Subclasses call super().load()."""
        self._logger = logging.getLogger(f"imgen.models.{self.model_name}")

    def unload(self) -> None:
        """Release what `load` acquired. Subclasses call super().unload()."""
        self._logger = None

    def interrupt(self) -> None:
        """Ask the `generate` calls running in other threads to stop soon.

        A call that stops raises `GenerationInterrupted`. Batch jobs call it when Ctrl-C or
        SIGTERM stops them. The default does nothing, so calls run to their end; backends with
        long calls override it with an `imgen.interrupts.CallInterrupter`.
        """

    @property
    def spec(self) -> str:
        """The canonical `backend:model-id` spec of this model, however it was named."""
        return f"{type(self).backend_name}:{self.model_name}"

    @property
    def is_loaded(self) -> bool:
        """Whether `load` has run (and `unload` has not since)."""
        return self._logger is not None

    @property
    def logger(self) -> logging.Logger:
        """The model's logger (`imgen.models.<model_name>`)."""
        return self._logger or logging.getLogger(f"imgen.models.{self.model_name}")

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The name of the model used for generation."""

    def get_generation_kwargs(self) -> dict[str, Any]:
        """The kwargs used for generation; override for more complex logic."""
        return dict(self.generation_kwargs or {})

    @abstractmethod
    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        """Generate `num_generations` images for each prompt in `inputs`.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            **kwargs: Generation kwargs.

        Returns:
            One list per prompt, holding one dict whose "images" are base64 strings.
        """

    def generate_outputs(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        """Call `generate`, which validates the batch, loads the model if needed and checks
        the outputs, for sync and async models alike.

        Explicit kwargs override the `generation_kwargs` field. Nothing runs if any input,
        count or kwarg is invalid.
        """
        return self.generate(inputs, num_generations, **kwargs)

    # -- generation kwargs: discovery, description, validation ---------------------------

    def _generation_method(self) -> Any:
        return self.generate

    @property
    def generate_parameters(self) -> list[inspect.Parameter]:
        """The parameters of `generate` (of `agenerate` for async models)."""
        return list(inspect.signature(self._generation_method()).parameters.values())

    @cached_property
    def generate_parsed_docstring(self) -> Docstring:
        """The parsed docstring of `generate` (of `agenerate` for async models)."""
        return parse_google_docstring(self._generation_method())

    def _kwarg_parameters(self) -> tuple[dict[str, inspect.Parameter], bool]:
        return kwarg_parameters(self._generation_method())

    def _check_generation_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return check_generation_kwargs(type(self).__name__, self._generation_method(), kwargs)

    def prepare_generation(
        self, inputs: Any, num_generations: Any, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Validate a batch before any work; return the generation kwargs to use.

        Raises:
            InvalidInputError: Bad prompts, count, kwarg name or kwarg value.
        """
        check_inputs(inputs, num_generations)
        if not isinstance(kwargs, Mapping):
            raise InvalidInputError(
                "Generation kwargs must be a mapping of names to values, e.g. {'seed': 1}; "
                f"got {type(kwargs).__name__}: {brief_repr(kwargs)}."
            )
        return check_prompt_seeds(self, len(inputs), {**self.get_generation_kwargs(), **kwargs})

    @model_validator(mode="after")
    def _known_generation_kwargs(self) -> typing.Self:
        self._check_generation_kwargs(self.generation_kwargs or {})
        check_text_fields(self)
        return self

    # -- runtime parameters: generation kwargs nest under "generation_kwargs" -------------

    @property
    def runtime_parameters_names(self) -> dict[str, Any]:
        """Runtime parameter names mapped to whether they are optional.

        The generate/agenerate parameters nest under "generation_kwargs".
        """
        names = super().runtime_parameters_names
        named, _ = self._kwarg_parameters()
        names["generation_kwargs"] = {
            name: param.default is not inspect.Parameter.empty for name, param in named.items()
        }
        return names

    def get_runtime_parameters_info(self) -> list[dict[str, Any]]:
        """Name, optional flag and description of each runtime parameter.

        The "generation_kwargs" entry lists the generate/agenerate parameters under "keys",
        described by that method's docstring.
        """
        info = super().get_runtime_parameters_info()
        named, _ = self._kwarg_parameters()
        described = self.generate_parsed_docstring["args"]
        keys = [
            {
                "name": name,
                "optional": param.default is not inspect.Parameter.empty,
                "description": described.get(name, ""),
            }
            for name, param in named.items()
        ]
        for entry in info:
            if entry["name"] == "generation_kwargs":
                entry["keys"] = keys
        return info

    def set_runtime_parameters(self, runtime_parameters: Mapping[str, Any]) -> None:
        """Set runtime parameters by name; `generation_kwargs` merges into the current ones.

        Raises:
            InvalidInputError: An unknown name (with a did-you-mean) or an invalid value.
        """
        values = dict(as_parameter_mapping(runtime_parameters))
        extra_kwargs = values.pop("generation_kwargs", None)
        super().set_runtime_parameters(values)
        if extra_kwargs is not None:
            if not isinstance(extra_kwargs, Mapping):
                raise InvalidInputError(
                    f"generation_kwargs must be a mapping, got {type(extra_kwargs).__name__}: "
                    f"{brief_repr(extra_kwargs)}."
                )
            checked = self._check_generation_kwargs(extra_kwargs)
            self.generation_kwargs = {**self.get_generation_kwargs(), **checked}


def checked_generate(implementation: Any) -> Any:
    """Wrap a sync backend's `generate` so that every call honours the contract.

    A direct `generate()` call then validates and coerces the batch, merges the
    `generation_kwargs` field, loads the model and checks the outputs, exactly as
    `generate_outputs()` and the async models' `generate()` do.
    """
    # Generation kwargs passed by position, after (self, inputs, num_generations).
    positional = [
        param.name
        for param in inspect.signature(implementation).parameters.values()
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    ][3:]

    @functools.wraps(implementation)
    def generate(
        self: ImageGenerationModel,
        inputs: list[str],
        num_generations: int = 1,
        *args: Any,
        **kwargs: Any,
    ) -> list[list[dict[str, Any]]]:
        if len(args) > len(positional):
            raise TypeError(f"{implementation.__qualname__}() got too many positional arguments")
        for name, value in zip(positional, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{implementation.__qualname__}() got two values for {name!r}")
            kwargs[name] = value
        merged = self.prepare_generation(inputs, num_generations, kwargs)
        if not inputs:
            return []
        if not self.is_loaded:
            self.load()
        outputs = generate_by_prompt(
            functools.partial(implementation, self),
            inputs,
            num_generations,
            merged,
            self._prompt_seeds_supported,
        )
        return check_outputs(outputs, len(inputs), num_generations, type(self).__name__)

    generate._checks_batch = True  # type: ignore[attr-defined]
    return generate


# Threads calling generate() at once on a fresh model must end up sharing one loop.
_LOOP_CREATION = threading.Lock()


class AsyncImageGenerationModel(ImageGenerationModel):
    """Base class of async backends: implement `agenerate` for one prompt.

    The engine runs many `agenerate` calls at once, bounded by `max_concurrency`, retries
    transient failures with exponential backoff (honouring `Retry-After`) and keeps every
    completed result when some inputs fail.

    Attributes:
        max_concurrency: Requests in flight at once.
        max_retries: Retries of a transient failure (total attempts are at most 1 + this).
        timeout: Seconds allowed per attempt (120 by default); None waits forever.
        max_retry_after: The longest `Retry-After` wait honoured, in seconds (60 by default);
            a service asking for more ends the attempts with `RetryAfterTooLongError`.
        on_error: "raise" raises GenerationError holding the completed results; "record"
            returns {"images": [], "error": "..."} for each failed input.
    """

    max_concurrency: RuntimeParameter[int] = Field(
        8, ge=1, description="Requests in flight at once."
    )
    max_retries: RuntimeParameter[int] = Field(
        3, ge=0, description="Retries of a transient failure; attempts never exceed 1 + this."
    )
    timeout: RuntimeParameter[float] = Field(
        120.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds allowed per attempt (120 by default); None waits forever.",
    )
    max_retry_after: RuntimeParameter[float] = Field(
        60.0,
        ge=0,
        allow_inf_nan=False,
        description="The longest Retry-After wait honoured, in seconds (60 by default); a "
        "longer one ends the attempts with RetryAfterTooLongError.",
    )
    on_error: RuntimeParameter[Literal["raise", "record"]] = Field(
        "raise",
        description='"raise": raise GenerationError with the completed results; "record": '
        'return {"images": [], "error": ...} for failed inputs.',
    )

    _num_generations_param_supported: ClassVar[bool] = True
    retry_initial_delay: ClassVar[float] = 0.5
    retry_max_delay: ClassVar[float] = 30.0
    _event_loop: BackgroundLoop | None = PrivateAttr(None)

    @field_validator("max_concurrency", "max_retries", "max_retry_after", "on_error")
    @classmethod
    def _required(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must be set, not None")
        return value

    def _generation_method(self) -> Any:
        return self.agenerate

    @abstractmethod
    async def agenerate(
        self, input: str, num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Generate `num_generations` images for one prompt.

        Args:
            input: The prompt.
            num_generations: Images to generate.
            **kwargs: Generation kwargs.

        Returns:
            A list holding one dict whose "images" are base64 strings.
        """

    @property
    def supports_num_generations(self) -> bool:
        """Whether one `agenerate` call can make several images.

        When False, the engine makes `num_generations` single-image calls (each retried on its
        own) and merges them. Defaults to the class's `_num_generations_param_supported`;
        override for backends where it depends on the model.
        """
        return self._num_generations_param_supported

    def fan_out_kwargs(self, kwargs: dict[str, Any], index: int) -> dict[str, Any]:
        """The generation kwargs of the single-image call for image `index` of a prompt.

        Used only when the engine fans out. The default keeps the seed convention, image
        `index` of a call with `seed=s` is made with `s + index`, and passes the other kwargs
        unchanged. Override to vary a call in other ways.
        """
        return with_image_seed(kwargs, index)

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a failed attempt is worth retrying; override to classify SDK errors.

        The default retries timeouts, connection errors, `RetryableError` and HTTP
        408/409/429/5xx.
        """
        return is_transient(exc)

    async def agenerate_outputs(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        """Generate for a batch of prompts from the caller's own event loop.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            **kwargs: Generation kwargs, overriding the `generation_kwargs` field.

        Returns:
            One list per prompt, holding one dict with `num_generations` base64 images.

        Raises:
            InvalidInputError: A bad batch, raised before any request.
            GenerationError: Some inputs failed (with on_error="raise"); it holds the rest.
        """
        merged = self.prepare_generation(inputs, num_generations, kwargs)
        if not inputs:
            return []
        if not self.is_loaded:
            self.load()
        import asyncio

        batch = self._run_batch(inputs, num_generations, merged)
        own = self._own_loop()
        if asyncio.get_running_loop() is own.loop:
            return await batch
        # SDK clients are bound to the loop they first ran on, so all of a model's requests
        # run on its own loop; the caller's loop just awaits the result.
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(batch, own.loop))

    async def _run_batch(
        self, inputs: list[str], num_generations: int, kwargs: dict[str, Any]
    ) -> list[list[dict[str, Any]]]:
        from imgen.engine import run_batch

        fan_out = not self.supports_num_generations
        agenerate = self.agenerate
        own_kwargs = kwargs_by_prompt(kwargs, len(inputs))  # a seed per prompt, if given

        # A plain function handing back agenerate's coroutine: no extra frame per call.
        def call(position: int, n: int, index: int) -> Awaitable[Any]:
            shared = kwargs if own_kwargs is None else own_kwargs[position]
            extra = self.fan_out_kwargs(shared, index) if fan_out else shared
            return agenerate(inputs[position], num_generations=n, **extra)

        return await run_batch(
            call,
            inputs,
            num_generations,
            fan_out=fan_out,
            max_concurrency=self.max_concurrency or 1,
            timeout=self.timeout,
            policy=RetryPolicy(
                self.max_retries or 0,
                self.retry_initial_delay,
                self.retry_max_delay,
                self.max_retry_after or 0.0,
            ),
            is_retryable=self.is_retryable,
            on_error=self.on_error or "raise",
            logger=self.logger,
        )

    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        """Generate synchronously: runs `agenerate_outputs` on the model's own event loop.

        Works from plain scripts, from inside a running event loop and from worker threads.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            **kwargs: Generation kwargs, overriding the `generation_kwargs` field.

        Returns:
            One list per prompt, holding one dict with `num_generations` base64 images.
        """
        outputs: list[list[dict[str, Any]]] = self.run_on_own_loop(
            self.agenerate_outputs(inputs, num_generations, **kwargs)
        )
        return outputs

    generate._checks_batch = True  # type: ignore[attr-defined]  # agenerate_outputs checks

    def _own_loop(self) -> BackgroundLoop:
        from imgen.event_loop import BackgroundLoop

        with _LOOP_CREATION:
            if self._event_loop is None:
                self._event_loop = BackgroundLoop(name=f"imgen-{type(self).__name__}")
            return self._event_loop

    def run_on_own_loop(self, coro: typing.Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the model's own event loop and wait for it, from any thread.

        Backends use it in `unload()` to close SDK clients on the loop they ran on.
        """
        return self._own_loop().run(coro)

    def unload(self) -> None:
        """Release resources and stop the model's own event loop, if it started one."""
        super().unload()
        if self._event_loop is not None:
            self._event_loop.close()
            self._event_loop = None

    def __del__(self) -> None:
        # Never block in a finaliser: it may run on any thread, a loop's own included, or at
        # interpreter exit (where an exit hook has already stopped every loop). The backend's
        # own unload() closes its clients on the loop they ran on, then stops the loop.
        try:
            private = self.__pydantic_private__ or {}
            loop = private.get("_event_loop")
            if loop is not None:
                from imgen.event_loop import release_later

                release_later(self.unload, loop.close)  # the loop stops even if unload fails
        except Exception:  # never raise from a finaliser
            pass
