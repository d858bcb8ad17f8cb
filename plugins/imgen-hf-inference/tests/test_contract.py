"""The imgen conformance kit, run against the backend and the local server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from imgen.testing import BackendContract, LocalServer
from imgen_hf_inference import InferenceEndpointsImageGeneration


class TestContract(BackendContract):
    generation_kwargs: ClassVar[dict[str, Any]] = {"width": 16, "height": 16, "seed": 3}

    @pytest.fixture
    def model(
        self, make_model: Callable[..., InferenceEndpointsImageGeneration]
    ) -> InferenceEndpointsImageGeneration:
        # An explicit key, so the kit's leak checks have a secret to look for.
        return make_model(api_key="hf_contract_secret")

    @pytest.fixture
    def local_server(self, server: LocalServer) -> LocalServer:
        return server
