"""The model ids a backend knows: `imgen models list`, and the Models line of `imgen info`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import pytest
from click.testing import CliRunner, Result

import imgen
from imgen.cli import main
from imgen.known_models import KnownModels, known_models
from imgen.testing.fake import FakeImageGeneration


class StudioFake(FakeImageGeneration):
    """A fake with a closed set of models and aliases of both kinds."""

    backend_name: ClassVar[str] = "models-test-studio"
    model: Literal["studio-xl", "studio-mini"] = "studio-xl"


class OpenFake(FakeImageGeneration):
    """A fake that takes any model id and has no default."""

    backend_name: ClassVar[str] = "models-test-open"
    model: str | None = None  # type: ignore[assignment]


STUDIO_ALIASES = {"studio-mini": "studio-mini", "tiny": "studio-mini"}


@pytest.fixture
def test_backends() -> Iterator[None]:
    imgen.register_backend(StudioFake, aliases=STUDIO_ALIASES)
    imgen.register_backend(OpenFake)
    yield
    imgen.unregister_backend(StudioFake.backend_name)
    imgen.unregister_backend(OpenFake.backend_name)


def imgen_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_known_models_of_a_closed_set_with_aliases() -> None:
    known = known_models(StudioFake, STUDIO_ALIASES)
    assert known == KnownModels(
        backend="models-test-studio",
        default="studio-xl",
        ids=["studio-xl", "studio-mini"],
        aliases={"studio-mini": ["studio-mini", "tiny"]},
        any_id=False,
    )


def test_known_models_of_a_free_form_field_without_default() -> None:
    known = known_models(OpenFake)
    assert (known.default, known.ids, known.any_id) == (None, [], True)
    assert known.summary_lines() == ["Models: any id"]


def test_alias_targets_join_the_default_of_a_free_form_field() -> None:
    known = known_models(FakeImageGeneration, {"b": "b", "a": "a", "short": "fake-v1"})
    assert known.ids == ["fake-v1", "a", "b"]
    assert known.summary_lines() == [
        "Models: fake-v1 (default), a, b, or any other id",
        "Aliases: short = fake-v1",
        "Also by name alone: a, b",
    ]


@pytest.mark.usefixtures("test_backends")
def test_info_shows_an_alias_mapping_only_where_it_differs() -> None:
    result = imgen_cli("info", "models-test-studio")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1:4] == [
        "Models: studio-xl (default), studio-mini",
        "Aliases: tiny = studio-mini",
        "Also by name alone: studio-mini",
    ]
    assert "studio-mini = studio-mini" not in result.stdout


@pytest.mark.usefixtures("test_backends")
def test_info_json_has_the_models_and_every_alias() -> None:
    described = json.loads(imgen_cli("info", "tiny", "--json").stdout)
    assert described["aliases"] == STUDIO_ALIASES
    assert described["models"] == known_models(StudioFake, STUDIO_ALIASES).to_dict()


def test_info_of_openai_lists_its_models_without_identity_mappings() -> None:
    result = imgen_cli("info", "openai")
    assert result.exit_code == 0, result.output
    assert "Models: gpt-image-1 (default), dall-e-2, dall-e-3, or any other id" in result.stdout
    assert "dall-e-3 = dall-e-3" not in result.stdout


@pytest.mark.usefixtures("test_backends")
def test_models_list_one_backend() -> None:
    result = imgen_cli("models", "list", "models-test-studio")
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["MODEL", "ALIASES", "NOTE"],
        ["models-test-studio:studio-xl", "-", "default"],
        ["models-test-studio:studio-mini", "studio-mini,", "tiny"],
    ]


@pytest.mark.usefixtures("test_backends")
def test_models_list_marks_backends_that_take_any_id() -> None:
    result = imgen_cli("models", "list", "models-test-open")
    assert result.stdout.splitlines()[1].split() == [
        "models-test-open:<model-id>",
        "-",
        "any",
        "id,",
        "passed",
        "on",
        "as",
        "given",
    ]


@pytest.mark.usefixtures("test_backends")
def test_models_list_every_backend_as_json() -> None:
    result = imgen_cli("models", "list", "--json")
    listed: dict[str, Any] = {entry["backend"]: entry for entry in json.loads(result.stdout)}
    ok = {info.name for info in imgen.list_backends() if info.status == "ok"}
    assert set(listed) == ok
    assert listed["openai"]["ids"] == ["gpt-image-1", "dall-e-2", "dall-e-3"]
    assert listed["models-test-studio"]["any_id"] is False


def test_models_list_of_an_unknown_backend_suggests_one() -> None:
    result = imgen_cli("models", "list", "opneai")
    assert result.exit_code == 2
    assert "opneai" in result.stderr
    assert "openai" in result.stderr
