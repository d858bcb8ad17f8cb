"""The `imgen` command: backends, info, generate, errors, startup cost."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner, Result
from PIL import Image
from pydantic import Field, SecretStr

import imgen
from imgen import RuntimeParameter, env_field
from imgen.cli import _status, main
from imgen.cli_options import ImgenGroup, parse_value
from imgen.errors import MissingCredentialsError
from imgen.registry import Registry
from imgen.testing.fake import FakeImageGeneration

KEY_VAR = "IMGEN_CLI_TEST_KEY"
SECRET = "sk-cli-test-0123456789"
HEAVY_MODULES = {"PIL", "openai", "huggingface_hub", "torch", "diffusers", "transformers", "ray"}


class KeyedFake(FakeImageGeneration):
    """A fake that needs an API key, and whose upstream echoes it back in its errors."""

    backend_name: ClassVar[str] = "cli-test-keyed"
    api_key: RuntimeParameter[SecretStr] = env_field(KEY_VAR, description="The key.", secret=True)

    def load(self) -> None:
        """Fail without a key, as a real backend does before any request."""
        if self.api_key is None:
            raise MissingCredentialsError(self.backend_name, "api_key", KEY_VAR)
        super().load()

    def generate(
        self, inputs: list[str], num_generations: int = 1, seed: int = 0
    ) -> list[list[dict[str, Any]]]:
        """Fail the way a careless SDK does, with the key in the message.

        Args:
            inputs: The prompts.
            num_generations: Images per prompt.
            seed: Unused.
        """
        assert self.api_key is not None
        raise RuntimeError(
            f"upstream rejected the header 'Bearer {self.api_key.get_secret_value()}'"
        )


class EndpointFake(FakeImageGeneration):
    """A fake that cannot be built without an endpoint."""

    backend_name: ClassVar[str] = "cli-test-endpoint"
    endpoint: str = Field(description="Where the requests go.")


@pytest.fixture
def in_test_backends() -> Iterator[None]:
    for cls in (KeyedFake, EndpointFake):
        imgen.register_backend(cls)
    yield
    for cls in (KeyedFake, EndpointFake):
        imgen.unregister_backend(cls.backend_name)


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry whose plugins are: one broken, and two claiming the same backend name."""
    site = tmp_path / "site"
    site.mkdir()
    plugins = {"imgen-broken": "cli_test_missing_module", "imgen-dup-a": "cli_test_dup_a"}
    plugins["imgen-dup-b"] = "cli_test_dup_b"
    for dist, module in plugins.items():
        info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[imgen.plugins]\n{dist[6:]} = {module}\n")
    for module in ("cli_test_dup_a", "cli_test_dup_b"):
        (site / f"{module}.py").write_text(
            textwrap.dedent(
                """
                from imgen import hookimpl
                from imgen.testing.fake import FakeImageGeneration

                class Dup(FakeImageGeneration):
                    backend_name = "dup"

                @hookimpl
                def register_backends(register):
                    register(Dup)
                """
            )
        )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(imgen.registry, "_default_registry", Registry(path=[str(site)]))


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def records(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


# -- imgen --help, --version, backends --------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("backends", "info", "generate"):
        assert f"  {command} " in result.stdout


def test_version_shows_core_and_plugin_versions(plugin_site: None) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"imgen {imgen.__version__}"
    assert "imgen-broken 1.2.3 (broken)" in lines
    assert "imgen-dup-a 1.2.3 (dup)" in lines


def test_backends_lists_builtin_backends_with_mode() -> None:
    result = invoke("backends")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["fake"][1:5] == ["imgen", imgen.__version__, "sync", "-"]
    assert rows["fake-async"][3] == "async"
    assert rows["fake"][-1] == "ok"


def test_backends_shows_broken_plugins_and_conflicts(plugin_site: None) -> None:
    result = invoke("backends")
    assert result.exit_code == 0
    broken = next(line for line in result.stdout.splitlines() if line.startswith("broken "))
    assert "imgen-broken 1.2.3" in broken
    assert "broken: ModuleNotFoundError: No module named 'cli_test_missing_module'" in broken
    conflicts = [line for line in result.stdout.splitlines() if line.startswith("dup ")]
    assert len(conflicts) == 2
    assert all("conflict:" in line and "imgen-dup-a and imgen-dup-b" in line for line in conflicts)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("info", "broken"), "Plugin imgen-broken 1.2.3 failed to load: ModuleNotFoundError"),
        (("generate", "broken:x", "a fox"), "Plugin imgen-broken 1.2.3 failed to load"),
        (("info", "dup"), "Backend name 'dup' is claimed by more than one plugin"),
        (("generate", "dup:x", "a fox"), "imgen-dup-a and imgen-dup-b"),
        (("batch", "dup:x", "-", "-o", "out"), "imgen-dup-a and imgen-dup-b"),
    ],
)
def test_a_broken_or_conflicting_backend_exits_with_code_3(
    plugin_site: None, args: tuple[str, ...], says: str
) -> None:
    result = CliRunner().invoke(main, list(args), input="a fox\n")
    assert_one_line_error(result, 3, says)


