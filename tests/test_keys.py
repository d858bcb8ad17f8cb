"""Stored keys: `imgen keys set|list|remove`, the keys file, and models that take their key."""

from __future__ import annotations

import json
import os
import pty
import re
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import imgen.registry
from imgen.cli import main
from imgen.errors import ConfigurationError, InvalidInputError, MissingCredentialsError
from imgen.keys import set_key, stored_key
from imgen.registry import Registry
from imgen.testing import exception_text

KEY = "sk-stored-0123456789"
ENV_VAR = "KEYED_API_KEY"
PLUGIN = '''
from typing import Any, ClassVar

from pydantic import SecretStr

from imgen import RuntimeParameter, env_field, hookimpl
from imgen.errors import MissingCredentialsError
from imgen.testing.fake import AsyncFakeImageGeneration, FakeImageGeneration


class KeyedFake(FakeImageGeneration):
    """A fake that needs a key and, like a careless SDK, echoes it in its errors."""

    backend_name: ClassVar[str] = "keyed"
    api_key: RuntimeParameter[SecretStr] = env_field(
        "KEYED_API_KEY", description="The key.", secret=True
    )

    def load(self) -> None:
        if self.api_key is None:
            raise MissingCredentialsError(self.backend_name, "api_key", "KEYED_API_KEY")
        super().load()

    def generate(self, inputs: list[str], num_generations: int = 1, seed: int = 0) -> Any:
        if any("leak" in prompt for prompt in inputs):
            raise RuntimeError(f"upstream rejected 'Bearer {self.api_key.get_secret_value()}'")
        return super().generate(inputs, num_generations, seed)


class AsyncKeyedFake(AsyncFakeImageGeneration):
    """The same, through the async engine, which can record failures instead of raising."""

    backend_name: ClassVar[str] = "keyed-async"
    api_key: RuntimeParameter[SecretStr] = env_field(
        "KEYED_API_KEY", description="The key.", secret=True
    )

    async def agenerate(self, input: str, num_generations: int = 1, seed: int = 0) -> Any:
        if "leak" in input:
            raise RuntimeError(f"upstream rejected 'Bearer {self.api_key.get_secret_value()}'")
        return await super().agenerate(input, num_generations, seed)


@hookimpl
def register_backends(register):
    register(KeyedFake, aliases={"keyed-alias": "m"})
    register(AsyncKeyedFake)
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plugin distribution on sys.path providing `keyed`, a backend that needs a key."""
    site = tmp_path / "site"
    info = site / "imgen_keyed-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: imgen-keyed\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[imgen.plugins]\nkeyed = keyed_plugin\n")
    (site / "keyed_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(imgen.registry, "_default_registry", Registry(path=[str(site)]))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return site


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def stored(user_dir: Path) -> dict[str, str]:
    return dict(json.loads((user_dir / "keys.json").read_text()))


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# -- imgen keys set | list | remove -------------------------------------------------------------


def test_keys_set_reads_stdin_and_never_prints_the_key(site: Path, _private_user_dir: Path) -> None:
    result = invoke("keys", "set", "keyed", input=KEY + "\n")

    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert stored(_private_user_dir) == {"keyed": KEY}
    assert stat.S_IMODE((_private_user_dir / "keys.json").stat().st_mode) == 0o600
    assert invoke("keys", "list").stdout == "keyed\n"
    assert json.loads(invoke("keys", "list", "--json").stdout) == ["keyed"]


def test_the_keys_file_is_created_private_not_made_private_later(
    site: Path, _private_user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no chmod: the file must be created with mode 0600")

    for module, name in ((os, "chmod"), (os, "fchmod"), (Path, "chmod")):
        monkeypatch.setattr(module, name, refuse)
    old_umask = os.umask(0)  # the mode must not rely on a strict umask
    try:
        result = invoke("keys", "set", "keyed", input=KEY)
    finally:
        os.umask(old_umask)

    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((_private_user_dir / "keys.json").stat().st_mode) == 0o600
    assert [path.name for path in _private_user_dir.iterdir()] == ["keys.json"]


def test_a_new_user_dir_is_created_private(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGEN_USER_DIR", str(tmp_path / "new" / "imgen"))
    invoke("keys", "set", "keyed", input=KEY)
    assert stat.S_IMODE((tmp_path / "new" / "imgen").stat().st_mode) == 0o700


def test_keys_set_replaces_and_remove_forgets(site: Path, _private_user_dir: Path) -> None:
    invoke("keys", "set", "keyed", input="sk-old")
    invoke("keys", "set", "keyed", input="sk-new")
    assert stored(_private_user_dir) == {"keyed": "sk-new"}

    assert invoke("keys", "remove", "keyed").exit_code == 0

    assert stored(_private_user_dir) == {}
    assert invoke("keys", "list").stdout == ""
    message = one_line_error(invoke("keys", "remove", "keyd"), 2)
    assert message == "Error: No key is stored for 'keyd'. Stored keys: none."


def test_removing_a_misspelled_name_suggests_the_stored_one(site: Path) -> None:
    invoke("keys", "set", "keyed", input=KEY)
    message = one_line_error(invoke("keys", "remove", "keyd"), 2)
    assert "No key is stored for 'keyd'. Did you mean 'keyed'? Stored keys: keyed." in message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("keyd", "No installed backend is named 'keyd'. Did you mean 'keyed'?"),
        ("keyed-alias", "'keyed-alias' is an alias of the 'keyed' backend"),
        ("fake", "The 'fake' backend takes no key: it has no secret field."),
    ],
)
def test_keys_set_refuses_names_that_take_no_key(
    site: Path, _private_user_dir: Path, name: str, fragment: str
) -> None:
    message = one_line_error(invoke("keys", "set", name, input=KEY), 2)
    assert fragment in message
    assert not (_private_user_dir / "keys.json").exists()


def test_a_key_for_a_backend_not_installed_yet_is_stored_with_a_warning(
    site: Path, _private_user_dir: Path
) -> None:
    result = invoke("keys", "set", "replicate", input=KEY)

    assert result.exit_code == 0
    assert result.stderr == (
        "Warning: No installed backend is named 'replicate': the key is stored for a backend "
        "of that name to come. Backends that take a key: "
        f"{', '.join(sorted(taking_keys()))}.\n"
    )
    assert stored(_private_user_dir) == {"replicate": KEY}


def taking_keys() -> list[str]:
    from imgen.keys import secret_field_of

    infos = imgen.list_backends()
    return [
        i.name for i in infos if i.status == "ok" and secret_field_of(imgen.get_backend(i.name))
    ]


@pytest.mark.parametrize(
    ("typed", "fragment"),
    [("", "No key given"), ("  \n", "No key given"), ("sk-a\nsk-b\n", "several lines")],
)
def test_keys_set_refuses_an_empty_or_multi_line_key(
    site: Path, _private_user_dir: Path, typed: str, fragment: str
) -> None:
    message = one_line_error(invoke("keys", "set", "keyed", input=typed), 2)
    assert fragment in message
    assert "sk-a" not in message
    assert not (_private_user_dir / "keys.json").exists()


def test_keys_set_says_when_the_environment_variable_wins(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "sk-env")
    result = invoke("keys", "set", "keyed", input=KEY)
    assert result.exit_code == 0
    assert f"Note: {ENV_VAR} is set, and takes precedence over the stored key." in result.stderr


def test_keys_set_hides_what_is_typed_on_a_terminal(site: Path, _private_user_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-c", "from imgen.cli import main; main()", "keys", "set", "keyed"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child, its stdin, stdout and stderr on the terminal
        os.execve(sys.executable, command, env)
    transcript = _read_until(terminal, b"Key for keyed: ")
    os.write(terminal, KEY.encode() + b"\n")
    transcript += _read_until(terminal, None)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0, transcript
    assert KEY.encode() not in transcript  # the terminal did not echo it
    assert stored(_private_user_dir) == {"keyed": KEY}


def _read_until(terminal: int, marker: bytes | None) -> bytes:
    """What the terminal shows until `marker` (None: until the program ends)."""
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (marker is None or marker not in seen):
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # the program ended and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen


# -- models take their stored key ---------------------------------------------------------------


def test_the_environment_comes_first_then_the_stored_key(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(MissingCredentialsError, match="store it with `imgen keys set keyed`"):
        imgen.get_model("keyed").load()
    invoke("keys", "set", "keyed", input=KEY)

    from_store = imgen.get_model("keyed")
    monkeypatch.setenv(ENV_VAR, "sk-env")
    from_env = imgen.get_model("keyed")
    given = imgen.get_model("keyed", api_key="sk-given")
    refused = imgen.get_model("keyed", api_key=None)

    models = (from_store, from_env, given, refused)
    secrets = [m.api_key.get_secret_value() if m.api_key else None for m in models]  # type: ignore[attr-defined]
    assert secrets == [KEY, "sk-env", "sk-given", None]
    # A stored key is ambient, like one from the environment: not a field the caller set.
    assert "api_key" not in from_store.model_fields_set
    assert KEY not in repr(from_store) + json.dumps(from_store.dump())
    reloaded = imgen.load_model(from_store.dump())
    assert reloaded.api_key.get_secret_value() == "sk-env"  # type: ignore[attr-defined]


def test_a_stored_key_never_shows_in_output_errors_or_logs(
    site: Path, tmp_path: Path, _private_user_dir: Path
) -> None:
    invoke("keys", "set", "keyed", input=KEY)
    invoke("keys", "set", "keyed-async", input=KEY)

    ok = invoke("generate", "keyed", "a fox", "-o", str(tmp_path), "--json")
    failed = invoke("generate", "keyed", "a leak", "-o", str(tmp_path))
    debug = invoke("--debug", "generate", "keyed", "a leak", "-o", str(tmp_path))
    recorded = invoke(
        "generate", "keyed-async", "a leak", "a fox", "-o", str(tmp_path),
        "-O", "on_error=record", "-O", "max_retries=0",
    )  # fmt: skip
    shown = [invoke("info", "keyed"), invoke("keys", "list"), invoke("logs", "--json")]

    assert ok.exit_code == 0, ok.output
    assert failed.exit_code == recorded.exit_code == 1
    assert "upstream rejected 'Bearer ***'" in failed.stderr
    assert "prompt 1: RuntimeError: upstream rejected 'Bearer ***'" in recorded.stderr
    assert "Traceback" in debug.stderr
    for result in [ok, failed, debug, recorded, *shown]:
        assert KEY not in result.output
    entries = json.loads(shown[2].stdout)
    assert [entry["outcome"] for entry in entries] == ["ok", "failed", "failed", "failed"]
    assert "upstream rejected 'Bearer ***'" in entries[1]["error"]
    assert "upstream rejected 'Bearer ***'" in entries[3]["error"]
    for path in _private_user_dir.iterdir():
        if path.name != "keys.json":
            assert KEY.encode() not in path.read_bytes(), path


# -- the keys file ------------------------------------------------------------------------------


def test_a_keys_file_others_can_read_gets_a_warning(site: Path, _private_user_dir: Path) -> None:
    keys_file = _private_user_dir / "keys.json"
    keys_file.write_text(json.dumps({"keyed": KEY}))
    keys_file.chmod(0o644)

    result = invoke("keys", "list")

    assert result.stdout == "keyed\n"
    assert result.stderr == (
        f"Warning: The imgen keys file {keys_file} can be read by other users (mode 0644): "
        f"run `chmod 600 {keys_file}`.\n"
    )
    keys_file.chmod(0o600)
    assert invoke("keys", "list").stderr == ""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"keyed": "' + KEY, "is not valid JSON (line 1, column 11)"),
        (json.dumps([KEY]), "must hold a JSON object, not a list"),
        (json.dumps({"keyed": [KEY]}), "holds a value that is not a string for 'keyed'"),
    ],
)
@pytest.mark.parametrize("args", [["keys", "list"], ["generate", "keyed", "a fox"]])
def test_a_damaged_keys_file_is_one_error_that_never_quotes_it(
    site: Path,
    _private_user_dir: Path,
    tmp_path: Path,
    content: str,
    problem: str,
    args: list[str],
) -> None:
    keys_file = _private_user_dir / "keys.json"
    keys_file.write_text(content)
    keys_file.chmod(0o600)
    result = invoke(*args, "-o", str(tmp_path)) if "generate" in args else invoke(*args)

    message = one_line_error(result, 2)

    assert f"The imgen keys file {keys_file} {problem}" in message
    assert f"mv {keys_file} {keys_file}.bak" in message
    assert KEY not in message
    assert not list(tmp_path.glob("*.png"))


def test_a_damaged_keys_file_is_not_read_when_the_environment_has_the_key(
    site: Path, _private_user_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (_private_user_dir / "keys.json").write_text("{")
    monkeypatch.setenv(ENV_VAR, "sk-env")
    assert invoke("generate", "keyed", "a fox", "-o", str(tmp_path)).exit_code == 0


@pytest.mark.parametrize(
    "content",
    [
        f'{{"keyed": "{KEY}",'.encode(),  # cut off: JSONDecodeError.doc holds it all
        f'{{"keyed": "{KEY}"}}\xff'.encode("latin-1"),  # UnicodeDecodeError.object holds it
    ],
    ids=["invalid-json", "not-utf-8"],
)
def test_a_damaged_keys_file_error_chains_nothing_that_holds_the_keys(
    _private_user_dir: Path, content: bytes
) -> None:
    keys_file = _private_user_dir / "keys.json"
    keys_file.write_bytes(content)
    keys_file.chmod(0o600)

    with pytest.raises(ConfigurationError) as raised:
        stored_key("keyed")

    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert KEY not in exception_text(raised.value)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("keyed", 5, "A key must be a non-empty string, got int."),
        ("keyed", "", "got an empty string"),
        ("keyed", "sk-\udcff-rest", "lone surrogate at character 3"),
        (None, KEY, "A key's name must be a backend name such as 'openai', got NoneType"),
        (["keyed"], KEY, "got list"),
    ],
)
def test_set_key_refuses_what_no_keys_file_can_hold(
    _private_user_dir: Path, name: Any, value: Any, fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(fragment)) as raised:
        set_key(name, value)

    assert "rest" not in str(raised.value)
    assert not (_private_user_dir / "keys.json").exists()


@pytest.mark.parametrize("stdin_encoding", ["utf-8:strict", "utf-8:surrogateescape"])
def test_keys_set_refuses_a_key_that_is_not_utf_8(
    _private_user_dir: Path, stdin_encoding: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from imgen.cli import main; main()", "keys", "set", "openai"],
        input=b"sk-\xff\xfe-rest\n",
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": stdin_encoding},
        timeout=60,
    )

    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.startswith("Error: ") and "UTF-8" in stderr and "Traceback" not in stderr
    assert "rest" not in stderr
    assert not (_private_user_dir / "keys.json").exists()
