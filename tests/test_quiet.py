"""`quiet_libraries`: what the `imgen` command silences, and that all of it comes back after.

The end-to-end check, a diffusers run printing imgen's lines only, is in the diffusers plugin's
tests/test_cli.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from imgen.quiet import LIBRARY_LOGGERS, QUIET_ENVIRONMENT, quiet_libraries


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in QUIET_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def warn_from(module: str, message: str) -> None:
    """Raise a UserWarning as if from code in `module`."""
    warnings.warn_explicit(message, UserWarning, f"{module}.py", 1, module=module)


@pytest.mark.usefixtures("clean_environment")
def test_sets_the_libraries_variables_and_restores_them() -> None:
    with quiet_libraries():
        assert {name: os.environ[name] for name in QUIET_ENVIRONMENT} == QUIET_ENVIRONMENT
    assert not set(QUIET_ENVIRONMENT) & set(os.environ)


@pytest.mark.usefixtures("clean_environment")
def test_a_variable_the_user_set_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    with quiet_libraries():
        assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"


def test_library_loggers_drop_warnings_and_get_their_levels_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Loggers that propagate to the root, where caplog listens (diffusers and transformers do
    # not once imported, as they print through their own handlers).
    logging.getLogger("httpx").setLevel(logging.INFO)
    before = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    try:
        with caplog.at_level(logging.INFO), quiet_libraries():
            logging.getLogger("httpx").info("a request log line")
            logging.getLogger("accelerate.utils").warning("an accelerate notice")
            logging.getLogger("imgen.batch").warning("imgen's own warning")
            logging.getLogger("openai").error("a library error")
        assert [record.getMessage() for record in caplog.records] == [
            "imgen's own warning",
            "a library error",
        ]
        assert {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS} == before
    finally:
        logging.getLogger("httpx").setLevel(logging.NOTSET)


def test_only_imgens_own_warnings_show() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_libraries():
            warn_from("transformers.utils.import_utils", "requires torchvision")
            warn_from("imgen.registry", "no such plugin")
            warn_from("imgen_diffusers.model", "a plugin's warning")
        warn_from("transformers.utils.import_utils", "outside, it shows again")
    assert [str(w.message) for w in caught] == [
        "no such plugin",
        "a plugin's warning",
        "outside, it shows again",
    ]


def test_turns_off_the_bars_of_an_imported_library_and_back_on() -> None:
    # In a fresh process: whether the hub's bars are on depends on how it was first imported.
    script = (
        "from huggingface_hub.utils import are_progress_bars_disabled as off; "
        "from imgen.quiet import quiet_libraries; "
        "before = off(); "
        "quiet = quiet_libraries(); quiet.__enter__(); inside = off(); "
        "quiet.__exit__(None, None, None); "
        "print(before, inside, off())"
    )
    env = {name: value for name, value in os.environ.items() if name not in QUIET_ENVIRONMENT}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True", "False"]


# A backend whose generation goes through libraries that warn and log, run by the command in a
# fresh process, where nothing but the command decides what shows.
NOISY_COMMAND = """
import logging, sys, warnings
import imgen
from imgen.cli import main
from imgen.testing.fake import FakeImageGeneration

def warn(message, module):
    warnings.warn_explicit(message, UserWarning, module + ".py", 1, module=module)

class Noisy(FakeImageGeneration):
    backend_name = "noisy"

    def generate(self, inputs, num_generations=1):
        warn("an upstream UserWarning", "torch.nn")
        logging.getLogger("transformers.models").warning("an upstream log line")
        warn("imgen's own warning", "imgen.x")
        return super().generate(inputs, num_generations)

imgen.register_backend(Noisy)
main(sys.argv[1:])
"""


@pytest.mark.parametrize("debug", [False, True])
def test_the_command_is_quiet_unless_debug(tmp_path: Path, debug: bool) -> None:
    env = {name: value for name, value in os.environ.items() if name not in QUIET_ENVIRONMENT}
    args = [*(["--debug"] if debug else []), "generate", "noisy", "a fox", "-o", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-c", NOISY_COMMAND, *args],
        env={**env, "IMGEN_DEBUG": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'a-fox-0.png'}\n"
    assert ("an upstream UserWarning" in result.stderr) is debug
    assert ("an upstream log line" in result.stderr) is debug
    assert "imgen's own warning" in result.stderr
