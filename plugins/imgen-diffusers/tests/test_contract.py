"""The imgen conformance kit, run against the tiny pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imgen.testing import BackendContract
from imgen_diffusers import DiffusersImageGeneration


class TestContract(BackendContract):
    generation_kwargs = {"num_inference_steps": 2, "height": 64, "width": 64}

    # Class-scoped (a classmethod, as pytest wants for that scope): the pipeline loads once
    # for the whole kit, not once per check.
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, tiny_pipeline_path: Path) -> Iterator[DiffusersImageGeneration]:
        with DiffusersImageGeneration(model=tiny_pipeline_path, device="cpu") as model:
            yield model
