"""Runtime parameters: names, descriptions from typed multi-line docstrings, setting, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, SecretStr

from core_backends import ProbeModel
from imgen import AsyncImageGenerationModel, RuntimeParameter, env_field
from imgen.docstrings import parse_google_docstring
from imgen.errors import InvalidInputError
from imgen.runtime_parameters import env_default_of
from imgen.testing import FakeImageGeneration


class Documented(AsyncImageGenerationModel):
    """A backend whose parameters are documented in every supported way.

    Attributes:
        region: Where requests go; described only
            in the class docstring.
    """

    region: RuntimeParameter[str] = "eu"
    token: RuntimeParameter[SecretStr] = env_field(
        "DOCUMENTED_TOKEN", description="The API token.", secret=True
    )
    quality: RuntimeParameter[int] = Field(3, description="Quality level.")
    label: str = "not a runtime parameter"

    @property
    def model_name(self) -> str:
        return "documented"

    async def agenerate(
        self,
        input: str,
        num_generations: int = 1,
        size: str = "1024x1024",
        style: str | None = None,
        strength: float = 0.5,
    ) -> list[dict[str, Any]]:
        """Generate.

        Args:
            input (str): The prompt.
            num_generations (int): Images to make.
            size (str): The image size, as WIDTHxHEIGHT; larger sizes
                cost more and take longer.
            style (Optional[str], optional): A style preset,
                applied after generation.
            strength: How strongly the style applies.
        """
        return [{"images": []}]


def test_runtime_parameter_names_nest_generation_kwargs() -> None:
    names = Documented().runtime_parameters_names
    assert names["generation_kwargs"] == {"size": True, "style": True, "strength": True}
    assert names["region"] is True and names["token"] is True
    assert "label" not in names
    assert {"max_concurrency", "max_retries", "timeout", "on_error"} <= set(names)


def test_info_carries_descriptions_from_fields_class_and_typed_multiline_docstring() -> None:
    info = {entry["name"]: entry for entry in Documented().get_runtime_parameters_info()}
    assert info["quality"]["description"] == "Quality level."
    assert (
        info["region"]["description"] == "Where requests go; described only in the class docstring."
    )
    assert info["token"] == {
        "name": "token",
        "optional": True,
        "description": "The API token.",
        "env_var": "DOCUMENTED_TOKEN",
    }
    keys = {key["name"]: key for key in info["generation_kwargs"]["keys"]}
    assert keys["size"]["description"] == (
        "The image size, as WIDTHxHEIGHT; larger sizes cost more and take longer."
    )
    assert keys["style"]["description"] == "A style preset, applied after generation."
    assert keys["strength"]["description"] == "How strongly the style applies."


def test_docstring_parser_reads_raises_and_returns() -> None:
    def sample(a: int) -> int:
        """Short.

        Long description.

        Args:
            a (int): First
                and second line.

        Returns:
            int: The result.

        Raises:
            ValueError: When a is bad.
        """
        return a

    parsed = parse_google_docstring(sample)
    assert parsed["short_description"] == "Short."
    assert parsed["description"] == "Long description."
    assert parsed["args"] == {"a": "First and second line."}
    assert parsed["returns"] == "The result."
    assert parsed["raises"] == {"ValueError": "When a is bad."}


def test_set_runtime_parameters_sets_and_merges_generation_kwargs() -> None:
    model = Documented(generation_kwargs={"size": "512x512"})
    model.set_runtime_parameters(
        {"region": "us", "max_concurrency": 3, "generation_kwargs": {"style": "vivid"}}
    )
    assert model.region == "us" and model.max_concurrency == 3
    assert model.generation_kwargs == {"size": "512x512", "style": "vivid"}


def test_secret_runtime_parameter_is_wrapped() -> None:
    model = Documented()
    model.set_runtime_parameters({"token": "s3cr3t-value"})
    assert isinstance(model.token, SecretStr)
    assert "s3cr3t-value" not in repr(model)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"regoin": "us"}, "Unknown runtime parameter 'regoin'.*Did you mean 'region'"),
        ({"label": "x"}, "Unknown runtime parameter 'label'"),
        ({"generation_kwargs": {"szie": "1x1"}}, "Unknown generation kwarg 'szie'.*'size'"),
        ({"generation_kwargs": {"strength": "strong"}}, "strength='strong'"),
        ({"max_retries": -1}, "max_retries=-1"),
    ],
)
def test_bad_runtime_parameters_are_rejected(values: dict[str, Any], message: str) -> None:
    model = Documented()
    with pytest.raises(InvalidInputError, match=message):
        model.set_runtime_parameters(values)
    assert model.region == "eu" and model.generation_kwargs == {}


def test_secret_values_never_appear_in_validation_errors() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Documented(token=["sk-should-not-leak"])
    assert "token" in str(caught.value)
    assert "sk-should-not-leak" not in str(caught.value)


def test_env_field_reads_the_environment_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCUMENTED_TOKEN", "from-env")
    assert Documented().token == SecretStr("from-env")
    monkeypatch.delenv("DOCUMENTED_TOKEN")
    assert Documented().token is None


class WithRegion(FakeImageGeneration):
    region: RuntimeParameter[str] = env_field(
        "WITH_REGION_REGION", description="Where requests go.", default="eu-west"
    )


def test_env_field_falls_back_to_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WITH_REGION_REGION", raising=False)
    assert WithRegion().region == "eu-west"
    monkeypatch.setenv("WITH_REGION_REGION", "")  # empty counts as unset
    assert WithRegion().region == "eu-west"
    monkeypatch.setenv("WITH_REGION_REGION", "us-east")
    assert WithRegion().region == "us-east"
    assert WithRegion(region="ap-south").region == "ap-south"
    assert env_default_of(WithRegion.model_fields["region"]) == "eu-west"
    assert env_default_of(Documented.model_fields["token"]) is None


def test_probe_generation_kwargs_info() -> None:
    keys = ProbeModel().get_runtime_parameters_info()[0]["keys"]
    assert keys == [
        {
            "name": "tag",
            "optional": True,
            "description": "A label that is echoed back in the output.",
        },
        {"name": "count", "optional": True, "description": "A number that must be an int."},
    ]
