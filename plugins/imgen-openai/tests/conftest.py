"""Fixtures: a fake OpenAI Images API on a real local HTTP server, and models pointed at it.

The real openai SDK makes every request, so retries, timeouts, parsing and headers are the
SDK's own. Nothing here reaches the internet.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imgen.testing import LocalServer, RecordedRequest, Reply
from imgen_openai import OpenAIImageGeneration

API_KEY = "sk-test-imgen-0123456789abcdef"
GENERATIONS = "/v1/images/generations"
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def tiny_image(index: int, image_format: str = "png") -> bytes:
    """An 8x8 image whose colour tells images apart."""
    from PIL import Image

    colour = (index * 37 % 256, index * 91 % 256, index * 53 % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format=_PIL_FORMATS[image_format])
    return buffer.getvalue()


class FakeImagesAPI:
    """`POST /v1/images/generations` in b64_json and url modes, on a `LocalServer`.

    It honours `n`, echoes a `revised_prompt`, answers in the requested `output_format`, and
    serves url-mode images from `GET /images/<id>.png`. Like the real API, dall-e models
    answer with URLs unless asked for b64_json, and a prompt holding `refused_word` is
    refused by "the safety system" with a 400.

    Attributes:
        server: The server, for scripting faults and reading what it received.
        served: Each image URL handed out, mapped to the bytes it serves.
    """

    refused_word = "forbidden"
    refusal = {
        "message": "Your request was rejected by the safety system.",
        "type": "invalid_request_error",
        "param": None,
        "code": "content_policy_violation",
    }

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.served: dict[str, bytes] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        server.route("POST", GENERATIONS, self._generate)
        server.route("GET", "/images/{name}", self._download)

    @property
    def base_url(self) -> str:
        """What a model's `base_url` should be."""
        return self.server.url + "/v1"

    @property
    def generations(self) -> list[RecordedRequest]:
        """The generation requests received, faulted ones included."""
        return self.server.requests_to(GENERATIONS)

    @property
    def downloads(self) -> list[RecordedRequest]:
        """The image downloads received."""
        return [r for r in self.server.requests if r.path.startswith("/images/")]

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the generation requests."""
        return [request.json() for request in self.generations]

    def _generate(self, request: RecordedRequest) -> Reply:
        body = request.json()
        prompt = body["prompt"]
        if self.refused_word in prompt:
            return Reply.json({"error": self.refusal}, status=400)
        default_mode = "url" if body.get("model", "").startswith("dall-e") else "b64_json"
        mode = body.get("response_format", default_mode)
        image_format = body.get("output_format", "png")
        data = []
        for _ in range(body.get("n", 1)):
            with self._lock:
                index = next(self._ids)
            image = tiny_image(index, image_format)
            item = {"revised_prompt": f"revised: {prompt}"}
            if mode == "url":
                item["url"] = f"{self.server.url}/images/{index}.png"
                self.served[item["url"]] = image
            else:
                item["b64_json"] = _b64(image)
            data.append(item)
        payload: dict[str, Any] = {"created": 1700000000, "data": data}
        if "output_format" in body:
            payload["output_format"] = image_format
        return Reply.json(payload)

    def _download(self, request: RecordedRequest) -> Reply:
        image = self.served.get(self.server.url + request.path)
        if image is None:
            return Reply.json({"error": {"message": f"no image {request.path}"}}, status=404)
        return Reply(body=image, headers={"Content-Type": "image/png"})


def _b64(data: bytes) -> str:
    from imgen.images import encode_bytes

    return encode_bytes(data)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's OpenAI settings out, and make backoff waits tiny."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(OpenAIImageGeneration, "retry_initial_delay", 0.01)


@pytest.fixture
def api_key() -> str:
    """The API key the test models use."""
    return API_KEY


@pytest.fixture
def api() -> Iterator[FakeImagesAPI]:
    """A fresh fake Images API."""
    with LocalServer() as server:
        yield FakeImagesAPI(server)


@pytest.fixture
def make_model(api: FakeImagesAPI) -> Iterator[Callable[..., OpenAIImageGeneration]]:
    """Build loaded models pointed at the fake API (fields override); unloads them after."""
    made: list[OpenAIImageGeneration] = []

    def make(**fields: Any) -> OpenAIImageGeneration:
        settings = {"api_key": API_KEY, "base_url": api.base_url, "timeout": 5.0, **fields}
        model = OpenAIImageGeneration(**settings)
        model.load()
        made.append(model)
        return model

    yield make
    for model in made:
        model.unload()


@pytest.fixture
def model(make_model: Callable[..., OpenAIImageGeneration]) -> OpenAIImageGeneration:
    """A loaded gpt-image-1 model with max_retries=2."""
    return make_model(max_retries=2)
