"""The user dir: where its files are, `imgen paths`, the default model, damaged settings."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import platformdirs
import pytest
from click.testing import CliRunner, Result

import imgen
from imgen.cli import main
from imgen.user_dir import user_files


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# -- where the files are --------------------------------------------------------------------


def test_imgen_user_dir_holds_every_file(_private_user_dir: Path) -> None:
    files = user_files()
    assert (files.config, files.keys, files.logs) == (
        _private_user_dir / "config.json",
        _private_user_dir / "keys.json",
        _private_user_dir / "logs.db",
    )
    assert files.source == "IMGEN_USER_DIR"


def test_a_relative_imgen_user_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGEN_USER_DIR", "here")
    assert user_files().logs == tmp_path / "here" / "logs.db"


def test_without_imgen_user_dir_the_platform_dirs_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMGEN_USER_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    files = user_files()
    config_dir = Path(platformdirs.user_config_dir("imgen", appauthor=False))
    data_dir = Path(platformdirs.user_data_dir("imgen", appauthor=False))
    assert (files.config, files.keys, files.logs) == (
        config_dir / "config.json",
        config_dir / "keys.json",
        data_dir / "logs.db",
    )
    assert files.source == "platformdirs"
    if sys.platform.startswith("linux"):
        assert files.config == tmp_path / "config" / "imgen" / "config.json"
        assert files.logs == tmp_path / "data" / "imgen" / "logs.db"


def test_imgen_paths_lists_each_file(_private_user_dir: Path) -> None:
    invoke("generate", "fake", "a fox", "-o", str(_private_user_dir / "out"))

    table = invoke("paths").stdout.splitlines()
    as_json = json.loads(invoke("paths", "--json").stdout)

    assert table == [
        f"config  {_private_user_dir / 'config.json'}  (not created yet)",
        f"keys    {_private_user_dir / 'keys.json'}  (not created yet)",
        f"logs    {_private_user_dir / 'logs.db'}",
    ]
    assert as_json == {
        "config": str(_private_user_dir / "config.json"),
        "keys": str(_private_user_dir / "keys.json"),
        "logs": str(_private_user_dir / "logs.db"),
        "source": "IMGEN_USER_DIR",
    }
    assert invoke("paths", "logs").stdout == f"{_private_user_dir / 'logs.db'}\n"
    assert "'cache' is not one of" in invoke("paths", "cache").stderr


# -- the default model ------------------------------------------------------------------------


def test_models_default_sets_prints_and_clears(_private_user_dir: Path) -> None:
    none = invoke("models", "default")
    assert none.exit_code == 1 and none.stdout == ""
    assert "No default model: set one with `imgen models default MODEL`" in none.stderr

    assert invoke("models", "default", "fake-async").exit_code == 0
    assert invoke("models", "default").stdout == "fake-async\n"
    assert json.loads((_private_user_dir / "config.json").read_text()) == {
        "default_model": "fake-async"
    }

    assert invoke("models", "default", "--clear").exit_code == 0
    assert invoke("models", "default").exit_code == 1


def test_models_default_refuses_a_model_that_does_not_resolve(_private_user_dir: Path) -> None:
    message = one_line_error(invoke("models", "default", "fak"), 2)
    assert "Unknown backend 'fak'" in message and "Did you mean 'fake'" in message
    assert not (_private_user_dir / "config.json").exists()
    assert "not both" in invoke("models", "default", "fake", "--clear").stderr


def test_a_default_model_config_is_stored_by_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imgen

    imgen.get_model("fake", width=80).save(tmp_path / "wide.json")
    monkeypatch.chdir(tmp_path)
    invoke("models", "default", "wide.json")
    monkeypatch.chdir(tmp_path.parent)

    assert invoke("models", "default").stdout == f"{tmp_path / 'wide.json'}\n"
    result = invoke("generate", "a fox", "-o", str(tmp_path / "out"), "--json")
    assert json.loads(result.stdout)["path"] == str(tmp_path / "out" / "a-fox-0.png")


def test_imgen_model_overrides_the_stored_default(monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("models", "default", "fake")
    monkeypatch.setenv("IMGEN_MODEL", "fake-async")

    shown = invoke("models", "default")

    assert shown.stdout == "fake-async\n"
    assert "IMGEN_MODEL=fake-async overrides the stored default (fake)" in shown.stderr
    record = json.loads(invoke("generate", "a fox", "--json", "--no-log").stdout)
    assert record["model"] == "fake-async:fake-v1"
    os.remove(record["path"])


@pytest.mark.parametrize(
    ("args", "prompts"),
    [
        (["a red fox"], ["a red fox"]),
        (["a red fox", "a cat"], ["a red fox", "a cat"]),
        (["fox", "cat"], ["fox", "cat"]),  # single words that name no model are prompts
        (["fake", "a red fox"], ["a red fox"]),  # a named model beats the default
    ],
)
def test_generate_without_a_model_uses_the_default(
    tmp_path: Path, args: list[str], prompts: list[str]
) -> None:
    invoke("models", "default", "fake-async")
    result = invoke("generate", *args, "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["prompt"] for record in records] == prompts
    expected_model = "fake:fake-v1" if args[0] == "fake" else "fake-async:fake-v1"
    assert {record["model"] for record in records} == {expected_model}


def test_a_misspelled_model_is_not_taken_for_a_prompt(tmp_path: Path) -> None:
    invoke("models", "default", "fake-async")
    message = one_line_error(invoke("generate", "fak", "a fox", "-o", str(tmp_path)), 2)
    assert "Unknown backend 'fak'" in message and "Did you mean 'fake'" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["generate", "a red fox"], "imgen generate MODEL PROMPT..."),
        (["batch", "prompts.txt", "-o", "out"], "imgen batch MODEL PROMPTS_FILE"),
    ],
)
def test_no_model_and_no_default_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], usage: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.txt").write_text("a fox\n")
    message = one_line_error(invoke(*args), 2)
    assert message == (
        f"Error: No model given, and no default model: name one ({usage}), or set one with "
        "`imgen models default MODEL`, or set IMGEN_MODEL."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.txt"]


@pytest.mark.parametrize("source", ["IMGEN_MODEL", "stored"])
def test_a_default_model_that_does_not_resolve_says_where_it_comes_from(
    _private_user_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    config = _private_user_dir / "config.json"
    if source == "IMGEN_MODEL":
        monkeypatch.setenv("IMGEN_MODEL", "fak")
        hint = "(The model comes from IMGEN_MODEL: fix or unset it.)"
    else:  # stored while its plugin was installed
        config.write_text('{"default_model": "fak"}')
        hint = f"(The model is the default stored in {config}: change it with `imgen models"
    (tmp_path / "prompts.txt").write_text("a fox\n")

    for args in (["generate", "a fox"], ["batch", str(tmp_path / "prompts.txt")]):
        message = one_line_error(invoke(*args, "-o", str(tmp_path / "out")), 2)
        assert "Unknown backend 'fak'. Did you mean 'fake'?" in message and hint in message
    named = one_line_error(invoke("generate", "fak", "a fox", "-o", str(tmp_path / "out")), 2)
    assert "(The model" not in named  # the command line named it: no hint


def test_batch_without_a_model_uses_the_default(tmp_path: Path) -> None:
    (tmp_path / "prompts.txt").write_text("a fox\na cat\n")
    invoke("models", "default", "fake")

    result = invoke("batch", str(tmp_path / "prompts.txt"), "-o", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    lines = (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()
    assert [json.loads(line)["model"] for line in lines] == ["fake:fake-v1"] * 2


@pytest.mark.parametrize("default", [None, "fake-async"])
@pytest.mark.parametrize("word", ["fake:other", "openai:dall-e-3", "model.yaml"])
def test_a_lone_model_is_a_missing_prompt_not_a_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default: str | None, word: str
) -> None:
    monkeypatch.chdir(tmp_path)
    imgen.get_model("fake").save("model.yaml")
    if default:
        invoke("models", "default", default)

    result = invoke("generate", word)

    assert result.exit_code == 2, result.output
    assert f"Missing argument 'PROMPT...': {word!r} names the model" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.yaml"]


@pytest.mark.parametrize(
    ("default", "exit_code", "message"),
    [
        (None, 2, "Missing argument 'PROMPT...': 'fake' names the model"),
        ("fake-async", 0, ""),  # with a default, a lone word is a prompt, a backend's name too
    ],
)
def test_a_lone_backend_name_is_a_model_only_without_a_default(
    tmp_path: Path, default: str | None, exit_code: int, message: str
) -> None:
    if default:
        invoke("models", "default", default)
    result = invoke("generate", "fake", "-o", str(tmp_path))
    assert result.exit_code == exit_code, result.output
    assert message in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ([] if message else ["fake-0.png"])


def test_missing_arguments_are_usage_errors() -> None:
    assert "Missing argument 'PROMPT...'" in invoke("generate").stderr
    assert "Missing argument 'PROMPTS_FILE'" in invoke("batch", "-o", "out").stderr


# -- a damaged or unwritable settings file ----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"default_model": "fake",', "is not valid JSON (line 1, column 26)"),
        ("[1, 2]", "must hold a JSON object, not a list"),
        ('{"default_model": 3}', "sets 'default_model' to 3, which is not a model name"),
        ('{"logs": "maybe"}', "sets 'logs' to 'maybe', which is not true or false"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        ("[" * 100_000 + "]" * 100_000, "is nested too deeply"),
        (json.dumps({"default_model": ["x" * 100_000]}), "sets 'default_model' to ['xxx"),
    ],
)
@pytest.mark.parametrize(
    "args", [["generate", "fake", "a fox"], ["models", "default"], ["logs", "off"]]
)
def test_a_damaged_settings_file_is_one_error_naming_it_and_the_fix(
    _private_user_dir: Path, tmp_path: Path, content: str | bytes, problem: str, args: list[str]
) -> None:
    config = _private_user_dir / "config.json"
    if isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    result = invoke(*args, "-o", str(tmp_path)) if args[0] == "generate" else invoke(*args)

    message = one_line_error(result, 2)
    assert f"The imgen settings file {config}" in message
    assert problem in message
    assert len(message) < 800
    assert f"move it aside (`mv {config} {config}.bak`)" in message
    assert list(tmp_path.iterdir()) == []


def test_a_settings_file_that_cannot_be_written_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("IMGEN_USER_DIR", str(blocker / "imgen"))

    message = one_line_error(invoke("models", "default", "fake"), 2)

    assert f"Cannot write the imgen settings file {blocker / 'imgen' / 'config.json'}" in message
    assert "set IMGEN_USER_DIR to a writable folder" in message
