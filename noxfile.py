"""Development sessions: tests, lint, typecheck, docs, bench, demo.

Installs use pip, never uv: pip picks up the CPU build of torch 2.13.0 that lies on disk, and it
must be installed before diffusers and transformers so they keep it.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"
PLUGINS = ["plugins/imgen-openai", "plugins/imgen-hf-inference", "plugins/imgen-diffusers"]
TORCH = "torch==2.13.0"
# moto's server mode: a local S3 endpoint for the tests of s3:// destinations.
TEST_TOOLS = ["pytest>=8", "pytest-asyncio>=0.24", "psutil", "moto[server]>=5"]


def install_project(session: nox.Session, *extras: str) -> None:
    """imgen and every first-party plugin, editable, with torch first."""
    session.install(TORCH)
    core = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", core, *(arg for plugin in PLUGINS for arg in ("-e", plugin)))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite: core, CLI, batch (local and Ray engines), every plugin, docs."""
    install_project(session, "ray", "datasets", "s3")
    session.install(*TEST_TOOLS)
    session.install("-e", "docs/examples/imgen-echo")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy (strict) on the core and the plugins' sources."""
    install_project(session, "ray", "parquet")
    session.install("mypy", "types-PyYAML", "pytest")
    session.run("mypy", "src", *(f"{plugin}/src" for plugin in PLUGINS))


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict."""
    install_project(session)
    session.install("mkdocs-material", "mkdocstrings[python]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark, side by side with its baseline; writes docs/benchmarks.md."""
    install_project(session, "ray", "parquet")
    session.install("psutil")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The README's main job: a tiny random-weight pipeline, a batch job, its dataset loaded."""
    install_project(session, "datasets")
    session.run("python", "examples/demo.py", *session.posargs)