def test_backends_json_reports_every_backend_info(plugin_site: None) -> None:
    result = invoke("backends", "--json")
    assert result.exit_code == 0
    listed = {(entry["name"], entry["distribution"]): entry for entry in json.loads(result.stdout)}
    assert listed["fake", "imgen"]["is_async"] is False
    assert listed["broken", "imgen-broken"]["status"] == "broken"
    assert listed["dup", "imgen-dup-b"]["status"] == "conflict"
    assert "imgen-dup-a" in listed["dup", "imgen-dup-b"]["error"]


# -- imgen info -------------------------------------------------------------------------------


def test_info_shows_summary_fields_and_generation_kwargs() -> None:
    result = invoke("info", "fake")
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith(f"fake (imgen {imgen.__version__}, sync)")
    assert "Deterministic placeholder images, generated in-process (sync)." in text
    assert "  width: int = 64\n      Image width in pixels.\n" in text
    assert "  image_format: Literal['png', 'jpeg', 'webp'] = 'png'\n" in text
    assert (
        "  seed: int | list[int] = 0\n"
        "      Image k of a prompt uses seed + k; a list gives each prompt its own seed.\n"
    ) in text


def test_info_json_lists_runtime_parameters_of_async_backends() -> None:
    described = json.loads(invoke("info", "fake-async", "--json").stdout)
    runtime = {entry["name"]: entry for entry in described["runtime_parameters"]}
    assert runtime["max_concurrency"]["description"] == "Requests in flight at once."
    assert described["is_async"] is True
    assert [kwarg["name"] for kwarg in described["generation_kwargs"]] == ["seed"]


def test_info_names_the_env_var_of_a_secret_never_its_value(
    in_test_backends: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, SECRET)
    text = invoke("info", "cli-test-keyed").stdout
    assert f"  api_key: SecretStr | None  (from ${KEY_VAR}, secret)\n" in text
    as_json = invoke("info", "cli-test-keyed", "--json").stdout
    field = next(f for f in json.loads(as_json)["fields"] if f["name"] == "api_key")
    assert field["env_var"] == KEY_VAR and "default" not in field
    assert SECRET not in text + as_json


def test_info_shows_the_default_of_an_env_field(monkeypatch: pytest.MonkeyPatch) -> None:
    class Regional(FakeImageGeneration):
        backend_name: ClassVar[str] = "cli-test-regional"
        region: RuntimeParameter[str] = env_field(
            "CLI_TEST_REGION", description="Where requests go.", default="eu-west"
        )

    monkeypatch.setenv("CLI_TEST_REGION", "us-east")  # never shown: info reads no env value
    imgen.register_backend(Regional)
    try:
        text = invoke("info", "cli-test-regional").stdout
        described = json.loads(invoke("info", "cli-test-regional", "--json").stdout)
    finally:
        imgen.unregister_backend("cli-test-regional")
    assert "  region: str | None  (from $CLI_TEST_REGION, else 'eu-west')\n" in text
    assert "us-east" not in text
    field = next(f for f in described["fields"] if f["name"] == "region")
    assert (field["env_var"], field["default"]) == ("CLI_TEST_REGION", "eu-west")


