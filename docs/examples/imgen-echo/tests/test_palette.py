"""The palette sketch against a real local HTTP server: retries, refusals, and no leaked key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imgen.errors import GenerationError, RequestRefusedError, UnexpectedResponseError
from imgen.images import encode_bytes
from imgen.testing import LocalServer, RecordedRequest, Reply, exception_text
from imgen.testing.fake import fake_image
from imgen_echo.palette import PaletteImageGeneration

KEY = "pk-palette-test-0123456789"
ROUTE = "/v1/models/{model}/images"


def images(request: RecordedRequest) -> Reply:
    """What the service answers: `n` images, drawn from the model id in the path."""
    n, model = request.json()["n"], request.path_params["model"]
    return Reply.json(
        {"data": [{"b64": encode_bytes(fake_image(model, k, 8, 8, "png"))} for k in range(n)]}
    )


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.route("POST", ROUTE, images)
        yield server


@pytest.fixture
def palette(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PaletteImageGeneration]:
    monkeypatch.setattr(PaletteImageGeneration, "retry_initial_delay", 0.01)
    with PaletteImageGeneration(base_url=server.url, api_key=KEY, max_retries=2) as model:
        yield model


def test_a_rate_limit_is_retried_after_the_wait_asked(
    palette: PaletteImageGeneration, server: LocalServer
) -> None:
    server.script(Reply.json({"error": "slow down"}, status=429, headers={"Retry-After": "0"}))
    [[output]] = palette.generate_outputs(["a red fox"], num_generations=2, style="pastel")
    assert len(output["images"]) == 2 and output["format"] == "png"
    sent = server.requests_to(ROUTE)
    assert len(sent) == 2
    assert sent[-1].path_params == {"model": "palette-1"}
    assert sent[-1].json()["style"] == "pastel"
    assert sent[-1].headers["authorization"] == f"Bearer {KEY}"


def test_a_refusal_masks_the_echoed_key_and_chains_nothing(
    palette: PaletteImageGeneration, server: LocalServer
) -> None:
    server.route(
        "POST",
        ROUTE,
        lambda request: Reply.json({"error": f"bad {request.headers['authorization']}"}, 401),
    )
    with pytest.raises(GenerationError) as raised:
        palette.generate_outputs(["a red fox"])
    error = raised.value.errors[0]
    assert isinstance(error, RequestRefusedError)
    assert error.status_code == 401
    assert "bad Bearer ***" in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert KEY not in exception_text(raised.value)
    assert len(server.requests_to(ROUTE)) == 1  # a 401 is not retried


def test_a_body_that_is_not_json_is_named(
    palette: PaletteImageGeneration, server: LocalServer
) -> None:
    server.script(Reply(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(GenerationError) as raised:
        palette.generate_outputs(["a red fox"])
    error = raised.value.errors[0]
    assert isinstance(error, UnexpectedResponseError)
    assert "answered 200 with something that is not an images response" in str(error)


def test_the_base_url_has_a_default_that_the_environment_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PALETTE_BASE_URL", raising=False)
    assert PaletteImageGeneration().base_url == "https://api.palette.example"
    monkeypatch.setenv("PALETTE_BASE_URL", "https://mirror.example")
    assert PaletteImageGeneration().base_url == "https://mirror.example"


def test_unload_closes_the_client(server: LocalServer) -> None:
    palette = PaletteImageGeneration(base_url=server.url, api_key=KEY)
    with palette:
        palette.generate_outputs(["a red fox"])
        client = palette._client
    assert client.is_closed
