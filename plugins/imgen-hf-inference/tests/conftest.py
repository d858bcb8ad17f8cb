"""Fixtures: a local server that answers like a text-to-image endpoint, and models aimed at it.

The real huggingface_hub client sends every request to a `LocalServer` on 127.0.0.1; nothing
reaches the internet.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imgen.testing import LocalServer, RecordedRequest, Reply
from imgen_hf_inference import InferenceEndpointsImageGeneration

# huggingface_hub reads it once, at its first import; otherwise its first request would also
# send one to the Hub. (HF_HUB_OFFLINE, read the same way, is overridden per test below, so
# that other suites in this process keep the setting they were given.)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

ENDPOINT = "/endpoint"
"""The path of the model's base_url on the server."""

ModelFactory = Callable[..., InferenceEndpointsImageGeneration]


def answer_with_png(request: RecordedRequest) -> Reply:
    """Reply with a PNG of the requested size whose red channel is the seed (mod 256)."""
    from PIL import Image

    parameters = request.json().get("parameters", {})
    size = (parameters.get("width", 8), parameters.get("height", 8))
    image = Image.new("RGB", size, (parameters.get("seed", 0) % 256, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Reply(body=buffer.getvalue(), headers={"Content-Type": "image/png"})


@pytest.fixture(autouse=True)
def hub_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token from the developer's environment, fast backoff, requests allowed."""
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    # huggingface_hub may have been imported under other settings (by another suite, or with
    # HF_HUB_OFFLINE=1, which blocks even 127.0.0.1); these are the two this suite relies on.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(InferenceEndpointsImageGeneration, "retry_initial_delay", 0.01)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A running server whose ENDPOINT answers every POST with a PNG."""
    with LocalServer() as server:
        server.route("POST", ENDPOINT, answer_with_png)
        yield server


@pytest.fixture
def make_model(server: LocalServer) -> Iterator[ModelFactory]:
    """Build loaded models aimed at the server (fields override the defaults); unload them."""
    made: list[InferenceEndpointsImageGeneration] = []

    def make(**fields: Any) -> InferenceEndpointsImageGeneration:
        defaults: dict[str, Any] = {
            "base_url": server.url + ENDPOINT,
            "max_retries": 2,
            "timeout": 5.0,
        }
        model = InferenceEndpointsImageGeneration(**{**defaults, **fields})
        model.load()
        made.append(model)
        return model

    yield make
    for model in made:
        model.unload()


@pytest.fixture
def model(make_model: ModelFactory) -> InferenceEndpointsImageGeneration:
    """A loaded model aimed at the server, with the default settings."""
    return make_model()
