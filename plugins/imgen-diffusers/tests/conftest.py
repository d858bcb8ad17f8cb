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


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread while these tests run.

    torch's thread pool spin-waits at every op, so on a busy 2-core runner each op waits for
    a descheduled sibling thread: we measured generation 10x slower with 2 threads than with
    1. One thread also keeps the pixels independent of the runner's core count.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
