"""Fixtures: one tiny random-weight pipeline per session, and models that load it.

The pipeline is built once into a temporary folder with `build_tiny_pipeline` and loaded back
through the backend's normal `from_pretrained` path, so the tests never touch the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import imgen
from imgen_diffusers import DiffusersImageGeneration
from imgen_diffusers.testing import build_tiny_pipeline

# Settings small enough that a generation of a few images takes a few hundredths of a second.
FAST = {"num_inference_steps": 2, "height": 64, "width": 64}


@pytest.fixture(scope="session")
def tiny_pipeline_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-pipeline"))


@pytest.fixture(scope="session")
def fast_kwargs() -> dict[str, Any]:
    """Generation kwargs for quick runs on the tiny pipeline."""
    return dict(FAST)


@pytest.fixture
def model(tiny_pipeline_path: Path) -> Iterator[DiffusersImageGeneration]:
    """A loaded model on the tiny pipeline, resolved by name like a user would."""
    model = imgen.get_model(f"diffusers:{tiny_pipeline_path}", device="cpu")
    assert isinstance(model, DiffusersImageGeneration)
    with model:
        yield model
