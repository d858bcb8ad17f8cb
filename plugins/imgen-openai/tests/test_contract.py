"""The imgen conformance kit, run against the fake Images API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from imgen.testing import BackendContract, LocalServer
from imgen_openai import OpenAIImageGeneration


class TestContract(BackendContract):
    generation_kwargs = {"size": "1024x1024", "quality": "low"}

    @pytest.fixture
    def local_server(self, api: Any) -> LocalServer:
        server: LocalServer = api.server
        return server

    @pytest.fixture
    def model(self, make_model: Callable[..., Any]) -> OpenAIImageGeneration:
        model: OpenAIImageGeneration = make_model()
        return model


class TestContractDallE3(BackendContract):
    """dall-e-3 answers with URLs and takes one image per request: the same contract holds."""

    generation_kwargs = {"quality": "hd"}

    @pytest.fixture
    def local_server(self, api: Any) -> LocalServer:
        server: LocalServer = api.server
        return server

    @pytest.fixture
    def model(self, make_model: Callable[..., Any]) -> OpenAIImageGeneration:
        model: OpenAIImageGeneration = make_model(model="dall-e-3")
        return model
