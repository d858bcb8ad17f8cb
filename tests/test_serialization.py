"""dump / save / from_* / load_model: by registry name only, never leaking secrets."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

import imgen
from imgen import ImageGenerationModel, RuntimeParameter, env_field
from imgen.errors import ConfigurationError, InvalidInputError, UnknownBackendError
from imgen.testing import AsyncFakeImageGeneration, FakeImageGeneration

SECRET = "tok-9f8e7d6c5b4a"


class TokenModel(ImageGenerationModel):
    """A backend with a secret field that is not called api_key."""

    backend_name = "token-test"
    model: str = "m1"
    token: RuntimeParameter[SecretStr] = env_field(
        "TOKEN_TEST_SECRET", description="The token.", secret=True
    )
    size: int = 3

    @property
    def model_name(self) -> str:
        return self.model

    def generate(self, inputs: list[str], num_generations: int = 1) -> list[list[dict[str, Any]]]:
        raise RuntimeError(f"refusing with token {self.token}")


@pytest.fixture
def token_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenModel]:
    monkeypatch.setenv("TOKEN_TEST_SECRET", SECRET)
    imgen.register_backend(TokenModel)
    yield TokenModel(model="m2", size=5)
    imgen.unregister_backend("token-test")


def test_secret_named_token_appears_nowhere(token_model: TokenModel, tmp_path: Path) -> None:
    assert token_model.token is not None
    assert token_model.token.get_secret_value() == SECRET
    dumped = token_model.dump()
    assert "token" not in dumped
    for fmt in ("json", "yaml"):
        path = token_model.save(tmp_path / f"model.{fmt}")
        assert SECRET not in path.read_text()
    assert SECRET not in repr(token_model) and SECRET not in str(token_model)
    with pytest.raises(RuntimeError) as caught:
        token_model.generate_outputs(["x"])
    assert SECRET not in str(caught.value)
    with pytest.raises(InvalidInputError) as invalid:
        TokenModel(token=12345678, size="big")
    assert "12345678" not in str(invalid.value)


def test_secret_comes_back_from_its_environment_default(
    token_model: TokenModel, tmp_path: Path
) -> None:
    clone = imgen.load_model(token_model.save(tmp_path / "m.yaml"))
    assert isinstance(clone, TokenModel)
    assert clone.token == token_model.token
    assert clone == token_model


def test_dump_carries_type_info_by_backend_name() -> None:
    data = FakeImageGeneration(width=16).dump()
    assert data["type_info"] == {
        "backend": "fake",
        "module": "imgen.testing.fake",
        "name": "FakeImageGeneration",
    }
    assert data["width"] == 16


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_round_trip_through_files(tmp_path: Path, suffix: str) -> None:
    model = AsyncFakeImageGeneration(
        model="v2", max_concurrency=3, generation_kwargs={"seed": 4}, on_error="record"
    )
    path = model.save(tmp_path / f"model{suffix}")
    for loaded in (
        imgen.load_model(path),
        imgen.load_model(str(path)),
        ImageGenerationModel.from_file(path),
        AsyncFakeImageGeneration.from_file(path),
    ):
        assert loaded == model
        assert loaded is not model


def test_round_trip_through_text_and_the_named_readers(tmp_path: Path) -> None:
    model = FakeImageGeneration(height=24)
    assert imgen.load_model(json.dumps(model.dump())) == model
    assert imgen.load_model(yaml.safe_dump(model.dump())) == model
    assert FakeImageGeneration.from_json(model.save(tmp_path / "a.json")) == model
    assert FakeImageGeneration.from_yaml(model.save(tmp_path / "a.yaml")) == model
    assert FakeImageGeneration.from_dict(model.dump()) == model


def test_from_dict_without_type_info_uses_the_class_it_was_called_on() -> None:
    assert FakeImageGeneration.from_dict({"width": 9}).width == 9
    with pytest.raises(ConfigurationError, match="abstract"):
        ImageGenerationModel.from_dict({"width": 9})


def test_from_dict_checks_the_subclass() -> None:
    data = FakeImageGeneration().dump()
    with pytest.raises(ConfigurationError, match="not a AsyncFakeImageGeneration"):
        AsyncFakeImageGeneration.from_dict(data)


def test_unknown_keys_are_an_error_with_did_you_mean() -> None:
    data = FakeImageGeneration().dump()
    data["widht"] = 10
    with pytest.raises(InvalidInputError, match=r"unknown field 'widht'.*Did you mean 'width'"):
        imgen.load_model(data)


def test_a_config_never_imports_the_module_it_names(tmp_path: Path) -> None:
    (tmp_path / "evil_module_xyz.py").write_text("raise SystemExit('imported!')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        config = {
            "type_info": {"backend": "evil", "module": "evil_module_xyz", "name": "Evil"},
        }
        with pytest.raises(UnknownBackendError, match="Unknown backend 'evil'"):
            imgen.load_model(config)
        no_backend = {"type_info": {"module": "evil_module_xyz", "name": "Evil"}}
        with pytest.raises(ConfigurationError, match="no backend name"):
            imgen.load_model(no_backend)
        assert "evil_module_xyz" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigurationError, match="Cannot parse"):
        imgen.load_model(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "Cannot read config file"),
        ("model.toml", "x = 1", "Unknown config file type '.toml'"),
        ("broken.json", "{not json", "Cannot parse config file"),
        ("list.yaml", "- a\n- b\n", "holds a list, not a mapping"),
    ],
)
def test_unreadable_configs(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        imgen.ImageGenerationModel.from_file(path)


def test_save_needs_a_known_format(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="Cannot tell the format"):
        FakeImageGeneration().save(tmp_path / "model.txt")
    assert FakeImageGeneration().save(tmp_path / "model.txt", format="yaml").exists()


def test_model_level_validation_errors_show_no_field_values() -> None:
    from pydantic import model_validator

    class Picky(TokenModel):
        @model_validator(mode="after")
        def _needs_big(self) -> Picky:
            if self.size < 10:
                raise ValueError("size must be at least 10")
            return self

    with pytest.raises(InvalidInputError, match="size must be at least 10") as caught:
        Picky(token=SECRET, size=1)
    assert SECRET not in str(caught.value)
