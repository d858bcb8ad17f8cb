"""Every Python code block of the documentation runs, so the docs cannot drift from the code.

The collector reads each fenced block whose info string starts with `python` (or `py`) from
`docs/**/*.md` and `README.md`. A page's blocks run in order, sharing one namespace (a fresh
module registered in `sys.modules`, so pydantic models and dataclasses defined there work),
with a temporary directory as the working directory, a fresh backend registry, and the
environment restored afterwards. A block that raises fails its page's test, naming the file
and line of the block.

Conventions, for anyone writing docs:

- A block that cannot run here (it needs a real API key, the Hugging Face Hub, a GPU) is
  preceded by an HTML comment naming why, on the line just before the fence:
  `<!-- skip: needs OPENAI_API_KEY -->`. The comment does not render. The reason is required,
  skips are counted (see `MAX_SKIPPED`), and wherever possible the same page shows the same
  thing running against local resources (the `fake` backend, a `LocalServer`, a tiny model).
- Code is written out in full, so that a page reads right where Markdown is shown raw (on a
  forge, in an sdist): no `--8<--` include lines. A block that shows a file of the repository
  is preceded by `<!-- example: path/from/the/repository/root -->`, and must equal that file;
  the tutorial shows every file of `docs/examples/imgen-echo` this way. After changing such a
  file, `python tests/test_docs.py --sync-examples` copies it into the pages.
- Top-level `await` is allowed, as in a notebook cell: such a block runs under `asyncio.run`.
- A page whose code uses the Ray engine is marked `ray` (Ray takes seconds to start), like the
  other Ray tests, so `pytest -m "not ray"` leaves it out.
- Other languages (`bash`, `toml`, `yaml`, `text`) are shown, never run. The `imgen` command
  lines of shell blocks are still checked: each must name a real command and real options.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shlex
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import imgen.registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNNABLE_LANGUAGES = frozenset({"python", "py"})
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
_STARTS_RAY = re.compile(r"RayEngine|engine=[\"']ray[\"']")
# Few and justified: each skip hides a block from the test, so it must stay the exception.
MAX_SKIPPED = 8

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_SKIP = re.compile(r"^\s*<!--\s*skip:(?P<reason>.*?)-->\s*$")
_EXAMPLE = re.compile(r"^\s*<!--\s*example:\s*(?P<path>\S+)\s*-->\s*$")
_SNIPPET = re.compile(r"^\s*-+8<-+\s")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown page.

    Attributes:
        path: The page's file.
        page: The page as shown in messages: relative to the repository root.
        line: The 1-based line of the first line of code in the page.
        language: The first word of the fence's info string, lower-cased.
        code: The block's code, dedented to the fence.
        skip_reason: Why the block is not run, from a `<!-- skip: ... -->` comment; else None.
        example: The repository file the block shows, from an `<!-- example: ... -->` comment.
        end: The 1-based line of the closing fence.
    """

    path: Path
    page: str
    line: int
    language: str
    code: str
    skip_reason: str | None
    example: str | None
    end: int

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE_LANGUAGES and self.skip_reason is None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def documentation_pages() -> list[Path]:
    """The Markdown pages whose code blocks the test runs."""
    pages = sorted(DOCS.rglob("*.md"))
    readme = ROOT / "README.md"
    return [readme, *pages] if readme.exists() else pages


def code_blocks(page: Path, root: Path = ROOT) -> Iterator[CodeBlock]:
    """Every fenced code block of `page`, in order; `page` is shown relative to `root`."""
    lines = page.read_text(encoding="utf-8").splitlines()
    relative = page.relative_to(root).as_posix()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        skip = _SKIP.match(lines[index - 1]) if index > 0 else None
        example = _EXAMPLE.match(lines[index - 1]) if index > 0 else None
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence) and not closing.strip(fence[0]):
                break
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else "")
            end += 1
        yield CodeBlock(
            path=page,
            page=relative,
            line=index + 2,
            language=(info.split() or [""])[0].split("{")[0].lower(),
            code="\n".join(body) + "\n",
            skip_reason=skip["reason"].strip() if skip else None,
            example=example["path"] if example else None,
            end=end + 1,
        )
        index = end + 1


