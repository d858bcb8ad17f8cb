"""One contract on both paths: sync and async models validate, load and check outputs alike."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

import imgen
from core_backends import SeedAsyncModel, SeedSyncModel, placeholder
from imgen.cli import main
from imgen.errors import GenerationError, InvalidInputError, InvalidOutputError

# -- outputs are checked on both paths -----------------------------------------------------


class JunkSync(SeedSyncModel):
    """Answers "junk" prompts with a bare dict holding one image, whatever was asked."""

    backend_name: ClassVar[str] = "junk-sync"

    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        return [
            {"images": ["junk"]}  # type: ignore[misc]  # the bare dict is the point
            if prompt == "junk"
            else [{"images": [placeholder(prompt, k) for k in range(num_generations)]}]
            for prompt in inputs
        ]


class JunkAsync(SeedAsyncModel):
    """The async twin of `JunkSync`."""

    backend_name: ClassVar[str] = "junk-async"

    async def agenerate(
        self, input: str, num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        if input == "junk":
            return {"images": ["junk"]}  # type: ignore[return-value]
        return [{"images": [placeholder(input, k) for k in range(num_generations)]}]


@pytest.mark.parametrize("cls", [JunkSync, JunkAsync])
@pytest.mark.parametrize("method", ["generate", "generate_outputs"])
def test_a_broken_output_fails_its_input_only_on_both_paths(cls: type[Any], method: str) -> None:
    model = cls()
    with pytest.raises(GenerationError) as raised:
        getattr(model, method)(["fine", "junk"], num_generations=3)
    error = raised.value.errors[1]
    assert list(raised.value.errors) == [1]
    assert isinstance(error, InvalidOutputError)
    assert not isinstance(error, ValueError)  # the backend's fault, not the caller's
    assert raised.value.results[0] is not None


def test_a_sync_backend_with_too_few_images_is_caught() -> None:
    with pytest.raises(GenerationError, match="returned 1 images where num_generations=3"):
        JunkSync().generate_outputs(["junk"], num_generations=3)


class Miscounting(SeedSyncModel):
    """Returns one output for the whole batch."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        return [[{"images": [placeholder("x", k) for k in range(num_generations)]}]]


def test_a_sync_backend_returning_the_wrong_number_of_outputs_is_an_invalid_output() -> None:
    with pytest.raises(InvalidOutputError, match="returned 1 outputs for 2 inputs"):
        Miscounting().generate(["a", "b"])


class BytesImages(SeedSyncModel):
    """Returns raw bytes where base64 strings belong."""

    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        return [[{"images": [b"\x89PNG"] * num_generations}] for _ in inputs]


def test_images_must_be_base64_strings() -> None:
    with pytest.raises(GenerationError, match=r"images\[0\] as bytes, not a non-empty base64"):
        BytesImages().generate(["a"])


class NotBase64(SeedSyncModel):
    """Right shape, but its images are not base64."""

    backend_name: ClassVar[str] = "not-base64"

    def generate(
        self, inputs: list[str], num_generations: int = 1, **kwargs: Any
    ) -> list[list[dict[str, Any]]]:
        return [[{"images": ["@@ not base64 @@"] * num_generations}] for _ in inputs]


@pytest.fixture
def junk_backends() -> Iterator[None]:
    for cls in (JunkSync, JunkAsync, NotBase64):
        imgen.register_backend(cls)
    yield
    for cls in (JunkSync, JunkAsync, NotBase64):
        imgen.unregister_backend(cls.backend_name)


@pytest.mark.usefixtures("junk_backends")
@pytest.mark.parametrize("spec", ["junk-sync", "junk-async"])
def test_the_cli_reports_a_broken_output_as_a_failure_not_a_user_error(
    spec: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["generate", spec, "junk", "-n", "3", "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "InvalidOutputError" in result.output


@pytest.mark.usefixtures("junk_backends")
def test_the_cli_blames_the_backend_for_images_that_are_not_base64(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "not-base64", "a fox", "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "Not a base64 image string" in result.output


# -- a direct generate() call validates, coerces and loads, sync or async -----------------


@pytest.mark.parametrize("spec", ["fake:x", "fake-async:x"])
def test_direct_generate_coerces_kwargs_like_generate_outputs(spec: str) -> None:
    model = imgen.get_model(spec)
    [[output]] = model.generate(["a fox"], seed="3")
    assert output["seeds"] == [3]
    assert output == model.generate_outputs(["a fox"], seed=3)[0][0]


@pytest.mark.parametrize("spec", ["fake:x", "fake-async:x"])
def test_direct_generate_merges_the_generation_kwargs_field(spec: str) -> None:
    model = imgen.get_model(spec, generation_kwargs={"seed": 7})
    assert model.generate(["a fox"], num_generations=2)[0][0]["seeds"] == [7, 8]


@pytest.mark.parametrize("cls", [SeedSyncModel, SeedAsyncModel])
@pytest.mark.parametrize(
    ("inputs", "num_generations", "message"),
    [
        ("a prompt", 1, "inputs must be a list"),
        (["ok", ""], 1, r"inputs\[1\] is an empty prompt"),
        (["ok"], 0, "num_generations must be >= 1"),
        (["ok"], "2", "num_generations must be an int"),
    ],
)
def test_direct_generate_rejects_bad_batches_on_both_classes(
    cls: type[Any], inputs: Any, num_generations: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        cls().generate(inputs, num_generations)


def test_direct_generate_loads_a_sync_model_like_an_async_one() -> None:
    for cls in (SeedSyncModel, SeedAsyncModel):
        model = cls()
        model.generate(["x"])
        assert model.is_loaded, cls.__name__


def test_the_wrapped_generate_keeps_the_backends_signature_and_docstring() -> None:
    fake = imgen.get_model("fake:x")
    assert [p.name for p in fake.generate_parameters] == ["inputs", "num_generations", "seed"]
    assert fake.generate_parsed_docstring["args"]["seed"].startswith("Image k of a prompt")
    # Generation kwargs may still be passed by position, as a plain method allows.
    assert fake.generate(["a"], 1, 5)[0][0]["seeds"] == [5]


# -- lazy modules list what they hold ------------------------------------------------------


def test_dir_lists_the_lazily_imported_names() -> None:
    import imgen.testing

    assert {"BackendContract", "LocalServer", "FakeImageGeneration"} <= set(dir(imgen.testing))
    assert "testing" in dir(imgen)


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("imgen_openai", "OpenAIImageGeneration"),
        ("imgen_openai", "OpenAIRequestError"),
        ("imgen_hf_inference", "InferenceEndpointsImageGeneration"),
        ("imgen_hf_inference", "InferenceRequestError"),
        ("imgen_diffusers", "DiffusersImageGeneration"),
        ("imgen_echo", "EchoImageGeneration"),
    ],
)
def test_plugin_packages_list_their_classes(package: str, name: str) -> None:
    assert name in dir(importlib.import_module(package))
