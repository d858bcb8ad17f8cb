"""The imgen conformance kit, run against the echo backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imgen.testing import BackendContract
from imgen_echo import EchoImageGeneration


class TestContract(BackendContract):
    # Small images keep the kit fast; any generation kwarg of agenerate may go here.
    generation_kwargs = {"width": 16, "height": 16}

    @pytest.fixture
    def model(self) -> Iterator[EchoImageGeneration]:
        with EchoImageGeneration() as model:
            yield model