def test_info_describes_a_backend_that_requires_fields(in_test_backends: None) -> None:
    result = invoke("info", "cli-test-endpoint")
    assert result.exit_code == 0
    assert "  endpoint: str  (required)\n      Where the requests go.\n" in result.stdout
    assert "  seed: int | list[int] = 0\n" in result.stdout


def test_info_of_an_unknown_backend_suggests_the_close_name() -> None:
    assert_one_line_error(invoke("info", "fak"), 2, "Unknown backend 'fak'", "Did you mean 'fake'")


# -- imgen generate ---------------------------------------------------------------------------


def test_generate_writes_valid_images_and_never_overwrites(tmp_path: Path) -> None:
    args = ["generate", "fake", "A red fox!", "a cat", "-n", "2", "-o", str(tmp_path)]
    first = invoke(*args, "-O", "width=32")
    assert first.exit_code == 0, first.output
    names = ["a-red-fox-0.png", "a-red-fox-1.png", "a-cat-0.png", "a-cat-1.png"]
    assert first.stdout.splitlines() == [str(tmp_path / name) for name in names]
    for name in names:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size == (32, 64)
    before = (tmp_path / "a-red-fox-0.png").read_bytes()

    second = invoke(*args[:3], "-o", str(tmp_path), "-p", "seed=9")
    assert second.stdout.splitlines() == [str(tmp_path / "a-red-fox-2.png")]
    assert (tmp_path / "a-red-fox-0.png").read_bytes() == before
    assert (tmp_path / "a-red-fox-2.png").read_bytes() != before


def test_generate_json_records_carry_per_image_metadata(tmp_path: Path) -> None:
    result = invoke(
        "generate", "fake-async", "a fox", "-n", "2", "-p", "seed=7", "-O", "model=my-model",
        "-o", str(tmp_path), "--json",
    )  # fmt: skip
    expected = {"prompt": "a fox", "model": "fake-async:my-model"}
    assert records(result) == [
        {"path": str(tmp_path / f"a-fox-{i}.png"), **expected, "index": i, "format": "png"}
        | {"seed": 7 + i}
        for i in range(2)
    ]


