"""The README's install commands work from a checkout: every path they name is a distribution
pip can install, and pip resolves each command, non-editable, without any package index.

`pip install --dry-run` builds each named distribution's metadata and resolves its
dependencies against what is installed here, which is what the real command does short of
copying files; --no-index keeps it off the network.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_BASH_BLOCK = re.compile(r"^```bash\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
_PLUGIN_PATH = re.compile(r"\./plugins/[\w-]+")


def install_commands() -> list[list[str]]:
    """The README's commands that `pip install` from the checkout, as argv without comments."""
    commands = []
    for block in _BASH_BLOCK.finditer(README):
        for line in block["code"].splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:2] == ["pip", "install"] and argv[2:] and argv[2].startswith("."):
                commands.append(argv)
    return commands


def distribution_name(path: Path) -> str:
    with (path / "pyproject.toml").open("rb") as handle:
        name: str = tomllib.load(handle)["project"]["name"]
    return name


def test_the_first_command_installs_from_the_checkout() -> None:
    first = next(
        shlex.split(line, comments=True)
        for block in _BASH_BLOCK.finditer(README)
        for line in block["code"].splitlines()
        if line.startswith("pip install")
    )
    assert first[2] == "."
    assert all(arg.startswith(".") for arg in first[2:]), first  # paths, not index names
    assert "-e" not in first and "--editable" not in first


def test_every_plugin_path_the_readme_names_is_that_plugin() -> None:
    named = set(_PLUGIN_PATH.findall(README))
    assert named == {f"./plugins/{p.name}" for p in (ROOT / "plugins").iterdir() if p.is_dir()}
    for path in named:
        assert distribution_name(ROOT / path) == Path(path).name


@pytest.mark.parametrize("command", install_commands(), ids=shlex.join)
def test_pip_resolves_the_command_non_editable(command: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    targets = command[2:]
    subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation"),
            *("--quiet", "--report", str(report), *targets),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    planned = json.loads(report.read_text())["install"]
    expected = {distribution_name(ROOT / target.split("[")[0]) for target in targets}
    direct = {item["metadata"]["name"] for item in planned if item.get("is_direct")}
    assert direct == expected
    for item in planned:
        if item.get("is_direct"):
            assert not item["download_info"].get("dir_info", {}).get("editable", False)
