"""Bad input of every kind: one clear imgen error naming the value, short, before any work."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

import imgen
from core_backends import ProbeModel, SeedAsyncModel, SeedSyncModel
from imgen.batch import run_batch
from imgen.batch.inputs import read_prompts
from imgen.errors import (
    ConfigurationError,
    GenerationError,
    ImgenError,
    InvalidInputError,
    InvalidModelSpecError,
    MissingCredentialsError,
    RequestRefusedError,
    UnknownBackendError,
)
from imgen.images import decode_bytes, decode_image, encode_bytes, encode_image
from imgen.testing import FakeImageGeneration

LONG = "x" * 100_000
# Nine lists, each holding the previous one nine times: 473 bytes standing for 9**9 strings.
ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "type_info: {backend: fake}\nwidth: *i\n"
)


# -- load_model, from_dict and configs -----------------------------------------------------


@pytest.mark.parametrize("source", [None, 123, [1], 1.5, object()])
def test_load_model_names_a_source_of_the_wrong_type(source: Any) -> None:
    with pytest.raises(InvalidInputError, match=f"got {type(source).__name__}"):
        imgen.load_model(source)


def test_load_model_refuses_bytes_with_the_fix() -> None:
    with pytest.raises(InvalidInputError, match=r"not bytes: decode them first"):
        imgen.load_model(b"type_info: {backend: fake}\n")


def test_config_keys_must_be_field_names() -> None:
    for source in ("type_info: {backend: fake}\n1: 2\n", {"type_info": {"backend": "fake"}, 1: 2}):
        with pytest.raises(ConfigurationError, match=r"keys must be field names .*got int 1\."):
            imgen.load_model(source)
    # The same key as text is just an unknown field.
    with pytest.raises(InvalidInputError, match="unknown field '1'"):
        imgen.load_model('{"type_info": {"backend": "fake"}, "1": 2}')


def test_a_yaml_alias_bomb_is_refused_before_it_is_built() -> None:
    assert len(ALIAS_BOMB.encode()) < 600
    start = time.monotonic()
    with pytest.raises(ConfigurationError, match="expands to more than 100000 values"):
        imgen.load_model(ALIAS_BOMB)
    assert time.monotonic() - start < 5


def test_a_smaller_alias_fan_out_is_refused_as_a_field_with_a_short_message() -> None:
    # Under the node limit, the value reaches pydantic, which rejects it; the message used to
    # echo its whole repr (9**4 strings here; more than memory for the full bomb).
    small = "\n".join(ALIAS_BOMB.splitlines()[:4]) + "\ntype_info: {backend: fake}\nwidth: *d\n"
    with pytest.raises(InvalidInputError) as raised:
        imgen.load_model(small)
    assert "width=" in str(raised.value)
    assert len(str(raised.value)) < 1000


@pytest.mark.parametrize(
    ("text", "fmt"),
    [("[" * 5000 + "]" * 5000, "YAML"), ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON")],
)
def test_deeply_nested_configs_are_a_configuration_error(text: str, fmt: str) -> None:
    with pytest.raises(ConfigurationError, match=f"as {fmt}: it is nested too deeply"):
        imgen.load_model(text)


def test_a_config_file_that_is_not_utf_8_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "model.yaml"
    config.write_bytes(b"type_info: {backend: fake}\nmodel: caf\xe9\n")
    for source in (config, str(config)):
        with pytest.raises(ConfigurationError, match=r"model.yaml' is not UTF-8 text \(byte 37\)"):
            imgen.load_model(source)


def test_a_config_file_of_another_suffix_is_named_not_parsed_as_text(tmp_path: Path) -> None:
    config = tmp_path / "model.txt"
    config.write_text("type_info: {backend: fake}\n")
    with pytest.raises(
        ConfigurationError, match=r"Unknown config file type '.txt' for .*model.txt"
    ):
        imgen.load_model(str(config))


@pytest.mark.parametrize("data", [None, [1, 2], "type_info: {backend: fake}"])
def test_from_dict_takes_a_mapping(data: Any) -> None:
    with pytest.raises(InvalidInputError, match="from_dict takes a mapping"):
        FakeImageGeneration.from_dict(data)


class NeverRegistered(FakeImageGeneration):
    """A concrete backend class that no registry knows."""

    backend_name: ClassVar[str] = "never-registered"


class NamelessNeverRegistered(SeedSyncModel):
    """A concrete class with no backend name at all."""


@pytest.mark.parametrize("cls", [NeverRegistered, NamelessNeverRegistered])
def test_an_unregistered_class_round_trips_through_its_own_from_dict(
    cls: type[imgen.ImageGenerationModel], tmp_path: Path
) -> None:
    model = cls(generation_kwargs={})
    assert cls.from_dict(model.dump()) == model
    assert cls.from_json(model.save(tmp_path / "model.json")) == model
    # Loading through the base class still resolves by name only, never by module path.
    with pytest.raises((UnknownBackendError, ConfigurationError)):
        imgen.load_model(model.dump())
    # A dump of another class is not taken for this one.
    other = {**model.dump(), "type_info": {**model.dump()["type_info"], "name": "Other"}}
    with pytest.raises((UnknownBackendError, ConfigurationError)):
        cls.from_dict(other)


def test_save_names_an_unknown_format() -> None:
    with pytest.raises(InvalidInputError, match="format must be 'json' or 'yaml', got 'xml'"):
        FakeImageGeneration().save("model.json", format="xml")  # type: ignore[arg-type]


# -- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, ["x"], 3, "", "  "])
def test_get_backend_names_a_bad_name(name: Any) -> None:
    with pytest.raises(InvalidModelSpecError, match="A backend name must be a non-empty string"):
        imgen.get_backend(name)


def test_unregister_backend_names_a_bad_name() -> None:
    with pytest.raises(InvalidModelSpecError, match="got NoneType"):
        imgen.unregister_backend(None)  # type: ignore[arg-type]


def test_register_backend_names_bad_aliases() -> None:
    with pytest.raises(ImgenError, match="aliases must map alias names to model ids"):
        imgen.register_backend(NeverRegistered, aliases=["solid"])  # type: ignore[arg-type]


# -- runtime parameters ------------------------------------------------------------------


@pytest.mark.parametrize("values", ["max_concurrency=2", None, [("max_concurrency", 2)]])
def test_set_runtime_parameters_takes_a_mapping(values: Any) -> None:
    model = ProbeModel()
    with pytest.raises(InvalidInputError, match="Runtime parameters must be a mapping"):
        model.set_runtime_parameters(values)
    with pytest.raises(InvalidInputError, match="Runtime parameters must be a mapping"):
        FakeImageGeneration().set_runtime_parameters(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({1: 2}, "Runtime parameter names must be strings, got int: 1"),
        ({"generation_kwargs": {1: 2}}, "Generation kwarg names must be strings, got int: 1"),
    ],
)
def test_runtime_parameter_names_must_be_strings(values: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ProbeModel().set_runtime_parameters(values)


# -- values no request can carry ---------------------------------------------------------


@pytest.mark.parametrize("model", [ProbeModel(), SeedSyncModel()], ids=["async", "sync"])
def test_a_prompt_with_a_lone_surrogate_is_refused_naming_its_position(model: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"inputs\[1\] holds a lone surrogate .* 2"):
        model.generate_outputs(["fine", "a \ud800 fox"])
    assert getattr(model, "_calls", []) == []


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"extra": float("inf")}, "Generation kwarg extra is inf"),
        ({"extra": {"x": float("nan")}}, r"Generation kwarg extra\['x'\] is nan"),
        ({"extra": [1.0, float("-inf")]}, r"Generation kwarg extra\[1\] is -inf"),
        ({"extra": {"\udfff": 1}}, r"extra\['\\udfff'\] holds a lone surrogate"),
        ({"note": "ok \ud83d"}, "Generation kwarg note holds a lone surrogate"),
    ],
)
def test_generation_kwargs_no_request_can_carry_are_refused(
    kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        SeedAsyncModel().generate(["a fox"], **kwargs)
    with pytest.raises(InvalidInputError, match=named):
        SeedAsyncModel(generation_kwargs=kwargs)


def test_a_string_field_with_a_lone_surrogate_is_refused_and_a_secret_one_not_shown() -> None:
    with pytest.raises(InvalidInputError, match=r"Field model holds a lone surrogate"):
        FakeImageGeneration(model="fake\ud800")
    with pytest.raises(InvalidInputError) as raised:
        imgen.get_model("openai:gpt-image-1", api_key="sk-\ud800-top-secret")
    assert "api_key holds a lone surrogate" in str(raised.value)
    assert "top-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ("fake:x", {"latency": float("inf")}),
        ("fake:x", {"cpu_seconds": float("nan")}),
        ("fake-async:x", {"timeout": float("inf")}),
    ],
)
def test_fields_that_would_wait_forever_must_be_finite(spec: str, fields: dict[str, Any]) -> None:
    (name,) = fields
    with pytest.raises(InvalidInputError, match=f"{name}=.*finite"):
        imgen.get_model(spec, **fields)


@pytest.mark.parametrize("spec", ["fake", "fake-async"])
def test_batch_rows_no_request_or_json_line_can_carry_are_skipped_not_fatal(
    tmp_path: Path, spec: str
) -> None:
    # JSON escapes can spell a lone surrogate, and Python's json reads NaN: such a row used to
    # crash the whole job with UnicodeEncodeError when its line was written.
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "a fox"}\n'
        '{"prompt": "a \\ud800 cat"}\n'
        '{"prompt": "an owl", "note": "\\udfff"}\n'
        '{"prompt": "a yak", "score": NaN}\n'
        '{"prompt": "a hen"}\n',
        encoding="utf-8",
    )
    summary = run_batch(spec, prompts, tmp_path / "out")
    assert (summary.rows_done, summary.rows_failed) == (2, 0)
    errors = [json.loads(line) for line in (tmp_path / "out/errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["stage"]) for e in errors] == [(2, "input"), (3, "input"), (4, "input")]
    assert "lone surrogate" in errors[0]["error"] and "is nan" in errors[2]["error"]
    assert read_prompts([{"prompt": "ok"}, "bad \udfff"]).bad_rows[0].row == 2


# -- run_batch arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model": None}, "model must be a model or a spec .* got NoneType: None"),
        ({"model": 5}, "got int: 5"),
        ({"prompts": None}, "prompts must be a .txt, .jsonl or .csv path, .* got NoneType"),
        ({"prompts": 5}, "got int: 5"),
        ({"prompts": b"a fox\n"}, "not bytes: decode them first"),
        ({"prompts": {"prompt": "a fox"}}, "prompts is one mapping .*pass a list of them"),
        ({"output_dir": None}, "The output dir must be a path or a URL .* got NoneType"),
        ({"output_dir": 5}, "got int: 5"),
        ({"generation_kwargs": [1]}, "Generation kwargs must be a mapping .* got list"),
        ({"generation_kwargs": "seed=1"}, "got str: 'seed=1'"),
        ({"engine": None}, "engine must be 'local' or 'ray' or an Engine .* got NoneType"),
        ({"format": None}, "Unknown dataset format None"),
        ({"format": "parquet", "shard_rows": "5"}, "shard_rows must be a whole number >= 1"),
        ({"format": "parquet", "storage_options": [1]}, "storage_options must be a mapping"),
        ({"prompt_column": 5}, "prompt_column must be a column name .* got int: 5"),
    ],
)
def test_run_batch_names_an_argument_of_the_wrong_type(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\n")
    call: dict[str, Any] = {"model": "fake", "prompts": prompts, "output_dir": tmp_path / "out"}
    with pytest.raises(InvalidInputError, match=message):
        run_batch(**{**call, **arguments})
    assert not (tmp_path / "out").exists()


# -- echoed values are short ---------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: imgen.get_model("fake:x", width=LONG),
        lambda: imgen.get_model("fake:x", **{LONG: 1}),
        lambda: imgen.get_model(LONG + ":x"),
        lambda: imgen.get_model("fake:x").generate_outputs(["a"], seed=LONG),
        lambda: imgen.get_model("fake:x").generate_outputs(["a"], **{LONG: 1}),
        lambda: imgen.get_model("fake:x").generate_outputs(["a"], num_generations=LONG),
        lambda: imgen.get_model("fake:x").generate_outputs([" " * 100_000]),
        lambda: imgen.get_model("fake:x").generate_outputs(LONG),
        lambda: imgen.get_model("fake:x").set_runtime_parameters({LONG: 1}),
        lambda: imgen.get_model("fake-async:x").set_runtime_parameters({"on_error": LONG}),
        lambda: imgen.load_model({"type_info": LONG}),
        lambda: imgen.get_backend(LONG),
        lambda: decode_bytes(LONG.encode()),  # type: ignore[arg-type]
        lambda: imgen.load_model(LONG + ".yaml"),
        lambda: (_ for _ in ()).throw(GenerationError([None], {0: RuntimeError(LONG)})),
    ],
)
def test_errors_echo_at_most_a_few_hundred_characters_of_a_value(call: Any) -> None:
    with pytest.raises(ImgenError) as raised:
        call()
    assert len(str(raised.value)) < 800, str(raised.value)[:300]


# -- image helpers -------------------------------------------------------------------------


def test_image_helpers_name_what_they_cannot_handle() -> None:
    from PIL import Image

    with pytest.raises(InvalidInputError, match="cannot write the image format 'xyz'"):
        encode_image(Image.new("RGB", (4, 4)), format="xyz")
    with pytest.raises(InvalidInputError, match="Not a PIL image but str"):
        encode_image("a picture")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no image Pillow can read"):
        decode_image(encode_bytes(b"plain text, not an image"))
    assert decode_image(encode_image(Image.new("RGBA", (4, 4)), format="jpg")).format == "JPEG"


# -- errors survive pickling (multiprocessing, Ray) ----------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        MissingCredentialsError("openai", "api_key", "OPENAI_API_KEY"),
        UnknownBackendError("nope", ["fake"]),
        RequestRefusedError("refused (429)", status_code=429, retry_after=2.0),
    ],
)
def test_imgen_errors_pickle(error: ImgenError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
