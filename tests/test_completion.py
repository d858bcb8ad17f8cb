"""Shell completion: click's scripts, completing commands, backends, aliases and model specs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.shell_completion import BashComplete, CompletionItem

from imgen.cli import main

IMGEN = "from imgen.cli import main; main(prog_name='imgen')"


def complete(args: list[str], incomplete: str) -> list[tuple[str, str]]:
    items: list[CompletionItem] = BashComplete(
        main, {}, "imgen", "_IMGEN_COMPLETE"
    ).get_completions(args, incomplete)
    return [(item.type, item.value) for item in items]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_click_writes_the_completion_script(shell: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMGEN],
        env={**os.environ, "_IMGEN_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "_IMGEN_COMPLETE" in result.stdout


def test_commands_complete_lazy_ones_included() -> None:
    assert complete([], "") == [
        ("plain", name)
        for name in ("backends", "batch", "generate", "info", "keys", "logs", "models", "paths")
    ]
    assert complete(["models"], "") == [("plain", "default"), ("plain", "list")]


def test_model_completes_backends_and_aliases_and_hands_paths_to_the_shell() -> None:
    assert complete(["generate"], "fa") == [
        ("file", "fa"),
        ("plain", "fake"),
        ("plain", "fake-async"),
    ]
    assert ("plain", "dall-e-3") in complete(["batch"], "dall")


def test_model_after_a_colon_completes_the_backends_model_ids() -> None:
    assert complete(["generate"], "openai:") == [
        ("file", "openai:"),
        ("plain", "openai:gpt-image-1"),
        ("plain", "openai:dall-e-2"),
        ("plain", "openai:dall-e-3"),
    ]
    assert complete(["generate"], "nosuch:") == [("file", "nosuch:")]


def test_backend_arguments_complete_names_and_aliases_only() -> None:
    assert complete(["info"], "fake") == [("plain", "fake"), ("plain", "fake-async")]
    assert complete(["models", "list"], "gpt") == [("plain", "gpt-image-1")]
