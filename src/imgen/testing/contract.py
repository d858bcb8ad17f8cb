"""The conformance kit: a pytest base class every backend's test suite subclasses.

    from imgen.testing import BackendContract

    class TestContract(BackendContract):
        @pytest.fixture
        def model(self):
            with MyBackend(model="tiny") as model:
                yield model

It checks the output contract, resolution by name through the installed entry point, the
dump/load round trip, that secrets never leak, that every parameter is documented, that bad
input is rejected before any work, and that the plugin module imports nothing heavy.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from typing import Any, ClassVar

import pytest
import yaml
from pydantic import SecretBytes, SecretStr

import imgen
from imgen.base import AsyncImageGenerationModel, ImageGenerationModel, checked_generate
from imgen.errors import InvalidInputError
from imgen.images import decode_bytes, decode_image, detect_format
from imgen.registry import ENTRY_POINT_GROUP, Registry

__all__ = ["HEAVY_MODULES", "BackendContract"]

HEAVY_MODULES = ("openai", "huggingface_hub", "torch", "diffusers", "PIL")

_FORMAT_ALIASES = {"jpg": "jpeg"}


class BackendContract:
    """Subclass it and define a `model` fixture that yields a loaded model.

    Attributes:
        prompts: The prompts the contract generates for.
        num_generations: Images asked per prompt.
        generation_kwargs: Extra kwargs for every generation the contract makes (e.g. a small
            size, few steps).
    """

    prompts: ClassVar[list[str]] = ["a red fox in the snow", "a lighthouse at dusk"]
    num_generations: ClassVar[int] = 2
    generation_kwargs: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def model(self) -> ImageGenerationModel:
        """Override: yield a loaded model of the backend under test."""
        raise NotImplementedError("Define a `model` fixture that yields a loaded model.")

    def test_output_contract(self, model: ImageGenerationModel) -> None:
        outputs = model.generate_outputs(
            self.prompts, num_generations=self.num_generations, **self.generation_kwargs
        )
        assert len(outputs) == len(self.prompts), "one output per prompt"
        for output in outputs:
            assert isinstance(output, list) and len(output) == 1, "a list holding one dict"
            result = output[0]
            assert isinstance(result, dict)
            images = result["images"]
            assert isinstance(images, list) and len(images) == self.num_generations
            for b64 in images:
                assert isinstance(b64, str)
                decode_image(b64)  # raises if the bytes are not an image
                if "format" in result:
                    declared = str(result["format"]).lower()
                    detected = detect_format(decode_bytes(b64))
                    assert _FORMAT_ALIASES.get(declared, declared) == detected

    def test_empty_batch(self, model: ImageGenerationModel) -> None:
        assert model.generate_outputs([], **self.generation_kwargs) == []

    def test_resolves_by_name_through_entry_point(self, model: ImageGenerationModel) -> None:
        cls = type(model)
        fresh = Registry()  # discovers installed distributions anew, nothing in-process
        assert fresh.get_backend(cls.backend_name) is cls
        info = _info_for(fresh, cls)
        assert info.status == "ok", info.error

    def test_dump_round_trip(self, model: ImageGenerationModel) -> None:
        data = model.dump()
        json.dumps(data)  # plain data only
        assert data["type_info"]["backend"] == type(model).backend_name
        for source in (data, json.dumps(data), yaml.safe_dump(data)):
            clone = imgen.load_model(source)
            assert type(clone) is type(model)
            assert clone.dump() == data

    def test_secrets_never_leak(self, model: ImageGenerationModel) -> None:
        data = json.dumps(model.dump())
        shown = repr(model) + str(model)
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr | SecretBytes):
                assert f'"{name}"' not in data, f"secret field {name} in dump()"
                secret = value.get_secret_value()
                secret_text = secret.decode() if isinstance(secret, bytes) else secret
                if secret_text:
                    assert secret_text not in data
                    assert secret_text not in shown

    def test_every_parameter_documented(self, model: ImageGenerationModel) -> None:
        undocumented = []
        for entry in model.get_runtime_parameters_info():
            for item in entry.get("keys", [entry]):
                if "description" in item and not item["description"]:
                    undocumented.append(item["name"])
        assert not undocumented, f"parameters without a description: {undocumented}"

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

    def test_plugin_module_imports_nothing_heavy(self, model: ImageGenerationModel) -> None:
        info = _info_for(Registry(), type(model))
        import importlib_metadata

        modules = [
            ep.value.partition(":")[0]
            for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
            if ep.dist is not None and ep.dist.name == info.distribution
        ]
        assert modules, f"no {ENTRY_POINT_GROUP} entry point for {info.distribution}"
        probe = (
            "import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        assert json.loads(result.stdout) == [], f"{modules} imported heavy modules"


def _info_for(registry: Registry, cls: type[ImageGenerationModel]) -> imgen.BackendInfo:
    for info in registry.list_backends():
        if info.name == cls.backend_name and info.class_path.endswith(cls.__qualname__):
            return info
    raise AssertionError(f"{cls.backend_name} is not among the installed backends")
