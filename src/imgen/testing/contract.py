"""The conformance kit: a pytest base class every backend's test suite subclasses.

    from imgen.testing import BackendContract

    class TestContract(BackendContract):
        @pytest.fixture(scope="class")  # loads once for the whole kit; "function" works too
        @classmethod
        def model(cls):
            with MyBackend(model="tiny") as model:
                yield model

It checks the output contract (strict base64 included), resolution by name through the
installed entry point and what that resolution imports in a fresh process, the dump/load round
trip, that credentials are secret fields and secrets never leak, that every parameter is
documented, that no private name of imgen's is redefined, that bad input is rejected before
any work, and, for async backends, that the engine's concurrency limit, retry count and
cancellation hold. A check that does not apply to a backend skips with the reason.

The `model` fixture may have any scope, and live in the subclass, the test module or a
conftest.py (the kit defines none to shadow it). The kit never leaves a model changed: what a
check sets for its own use is set back before it ends, so one model can serve the whole class.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

import imgen
from imgen.base import AsyncImageGenerationModel, ImageGenerationModel, checked_generate
from imgen.errors import GenerationError, InvalidInputError
from imgen.images import decode_bytes, decode_image, detect_format
from imgen.registry import Registry
from imgen.runtime_parameters import is_secret_field
from imgen.testing.imports import extra_imports_on_resolve
from imgen.testing.inspection import (
    CREDENTIAL_WORDS,
    FORMAT_ALIASES,
    admits_plain_text,
    base64_problem,
    env_var_hint,
    info_for,
    is_imgens,
    names_a_credential,
    own_packages,
    reserved_private_names,
    secret_fields,
    secret_text,
    type_text,
)
from imgen.testing.probes import (
    Agenerate,
    InFlight,
    async_only,
    fast_backoff,
    tasks_left,
    temporarily,
    wrap_agenerate,
)
from imgen.testing.server import Delay, LocalServer, Reply

__all__ = ["CREDENTIAL_WORDS", "BackendContract"]


class BackendContract:
    """Subclass it and define a `model` fixture that yields a loaded model.

    The fixture may be defined in the subclass (`@pytest.fixture(scope="class")` above
    `@classmethod` for a class scope), or in the test module or a conftest.py (e.g.
    `@pytest.fixture(scope="module")`): the kit defines no `model` of its own to shadow it.
    With a class or module scope an expensive backend loads once for the whole kit; every
    check sets back what it changes on the model.

    A `local_server` fixture, defined the same ways, returns the `LocalServer` the model talks
    to; the kit then also counts the HTTP requests it receives, which catches an SDK that
    retries on its own. Without one, that check is skipped.

    Attributes:
        prompts: The prompts the contract generates for.
        num_generations: Images asked per prompt.
        generation_kwargs: Extra kwargs for every generation the contract makes (e.g. a small
            size, few steps).
        non_secret_fields: Fields named like credentials that hold no secret (a `sort_key`,
            say); the credential check leaves them alone.
        allowed_imports: Top-level packages the plugin may import while it is discovered, for
            the rare plugin that must; the fresh-process import check leaves them out.
    """

    prompts: ClassVar[list[str]] = ["a red fox in the snow", "a lighthouse at dusk"]
    num_generations: ClassVar[int] = 2
    generation_kwargs: ClassVar[dict[str, Any]] = {}
    non_secret_fields: ClassVar[frozenset[str]] = frozenset()
    allowed_imports: ClassVar[frozenset[str]] = frozenset()

    # -- the output contract ---------------------------------------------------------------

    def test_output_contract(self, model: ImageGenerationModel) -> None:
        outputs = _generate(self, model)
        assert len(outputs) == len(self.prompts), "one output per prompt"
        for output in outputs:
            assert isinstance(output, list) and len(output) == 1, "a list holding one dict"
            result = output[0]
            assert isinstance(result, dict)
            images = result["images"]
            count = len(images) if isinstance(images, list) else type(images).__name__
            assert count == self.num_generations, (
                f'"images" holds {count} images where num_generations={self.num_generations}'
            )
            for b64 in images:
                assert isinstance(b64, str), f"an image is {type(b64).__name__}, not base64 text"
                decode_image(b64)  # raises if the bytes are not an image

    def test_images_are_strict_base64(self, model: ImageGenerationModel) -> None:
        """Plain standard base64: no data-URL prefix, no whitespace or line breaks, padded."""
        problems = [
            f"prompt {p}, image {i}: {problem}"
            for p, output in enumerate(_generate(self, model))
            for i, b64 in enumerate(output[0]["images"])
            if (problem := base64_problem(b64))
        ]
        assert not problems, "images that are not strict base64:\n" + "\n".join(problems)

    def test_declared_format_matches_the_bytes(self, model: ImageGenerationModel) -> None:
        """ "format" is one name for every image, or a list of names aligned with the images."""
        outputs = _generate(self, model)
        if not any("format" in output[0] for output in outputs):
            pytest.skip('the outputs declare no "format"')
        for output in outputs:
            images, formats = output[0]["images"], output[0].get("format")
            if not isinstance(formats, list):
                formats = [formats] * len(images)
            assert len(formats) == len(images), (
                f'"format" lists {len(formats)} formats for {len(images)} images'
            )
            for b64, declared in zip(images, formats, strict=True):
                if declared is None:
                    continue
                name = str(declared).lower()
                found = detect_format(decode_bytes(b64))
                assert FORMAT_ALIASES.get(name, name) == found, (
                    f'"format" says {name!r} but the image bytes are {found!r}'
                )

    def test_empty_batch(self, model: ImageGenerationModel) -> None:
        assert model.generate_outputs([], **self.generation_kwargs) == []

    # -- discovery ---------------------------------------------------------------------------

    def test_resolves_by_name_through_entry_point(self, model: ImageGenerationModel) -> None:
        cls = type(model)
        fresh = Registry()  # discovers installed distributions anew, nothing in-process
        assert fresh.get_backend(cls.backend_name) is cls
        info = info_for(fresh, cls)
        assert info.status == "ok", info.error

    def test_resolving_by_name_imports_nothing_beyond_imgen(
        self, model: ImageGenerationModel
    ) -> None:
        """In a fresh process, `imgen.get_backend(name)` loads only imgen's and the plugin's own
        modules: what discovery costs without the plugin is the baseline."""
        cls = type(model)
        distribution = info_for(Registry(), cls).distribution
        extra = extra_imports_on_resolve(
            cls.backend_name,
            distribution,
            own_packages=own_packages(distribution, cls),
            allowed=self.allowed_imports,
        )
        assert not extra, (
            f"Resolving {cls.backend_name!r} by name in a fresh process (as `imgen backends`, "
            "get_model and every config load do) imports modules that `import imgen` and "
            f"discovery do not:\n{extra.describe()}\nImport them inside load() or the method "
            "that needs them, so discovering the plugin stays cheap for every user."
        )

    def test_no_private_name_of_imgen_is_redefined(self, model: ImageGenerationModel) -> None:
        """A backend's own `_run_batch` or `_logger` would silently replace imgen's."""
        clashes = [
            f"{klass.__qualname__}.{name}"
            for klass in type(model).__mro__
            if not is_imgens(klass)
            for name in sorted({*vars(klass), *vars(klass).get("__annotations__", {})})
            if name in reserved_private_names()
        ]
        assert not clashes, (
            f"{', '.join(clashes)}: imgen's base classes use these names themselves, so defining "
            "them replaces imgen's own (validators, the engine, the logger). Rename them."
        )

    # -- serialization and secrets -----------------------------------------------------------

    def test_dump_round_trip(self, model: ImageGenerationModel) -> None:
        """`load_model(model.dump())` rebuilds the model from a dict, JSON and YAML.

        What is compared: the clone's `dump()` and every non-secret field. Secret fields are
        not: dumps leave them out, and a loaded model reads them from their environment
        variables, so a secret passed directly to the model is not in its clone.
        """
        data = model.dump()
        json.dumps(data)  # plain data only
        assert data["type_info"]["backend"] == type(model).backend_name
        public = [n for n, f in type(model).model_fields.items() if not is_secret_field(f)]
        for label, source in (
            ("a dict", data),
            ("JSON", json.dumps(data)),
            ("YAML", yaml.safe_dump(data)),
        ):
            clone = imgen.load_model(source)
            assert type(clone) is type(model), f"load_model({label}) built {type(clone)}"
            differ = [n for n in public if getattr(clone, n) != getattr(model, n)]
            assert not differ, (
                f"load_model(model.dump()) from {label} differs in the non-secret fields "
                f"{differ} (the kit compares every field but the secret ones)"
            )
            assert clone.dump() == data, f"the clone built from {label} dumps differently"

    def test_credential_fields_are_secret(self, model: ImageGenerationModel) -> None:
        cls = type(model)
        named = {
            name: field
            for name, field in cls.model_fields.items()
            if name not in self.non_secret_fields and names_a_credential(name)
        }
        if not named:
            pytest.skip(
                "no credential-named fields (names with key, token, secret, password, "
                "credential, auth, cookie)"
            )
        plain = {n: f.annotation for n, f in named.items() if admits_plain_text(f.annotation)}
        assert not plain, "\n".join(
            f"{cls.__name__}.{name} is named like a credential but typed {type_text(ann)}, so "
            "dump(), repr(), saved configs and logs show its value. Make it a secret field:\n"
            f'    {name}: RuntimeParameter[SecretStr] = env_field("{env_var_hint(cls, name)}", '
            'description="...", secret=True)\n'
            "(or SecretStr / SecretBytes). If it holds no secret, list it in "
            "`non_secret_fields` of the contract class."
            for name, ann in plain.items()
        )

    def test_secret_fields_left_out_of_dumps(self, model: ImageGenerationModel) -> None:
        names = secret_fields(model)
        if not names:
            pytest.skip("no secret fields")
        data, shown = model.dump(), repr(model)
        for name in names:
            assert name not in data, f"secret field {name} in dump()"
            assert f"{name}=" not in shown, f"secret field {name} in repr()"

    def test_secret_values_never_shown(self, model: ImageGenerationModel, tmp_path: Path) -> None:
        names = secret_fields(model)
        if not names:
            pytest.skip("no secret fields")
        values = {name: text for name in names if (text := secret_text(getattr(model, name)))}
        if not values:
            pytest.skip(
                f"no secret field holds a value ({', '.join(names)}): give the model fixture "
                "one so the kit can look for leaks"
            )
        places = {
            "dump()": json.dumps(model.dump()),
            "repr()": repr(model),
            "str()": str(model),
            "save() as JSON": model.save(tmp_path / "model.json").read_text(),
            "save() as YAML": model.save(tmp_path / "model.yaml").read_text(),
            "get_runtime_parameters_info()": json.dumps(
                model.get_runtime_parameters_info(), default=str
            ),
        }
        leaks = [
            f"the value of {name} in {place}"
            for name, secret in values.items()
            for place, text in places.items()
            if secret in text
        ]
        assert not leaks, "secrets shown: " + "; ".join(leaks)

    # -- parameters and validation -----------------------------------------------------------

    def test_every_parameter_documented(self, model: ImageGenerationModel) -> None:
        undocumented = []
        for entry in model.get_runtime_parameters_info():
            for item in entry.get("keys", [entry]):
                if "description" in item and not item["description"]:
                    undocumented.append(item["name"])
        assert not undocumented, (
            f"parameters without a description: {undocumented} (describe fields with "
            "Field(description=...) and generation kwargs in the Args: section of the "
            "generate/agenerate docstring)"
        )

    @pytest.mark.parametrize(
        ("inputs", "num_generations", "kwargs"),
        [
            ("a single string", 1, {}),
            ([""], 1, {}),
            (["ok", 3], 1, {}),
            (["ok"], 0, {}),
            (["ok"], -1, {}),
            (["ok"], 1.5, {}),
            (["ok"], 1, {"no_such_kwarg_xyz": 1}),
            (["a \ud800 surrogate"], 1, {}),
        ],
    )
    @pytest.mark.parametrize("entry_point", ["generate_outputs", "generate"])
    def test_bad_input_rejected_before_generation(
        self,
        model: ImageGenerationModel,
        monkeypatch: pytest.MonkeyPatch,
        inputs: Any,
        num_generations: Any,
        kwargs: dict[str, Any],
        entry_point: str,
    ) -> None:
        calls: list[Any] = []
        is_async = isinstance(model, AsyncImageGenerationModel)
        method = "agenerate" if is_async else "generate"
        # A sync backend's generate is wrapped by the base class, which validates first: spy
        # on the backend's own implementation, inside that wrapper.
        real = getattr(type(model), method)
        implementation = real if is_async else real.__wrapped__

        @functools.wraps(implementation)  # keeps the signature the core validates against
        def spy(*args: Any, **kw: Any) -> Any:
            calls.append(args)
            return implementation(*args, **kw)

        monkeypatch.setattr(type(model), method, spy if is_async else checked_generate(spy))
        call = getattr(model, entry_point)
        with pytest.raises(InvalidInputError):
            call(inputs, num_generations, **{**self.generation_kwargs, **kwargs})
        assert calls == [], f"{entry_point}() started generating despite bad input"

    # -- the async engine: concurrency, retries, cancellation --------------------------------

    def test_in_flight_calls_stay_within_max_concurrency(
        self, model: ImageGenerationModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model = async_only(model)
        limit, counter = 2, InFlight()

        async def around(real: Agenerate, args: Any, kwargs: Any) -> Any:
            with counter:
                await asyncio.sleep(0.02)  # long enough for calls to overlap if they can
                return await real(*args, **kwargs)

        wrap_agenerate(monkeypatch, model, around)
        prompts = _distinct_prompts(self, 3 * limit)
        with temporarily(model, max_concurrency=limit):
            model.generate_outputs(prompts, self.num_generations, **self.generation_kwargs)
        assert 1 <= counter.peak <= limit, (
            f"{counter.peak} agenerate calls ran at once with max_concurrency={limit}: let the "
            "engine schedule them (do not override generate/agenerate_outputs or gather "
            "agenerate calls yourself)"
        )

    def test_timed_out_attempts_are_retried_max_retries_times(
        self, model: ImageGenerationModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model = async_only(model)
        attempts = InFlight()

        async def around(real: Agenerate, args: Any, kwargs: Any) -> Any:
            with attempts:
                await asyncio.sleep(2)  # far past the timeout: the engine ends the attempt
            raise AssertionError("an attempt outlived its timeout: is the engine bypassed?")

        wrap_agenerate(monkeypatch, model, around)
        fast_backoff(monkeypatch, model)
        with (
            temporarily(model, max_retries=2, timeout=0.05, on_error="raise"),
            pytest.raises(GenerationError) as failed,
        ):
            model.generate_outputs(self.prompts[:1], 1, **self.generation_kwargs)
        assert attempts.total == 3, (
            f"{attempts.total} attempts with max_retries=2 where each attempt timed out; "
            "expected 3 (is_retryable must treat TimeoutError as transient, as the default does)"
        )
        assert isinstance(failed.value.errors[0], TimeoutError)

    def test_each_attempt_sends_one_request(
        self,
        model: ImageGenerationModel,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With max_retries=2 and every answer a 503, the server sees exactly 3 requests."""
        model = async_only(model)
        local_server = _local_server(request)
        if local_server is None:
            pytest.skip(
                "no local_server fixture: return the LocalServer the model talks to from it, "
                "and the kit counts the requests each attempt sends"
            )
        fast_backoff(monkeypatch, model)
        unavailable = Reply.json(
            {"error": {"message": "conformance kit: service unavailable"}},
            status=503,
            headers={"Retry-After": "0"},
        )
        before = len(local_server.requests)
        local_server.script(*[unavailable] * 3)
        try:
            with temporarily(model, max_retries=2, on_error="record"):
                outputs = model.generate_outputs(self.prompts[:1], 1, **self.generation_kwargs)
        finally:
            local_server.clear_script()
        sent = len(local_server.requests) - before
        assert sent <= 3, (
            f"{sent} requests where the engine allows 3 attempts: the SDK or the backend "
            "retries on its own. Turn its retries off (e.g. max_retries=0 on the client): the "
            "engine is the one retry policy, so max_retries means what it says."
        )
        assert sent == 3, (
            f"{sent} requests where 3 were expected: a 503 was not retried. is_retryable must "
            "treat HTTP 503 as transient (the default does when the exception carries a "
            "status_code)."
        )
        assert outputs[0][0].get("error"), "three 503 answers, yet the output holds no error"

    def test_cancellation_leaves_no_task_running(
        self,
        model: ImageGenerationModel,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        model = async_only(model)
        local_server = _local_server(request)
        running = InFlight()
        started = threading.Event()

        async def around(real: Agenerate, args: Any, kwargs: Any) -> Any:
            with running:
                started.set()
                result = await real(*args, **kwargs)
                await asyncio.sleep(0.05)  # holds the slot: the batch is still on when cancelled
                return result

        wrap_agenerate(monkeypatch, model, around)
        prompts = _distinct_prompts(self, 8)
        if local_server is not None:  # hold the requests, so they are in flight when cancelled
            local_server.script(*[Delay(5.0)] * (len(prompts) * self.num_generations))

        async def start_then_cancel() -> bool:
            batch = asyncio.ensure_future(
                model.agenerate_outputs(prompts, self.num_generations, **self.generation_kwargs)
            )
            while not (started.is_set() or batch.done()):
                await asyncio.sleep(0.001)
            batch.cancel()
            try:
                await batch
            except asyncio.CancelledError:
                return True
            return False

        try:
            with temporarily(model, max_concurrency=2):
                if not asyncio.run(start_then_cancel()):
                    pytest.skip("the batch finished before it could be cancelled")
                left = tasks_left(model)
        finally:
            if local_server is not None:
                local_server.clear_script()
        assert not left, f"tasks still running after the batch was cancelled: {left}"
        assert running.now == 0, f"{running.now} agenerate calls still running after cancel"


# -- helpers ---------------------------------------------------------------------------------
# Module functions, not methods: a contract subclass may name its own helpers as it likes.


def _generate(contract: BackendContract, model: ImageGenerationModel) -> list[list[dict[str, Any]]]:
    return model.generate_outputs(
        contract.prompts, num_generations=contract.num_generations, **contract.generation_kwargs
    )


def _local_server(request: pytest.FixtureRequest) -> LocalServer | None:
    """The `local_server` fixture's server, wherever it is defined; None when there is none."""
    try:
        server = request.getfixturevalue("local_server")
    except pytest.FixtureLookupError:
        return None
    if server is not None and not isinstance(server, LocalServer):
        raise TypeError(
            f"The local_server fixture gave {type(server).__name__}; it must give the "
            "imgen.testing.LocalServer the model talks to, or None."
        )
    return server


def _distinct_prompts(contract: BackendContract, count: int) -> list[str]:
    return [f"{contract.prompts[i % len(contract.prompts)]} ({i})" for i in range(count)]
