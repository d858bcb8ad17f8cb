"""Keeping the `imgen` command's output to imgen's own: upstream chatter silenced until --debug.

Loading a diffusers pipeline prints transformers warnings, an accelerate notice and several
tqdm bars before imgen says a word. On the command line that output belongs to imgen, so the
command runs inside `quiet_libraries()`; Python code that calls imgen is left alone.

Libraries are silenced in three ways, since each reads its settings at a different time:
environment variables for those imported later (and for worker processes, such as Ray's),
their own switches for those already imported, and logger levels and warning filters for
everything else. All of it is undone on exit.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

__all__ = ["LIBRARY_LOGGERS", "QUIET_ENVIRONMENT", "quiet_libraries"]

# Read when each library is imported, and inherited by worker processes. A value the user set
# is kept: asking for a library's output by its own variable wins.
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONWARNINGS": "ignore",
}
"""The environment variables set while quiet, with their values."""

LIBRARY_LOGGERS = (
    "accelerate",
    "diffusers",
    "httpx",
    "huggingface_hub",
    "openai",
    "torch",
    "transformers",
)
"""The loggers raised to ERROR while quiet."""

# Progress-bar switches of libraries that keep their own flag: module, then the names of the
# function telling whether bars are on, the one turning them off and the one turning them on.
_BAR_SWITCHES = (
    (
        "diffusers.utils.logging",
        "is_progress_bar_enabled",
        "disable_progress_bar",
        "enable_progress_bar",
    ),
    (
        "transformers.utils.logging",
        "is_progress_bar_enabled",
        "disable_progress_bar",
        "enable_progress_bar",
    ),
)
# Warnings raised from these modules still show: they are imgen's and its plugins' own.
_OWN_MODULES = r"imgen"


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the warnings, log lines and progress bars of the libraries backends use.

    Errors still reach imgen, which reports them in its own words; imgen's own warnings and
    output are untouched.
    """
    with ExitStack() as stack:
        stack.enter_context(_environment(QUIET_ENVIRONMENT))
        stack.enter_context(_logger_levels(LIBRARY_LOGGERS, logging.ERROR))
        stack.enter_context(_progress_bars_off())
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", module=_OWN_MODULES)
        yield


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextmanager
def _logger_levels(names: tuple[str, ...], level: int) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.level))
    try:
        yield
    finally:
        for logger, old in zip(loggers, before, strict=True):
            logger.setLevel(old)


@contextmanager
def _progress_bars_off() -> Iterator[None]:
    """Turn off the bars of libraries already imported; later imports read the environment."""
    turned_off = []
    for module_name, is_enabled, disable, enable in _BAR_SWITCHES:
        if module_name not in sys.modules:
            continue
        module = importlib.import_module(module_name)
        if getattr(module, is_enabled)():
            getattr(module, disable)()
            turned_off.append(getattr(module, enable))
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        turned_off.append(hub.enable_progress_bars)
    try:
        yield
    finally:
        for enable_again in turned_off:
            enable_again()