def _page_params() -> list[Any]:
    """One pytest param per page with runnable code; pages that start Ray are marked `ray`."""
    params = []
    for page in documentation_pages():
        code = "".join(block.code for block in code_blocks(page) if block.runnable)
        if not code:
            continue
        marks = [pytest.mark.ray] if _STARTS_RAY.search(code) else []
        params.append(pytest.param(page, marks=marks, id=page.relative_to(ROOT).as_posix()))
    return params


def _compile(block: CodeBlock) -> types.CodeType:
    # Blank lines in front make traceback line numbers those of the Markdown page.
    source = "\n" * (block.line - 1) + block.code
    code: types.CodeType = compile(
        source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    return code


def run_block(block: CodeBlock, namespace: dict[str, object]) -> None:
    """Run one block in `namespace`; top-level `await` runs under `asyncio.run`."""
    code = _compile(block)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


@pytest.fixture
def page_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary working directory, a fresh registry; environment and sys.path put back."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(imgen.registry, "_default_registry", imgen.registry.Registry())
    saved = dict(os.environ)
    try:
        yield tmp_path
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("page", _page_params())
def test_python_blocks_run(page: Path, page_sandbox: Path) -> None:
    module_name = "docs_page_" + re.sub(r"\W", "_", page.relative_to(ROOT).as_posix())
    module = types.ModuleType(module_name)
    module.__file__ = str(page)
    sys.modules[module_name] = module
    try:
        for block in code_blocks(page):
            if not block.runnable:
                continue
            try:
                run_block(block, module.__dict__)
            except Exception as exc:
                pytest.fail(
                    f"The code block at {block.where} raised {type(exc).__name__}: {exc}",
                    pytrace=True,
                )
    finally:
        del sys.modules[module_name]


def test_skipped_blocks_are_few_and_justified() -> None:
    skipped = [
        block
        for page in documentation_pages()
        for block in code_blocks(page)
        if block.language in RUNNABLE_LANGUAGES and block.skip_reason is not None
    ]
    assert all(block.skip_reason for block in skipped), "a skip comment needs its reason"
    assert len(skipped) <= MAX_SKIPPED, [f"{b.where}: {b.skip_reason}" for b in skipped]


def test_skip_comments_precede_python_blocks() -> None:
    # A skip comment anywhere else would look like it hides a block while hiding nothing.
    misplaced = []
    for page in documentation_pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if _SKIP.match(line):
                following = _FENCE.match(lines[number]) if number < len(lines) else None
                language = following["info"].split()[0] if following and following["info"] else ""
                if language not in RUNNABLE_LANGUAGES:
                    misplaced.append(f"{page.relative_to(ROOT)}:{number}")
    assert not misplaced, misplaced


def test_collector_finds_the_tutorial_code() -> None:
    # Guards the collector itself: a broken fence parser would make every test above vacuous.
    blocks = list(code_blocks(DOCS / "writing-a-backend.md"))
    runnable = [block for block in blocks if block.runnable]
    assert len(runnable) >= 3
    assert any("class EchoImageGeneration" in block.code for block in runnable)
    assert any(block.language == "toml" and "imgen.plugins" in block.code for block in blocks)


def test_collector_reports_skips_examples_await_and_failing_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n"
        "<!-- example: part.py -->\n"
        "```python\n"
        "value = 1\n"
        "```\n"
        "<!-- skip: needs a real key -->\n"
        "```python\n"
        "raise RuntimeError('never run')\n"
        "```\n"
        "- A list item:\n"
        "\n"
        "    ```python\n"
        "    import asyncio\n"
        "    await asyncio.sleep(0)\n"
        "    value += 1\n"
        "    ```\n"
        "\n"
        "```python\n"
        "assert value == 3\n"
        "```\n"
    )
    blocks = list(code_blocks(page, root=tmp_path))
    assert [(b.line, b.skip_reason, b.example) for b in blocks] == [
        (4, None, "part.py"),
        (8, "needs a real key", None),
        (13, None, None),
        (19, None, None),
    ]
    namespace: dict[str, object] = {}
    for block in blocks[:3]:
        if block.runnable:
            run_block(block, namespace)
    assert namespace["value"] == 2
    with pytest.raises(AssertionError) as failure:
        run_block(blocks[3], namespace)
    assert failure.traceback[-1].lineno + 1 == 19  # pytest counts lines from 0