@pytest.mark.parametrize(
    ("prompt", "image_format", "name"),
    [
        ("Ünïcode  Fox, at dusk!", "jpeg", "unicode-fox-at-dusk-0.jpg"),
        ("日本", "webp", "image-0.webp"),
    ],
)
def test_generate_names_files_by_prompt_slug_and_detected_format(
    tmp_path: Path, prompt: str, image_format: str, name: str
) -> None:
    result = invoke(
        "generate", "fake", prompt, "-O", f"image_format={image_format}", "-o", str(tmp_path)
    )
    assert result.stdout.splitlines() == [str(tmp_path / name)]
    with Image.open(tmp_path / name) as image:
        assert image.format == image_format.upper()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_generate_from_a_saved_config_with_field_overrides(tmp_path: Path, suffix: str) -> None:
    config = FakeImageGeneration(width=16, height=16).save(tmp_path / f"model{suffix}")
    from_config = records(invoke("generate", str(config), "fox", "-o", str(tmp_path), "--json"))
    overridden = invoke("generate", str(config), "fox", "-O", "height=8", "-o", str(tmp_path))
    assert from_config[0]["model"] == "fake:fake-v1"
    with Image.open(from_config[0]["path"]) as image:
        assert image.size == (16, 16)
    with Image.open(overridden.stdout.strip()) as image:
        assert image.size == (16, 8)


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("true", True), ("[1, 2]", [1, 2]), ('"7"', "7"), ("1024x1024", "1024x1024"),
     ("", "")],
)  # fmt: skip
def test_option_values_are_json_when_they_parse_and_text_otherwise(text: str, value: Any) -> None:
    assert parse_value(text) == value


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["fak", "x"], ["Unknown backend 'fak'", "Did you mean 'fake'"]),
        ([":x", "y"], ["Malformed model spec ':x'"]),
        (["fake", "x", "-p", "sed=1"], ["generation kwarg 'sed'", "Did you mean 'seed'"]),
        (["fake", "x", "-p", "seed=abc"], ["generation kwarg seed='abc'", "valid integer"]),
        (["fake", "x", "-O", "widht=3"], ["unknown field 'widht'", "Did you mean 'width'"]),
        (["fake", "x", "-O", "width=0"], ["width=0", "greater than or equal to 1"]),
        (["fake", "x", "-p", "seed"], ["-p expects KEY=VALUE, got 'seed'"]),
        (["fake", "x", "-O", "=3"], ["-O expects FIELD=VALUE, got '=3'"]),
        (["fake", "x", " "], ["PROMPT 2 is empty"]),
        (["missing.yaml", "x"], ["Cannot read config file 'missing.yaml'"]),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragments: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("generate", *args), 2, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_api_key_names_its_environment_variable(
    in_test_backends: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    result = invoke("generate", "cli-test-keyed", "a fox")
    assert_one_line_error(result, 2, f"set the environment variable {KEY_VAR}")


def test_generation_failures_exit_1_after_saving_what_completed(tmp_path: Path) -> None:
    result = invoke(
        "generate", "fake-async", "first fails", "second works", "-o", str(tmp_path),
        "-O", "failure_rate=0.5", "-O", "failure_seed=1", "-O", "max_retries=0",
        "-O", "max_concurrency=1",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(tmp_path / "second-works-0.png")]
    assert result.stderr.splitlines() == [
        "Error: 1 of 2 prompts failed; prompt 1: RetryableError: fake transient failure for "
        "'first fails' (rerun with --debug for the traceback)"
    ]


def test_recorded_failures_still_exit_1(tmp_path: Path) -> None:
    result = invoke(
        "generate", "fake-async", "first fails", "second works", "-o", str(tmp_path),
        "-O", "failure_rate=0.5", "-O", "failure_seed=1", "-O", "max_retries=0",
        "-O", "max_concurrency=1", "-O", "on_error=record",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(tmp_path / "second-works-0.png")]
    assert "1 of 2 prompts failed; prompt 1: RetryableError" in result.stderr


@pytest.mark.parametrize(
    ("args", "env"), [(["--debug"], {}), ([], {"IMGEN_DEBUG": "1"})], ids=["flag", "env"]
)
def test_debug_shows_the_traceback(args: list[str], env: dict[str, str]) -> None:
    result = invoke(*args, "generate", "fak", "x", env=env)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: Unknown backend 'fak'")


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_secrets_are_masked_in_errors_and_tracebacks(
    in_test_backends: None, monkeypatch: pytest.MonkeyPatch, debug: list[str]
) -> None:
    monkeypatch.setenv(KEY_VAR, SECRET)
    result = invoke(*debug, "generate", "cli-test-keyed", "a fox")
    assert result.exit_code == 1
    assert SECRET not in result.output
    assert "RuntimeError: upstream rejected the header 'Bearer ***'" in result.stderr


# -- plumbing ---------------------------------------------------------------------------------


def test_lazy_commands_are_listed_and_imported_only_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_test_lazy.py").write_text(
        "import click\n\n@click.command()\ndef hello():\n    click.echo('hello from lazy')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = ImgenGroup(
        lazy_commands={"hello": "cli_test_lazy:hello", "absent": "cli_test_absent.command:x"}
    )
    assert group.list_commands(click.Context(group)) == ["hello"]
    assert "cli_test_lazy" not in sys.modules
    assert CliRunner().invoke(group, ["hello"]).stdout == "hello from lazy\n"
    assert "No such command 'absent'" in CliRunner().invoke(group, ["absent"]).stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_shows_on_a_terminal_and_is_erased_after() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with _status("Generating 2 image(s) with fake:fake-v1...", stream):
            pass
    assert terminal.getvalue().startswith("\rGenerating 2 image(s) with fake:fake-v1... 0s")
    assert terminal.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""


