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


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread in these test modules, and restore the count after each.

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
    """The tiny random-weight pipeline, built once per session (about 0.1 s, 6.5 MB)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-pipeline"))


@pytest.fixture(scope="session")
def fast_kwargs() -> dict[str, Any]:
    """Generation kwargs that make a few images in a few hundredths of a second."""
    return {"num_inference_steps": 2, "height": 64, "width": 64}


@pytest.fixture
def model(tiny_pipeline_path: Path) -> Iterator[DiffusersImageGeneration]:
    """A loaded model on the tiny pipeline, resolved by name like a user would."""
    model = imgen.get_model(f"diffusers:{tiny_pipeline_path}", device="cpu")
    assert isinstance(model, DiffusersImageGeneration)
    with model:
        yield model