def _unknown_cli_options(argv: list[str]) -> list[str]:
    """The options in an `imgen ...` command line that the command does not take."""
    import click

    from imgen.cli import main

    problems = []
    command: click.Command = main
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            if isinstance(command, click.Group):
                sub = command.get_command(click.Context(command), word)
                if sub is None:
                    problems.append(f"no command {word!r}")
                    break
                command = sub
            continue
        name = word.partition("=")[0]
        options: dict[str, click.Parameter | None] = {"-h": None, "--help": None}
        options.update({opt: param for param in command.params for opt in param.opts})
        if name not in options:
            problems.append(f"`{command.name}` has no option {name}")
            continue
        param = options[name]
        takes_value = isinstance(param, click.Option) and not param.is_flag
        if takes_value and "=" not in word:
            next(words, None)
    return problems


def test_shell_examples_use_real_commands_and_options() -> None:
    problems = []
    for page in documentation_pages():
        for block in code_blocks(page):
            if block.language not in SHELL_LANGUAGES:
                continue
            for line in block.code.splitlines():
                for part in re.split(r"&&|\|\||;|\|", line):
                    words = shlex.split(part, comments=True)
                    # Leading VAR=value assignments set the environment of the command.
                    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
                        words.pop(0)
                    if words and words[0] == "imgen":
                        problems += [f"{block.where}: {p}" for p in _unknown_cli_options(words[1:])]
    assert not problems, problems


# -- pages that show repository files ---------------------------------------------------------

EXAMPLE_PACKAGE = DOCS / "examples" / "imgen-echo"
TUTORIAL = DOCS / "writing-a-backend.md"


def _example_files() -> list[str]:
    """The example package's files, relative to the repository root (build output left out)."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in EXAMPLE_PACKAGE.rglob("*")
        if path.is_file()
        and path.name != "py.typed"
        and not any(part == "__pycache__" or part.endswith(".egg-info") for part in path.parts)
    )


def test_no_page_includes_files_by_snippet_lines() -> None:
    # An include line shows as itself wherever Markdown is read raw: write the code out.
    found = [
        f"{page.relative_to(ROOT)}:{number}"
        for page in documentation_pages()
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if _SNIPPET.match(line)
    ]
    assert not found, found


def test_blocks_marked_as_examples_equal_their_files() -> None:
    stale = [
        f"{block.where} differs from {block.example}"
        for page in documentation_pages()
        for block in code_blocks(page)
        if block.example and block.code != (ROOT / block.example).read_text(encoding="utf-8")
    ]
    assert not stale, f"{stale}: run `python tests/test_docs.py --sync-examples`"


def test_the_tutorial_shows_every_file_of_the_example_package() -> None:
    shown = [block.example for block in code_blocks(TUTORIAL) if block.example]
    assert sorted(shown) == _example_files()


def test_sync_examples_copies_the_files_into_their_blocks(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text("first = 1\nsecond = 2\n")
    (tmp_path / "two.toml").write_text("[x]\n")
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n<!-- example: one.py -->\n```python\nold = 0\n```\n\nMiddle\n"
        "<!-- example: two.toml -->\n```toml\n```\nEnd\n"
    )
    assert sync_examples(page, tmp_path)
    assert page.read_text() == (
        "Intro\n<!-- example: one.py -->\n```python\nfirst = 1\nsecond = 2\n```\n\nMiddle\n"
        "<!-- example: two.toml -->\n```toml\n[x]\n```\nEnd\n"
    )
    assert not sync_examples(page, tmp_path)


def sync_examples(page: Path, root: Path = ROOT) -> bool:
    """Copy each marked file into its block on `page`; return whether the page changed."""
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    for block in reversed(list(code_blocks(page, root))):
        if block.example:
            text = (root / block.example).read_text(encoding="utf-8")
            lines[block.line - 1 : block.end - 1] = text.splitlines(keepends=True)
    synced = "".join(lines)
    changed = synced != page.read_text(encoding="utf-8")
    if changed:
        page.write_text(synced, encoding="utf-8")
    return changed


if __name__ == "__main__" and sys.argv[1:] == ["--sync-examples"]:
    for page in documentation_pages():
        if sync_examples(page):
            print(f"updated {page.relative_to(ROOT)}")