# -- the installed console script -------------------------------------------------------------


def console_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("imgen")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


@pytest.mark.parametrize("args", [["--help"], ["backends"]])
def test_console_script_starts_without_sdks_or_pillow(args: list[str]) -> None:
    done = console_script(*args, PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr
    imported = {
        line.rpartition("|")[2].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "click" in imported  # the import log is really there
    assert imported.isdisjoint(HEAVY_MODULES), imported & HEAVY_MODULES


def test_console_script_exits_2_with_one_line_on_a_user_error() -> None:
    done = console_script("generate", "fak", "a fox")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Unknown backend 'fak'"), done.stderr


def test_one_unwritable_image_does_not_keep_the_others_from_disk(tmp_path: Path) -> None:
    class HalfBroken(FakeImageGeneration):
        backend_name: ClassVar[str] = "cli-test-half-broken"

        def generate(
            self, inputs: list[str], num_generations: int = 1, seed: int | list[int] = 0
        ) -> list[list[dict[str, Any]]]:
            """The second image of every prompt is not even base64.

            Args:
                inputs: The prompts.
                num_generations: Images per prompt.
                seed: The first seed.
            """
            outputs = super().generate(inputs, num_generations, seed)
            for output in outputs:
                output[0]["images"][1] = "no image, no base64!"
            return outputs

    imgen.register_backend(HalfBroken)
    try:
        result = invoke(
            "generate", "cli-test-half-broken", "a fox", "a cat", "-n", "3", "-o", str(tmp_path)
        )
    finally:
        imgen.unregister_backend("cli-test-half-broken")
    assert result.exit_code == 1, result.output
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["a-cat-0.png", "a-cat-1.png", "a-fox-0.png", "a-fox-1.png"]
    assert result.stdout.count("\n") == 4
    assert "2 image(s) could not be written; prompt 1, image 1:" in result.stderr


# -- names the operating system refuses ---------------------------------------------------------

# Longer than any file name a Linux filesystem takes (255 bytes): stat() fails with ENAMETOOLONG.
TOO_LONG = "n" * 300


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["generate", "fake:x", "a fox", "-o", TOO_LONG], "Cannot create the output dir"),
        (["batch", "fake:x", "PROMPTS", "-o", TOO_LONG], "Cannot create the output dir"),
        (["batch", "fake:x", f"{TOO_LONG}.txt", "-o", "out"], "does not exist"),
        (["generate", f"{TOO_LONG}.yaml", "a fox", "-o", "out"], "Cannot read config file"),
        (["generate", f"fake:x:{TOO_LONG}.json", "a fox", "-o", "out"], ""),
    ],
    ids=["generate-output", "batch-output", "prompts-file", "config-file", "spec-like-config"],
)
def test_a_name_too_long_for_the_filesystem_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    """stat() raises for such a name where it would say "missing": that was an OSError, exit 1."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMGEN_USER_DIR", str(tmp_path / "user"))
    (tmp_path / "prompts.txt").write_text("a fox\n")
    result = invoke(*(str(tmp_path / "prompts.txt") if arg == "PROMPTS" else arg for arg in args))
    if fragment:
        assert_one_line_error(result, 2, fragment, "n" * 50, "...")
        assert "OSError" not in result.stderr
    else:  # a model id that merely looks like a config path is a model id
        assert result.exit_code == 0, result.output
    assert TOO_LONG not in os.listdir(tmp_path)


def test_a_config_path_holding_a_nul_is_a_configuration_error() -> None:
    with pytest.raises(imgen.errors.ConfigurationError, match="embedded null"):
        imgen.load_model("a\x00b.json")
