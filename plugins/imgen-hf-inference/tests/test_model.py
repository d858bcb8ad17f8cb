"""Behaviour of the hf-inference backend against a real local server, through the real SDK."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import imgen
from imgen.errors import (
    ConfigurationError,
    GenerationError,
    InvalidInputError,
    MissingCredentialsError,
    UnexpectedResponseError,
)
from imgen.images import decode_bytes, decode_image, detect_format, encode_bytes
from imgen.testing import Delay, LocalServer, RecordedRequest, Reply, Reset, exception_text
from imgen.testing.fake import fake_image
from imgen_hf_inference import InferenceEndpointsImageGeneration, InferenceRequestError
from imgen_hf_inference.model import is_hugging_face_url

ENDPOINT = "/endpoint"
ENV_TOKEN = "hf_from_the_environment"
ModelFactory = Callable[..., InferenceEndpointsImageGeneration]


def red_of(b64: str) -> int:
    """The red channel of the image's first pixel: the seed the server drew it with."""
    pixel: tuple[int, ...] = decode_image(b64).convert("RGB").getpixel((0, 0))  # type: ignore[assignment]
    return pixel[0]


def sent(server: LocalServer) -> list[RecordedRequest]:
    return server.requests_to(ENDPOINT)


# -- what is sent --------------------------------------------------------------------------


def test_every_parameter_reaches_the_server(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    [[output]] = model.generate(
        ["a red fox"],
        negative_prompt="blurry",
        height=24,
        width=16,
        num_inference_steps=4,
        guidance_scale=7.5,
        seed=42,
        scheduler="DPMSolverMultistepScheduler",
        extra_body={"lora_scale": 0.8, "style": {"name": "film", "strength": 0.5}},
    )
    [request] = sent(server)
    assert request.method == "POST"
    assert request.json() == {
        "inputs": "a red fox",
        "parameters": {
            "negative_prompt": "blurry",
            "height": 24,
            "width": 16,
            "num_inference_steps": 4,
            "guidance_scale": 7.5,
            "scheduler": "DPMSolverMultistepScheduler",
            "seed": 42,
            # extra_body is merged into "parameters", nested values as they are.
            "lora_scale": 0.8,
            "style": {"name": "film", "strength": 0.5},
        },
    }
    assert request.headers["accept"] == "image/png"
    assert output["format"] == "png"
    assert output["seeds"] == [42]
    assert decode_image(output["images"][0]).size == (16, 24)


def test_unset_parameters_are_not_sent(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    [[output]] = model.generate(["a lighthouse"], num_generations=2)
    requests = sent(server)
    assert [r.json() for r in requests] == [{"inputs": "a lighthouse", "parameters": {}}] * 2
    assert len(output["images"]) == 2
    assert "seeds" not in output


def test_image_k_uses_seed_plus_k(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    [[output]] = model.generate(["a cat"], num_generations=3, seed=10)
    assert sorted(r.json()["parameters"]["seed"] for r in sent(server)) == [10, 11, 12]
    assert output["seeds"] == [10, 11, 12]
    # Each image is the one drawn with its seed, in order.
    assert [red_of(b64) for b64 in output["images"]] == [10, 11, 12]


@pytest.mark.asyncio
async def test_async_batch_from_the_callers_loop(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    outputs = await model.agenerate_outputs(["a cat", "a dog"], num_generations=2, seed=7)
    assert [output[0]["seeds"] for output in outputs] == [[7, 8], [7, 8]]
    assert sorted(r.json()["inputs"] for r in sent(server)) == ["a cat"] * 2 + ["a dog"] * 2


# -- what comes back -----------------------------------------------------------------------


def photo_reply(image_format: str, seed: int) -> bytes:
    """A noisy 64x64 image in `image_format` (JPEG and WebP at quality 70, so really lossy)."""
    import io
    import random

    from PIL import Image

    rng = random.Random(seed)
    pixels = Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3))
    buffer = io.BytesIO()
    pixels.save(buffer, format=image_format.upper(), quality=70)
    return buffer.getvalue()


def serve(server: LocalServer, image_format_of_seed: Callable[[int], str]) -> dict[int, bytes]:
    """Answer each request with a photo-like image in the format chosen by its seed.

    Returns:
        The bytes served, by seed.
    """
    served: dict[int, bytes] = {}

    def answer(request: RecordedRequest) -> Reply:
        seed = request.json()["parameters"]["seed"]
        image_format = image_format_of_seed(seed)
        served[seed] = photo_reply(image_format, seed)
        return Reply(body=served[seed], headers={"Content-Type": f"image/{image_format}"})

    server.route("POST", ENDPOINT, answer)
    return served


@pytest.mark.parametrize("image_format", ["jpeg", "png", "webp"])
def test_images_pass_through_byte_for_byte_in_their_own_format(
    model: InferenceEndpointsImageGeneration, server: LocalServer, image_format: str
) -> None:
    served = serve(server, lambda seed: image_format)
    [[output]] = model.generate(["a cat"], num_generations=2, seed=4)
    assert output["format"] == image_format
    assert [decode_bytes(b64) for b64 in output["images"]] == [served[4], served[5]]


def test_image_format_equal_to_the_servers_keeps_the_bytes(
    make_model: ModelFactory, server: LocalServer
) -> None:
    served = serve(server, lambda seed: "jpeg")
    [[output]] = make_model(image_format="jpeg", image_quality=5).generate(["a cat"], seed=1)
    assert output["format"] == "jpeg"
    assert decode_bytes(output["images"][0]) == served[1]  # not re-encoded at quality 5


def test_other_image_format_converts_the_servers_pixels(
    make_model: ModelFactory, server: LocalServer
) -> None:
    served = serve(server, lambda seed: "jpeg")
    [[output]] = make_model(image_format="png").generate(["a cat"], seed=1)
    assert output["format"] == "png"
    assert detect_format(decode_bytes(output["images"][0])) == "png"
    # Lossless: exactly the pixels the server's JPEG decodes to.
    expected = decode_image(encode_bytes(served[1])).tobytes()
    assert decode_image(output["images"][0]).tobytes() == expected


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
def test_conversion_uses_image_quality(
    make_model: ModelFactory, server: LocalServer, image_format: str
) -> None:
    serve(server, lambda seed: "png")

    def size(quality: int) -> int:
        model = make_model(image_format=image_format, image_quality=quality)
        [[output]] = model.generate(["a cat"], seed=1)
        assert output["format"] == image_format
        return len(decode_bytes(output["images"][0]))

    assert size(5) < size(95)


def test_images_of_different_formats_are_each_named(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    served = serve(server, lambda seed: "jpeg" if seed % 2 else "png")
    [[output]] = model.generate(["a cat"], num_generations=3, seed=0)
    assert output["format"] == ["png", "jpeg", "png"]
    assert [decode_bytes(b64) for b64 in output["images"]] == [served[0], served[1], served[2]]


def test_default_png_replies_keep_their_size(model: InferenceEndpointsImageGeneration) -> None:
    [[output]] = model.generate(["a cat"], width=16, height=8)
    assert output["format"] == "png"
    assert decode_image(output["images"][0]).size == (16, 8)


# -- faults and retries --------------------------------------------------------------------


def test_429_waits_for_retry_after(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    server.script(
        Reply.json({"error": "rate limited"}, status=429, headers={"Retry-After": "0.4"}),
        path=ENDPOINT,
    )
    started = time.monotonic()
    [[output]] = model.generate(["a cat"])
    # The backoff alone would be ~0.01 s: the wait is the server's.
    assert time.monotonic() - started >= 0.4
    assert len(sent(server)) == 2
    assert len(output["images"]) == 1


def test_503_is_retried(model: InferenceEndpointsImageGeneration, server: LocalServer) -> None:
    server.script(Reply.json({"error": "Model is loading"}, status=503), path=ENDPOINT)
    [[output]] = model.generate(["a cat"], seed=3)
    assert len(sent(server)) == 2
    assert red_of(output["images"][0]) == 3


def test_attempts_stop_at_max_retries(make_model: ModelFactory, server: LocalServer) -> None:
    model = make_model(max_retries=2)
    server.script(*[Reply.json({"error": "overloaded"}, status=500)] * 3, path=ENDPOINT)
    with pytest.raises(GenerationError) as caught:
        model.generate(["a cat"])
    assert len(sent(server)) == 3
    error = caught.value.errors[0]
    assert isinstance(error, InferenceRequestError)
    assert error.status_code == 500
    assert "overloaded" in str(error)


def test_400_fails_at_once_with_the_servers_message(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    server.script(
        Reply.json({"error": "height must be a multiple of 8"}, status=400), path=ENDPOINT
    )
    with pytest.raises(GenerationError) as caught:
        model.generate(["a cat"], height=12)
    assert len(sent(server)) == 1
    assert "(400): height must be a multiple of 8" in str(caught.value)
    assert caught.value.errors[0].status_code == 400  # type: ignore[attr-defined]


def test_slow_answer_times_out_then_succeeds(make_model: ModelFactory, server: LocalServer) -> None:
    model = make_model(timeout=0.3)
    server.script(Delay(3.0), path=ENDPOINT)
    started = time.monotonic()
    [[output]] = model.generate(["a cat"])
    assert time.monotonic() - started < 2.0
    assert len(sent(server)) == 2
    assert len(output["images"]) == 1


def test_timeout_changed_after_load_applies(make_model: ModelFactory, server: LocalServer) -> None:
    model = make_model(timeout=0.2)
    model.timeout = 3.0
    server.script(Delay(0.5), path=ENDPOINT)
    model.generate(["a cat"])
    assert len(sent(server)) == 1


def test_dropped_connection_is_retried(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    server.script(Reset(), path=ENDPOINT)
    [[output]] = model.generate(["a cat"])
    assert len(sent(server)) == 2
    assert len(output["images"]) == 1


def test_a_failed_image_is_retried_alone_with_its_own_seed(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    server.script(Reply.json({"error": "busy"}, status=503), path=ENDPOINT)
    [[output]] = model.generate(["a cat"], num_generations=3, seed=5)
    assert output["seeds"] == [5, 6, 7]
    assert [red_of(b64) for b64 in output["images"]] == [5, 6, 7]
    seeds_sent = sorted(r.json()["parameters"]["seed"] for r in sent(server))
    # Three images, one of which failed once: four requests, the retry with its own seed.
    assert len(seeds_sent) == 4 and sorted(set(seeds_sent)) == [5, 6, 7]


def test_non_image_answer_is_not_retried(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    server.script(Reply.json({"generated_text": "not an image"}), path=ENDPOINT)
    with pytest.raises(GenerationError, match="not an image: is it a text-to-image endpoint") as e:
        model.generate(["a cat"])
    assert len(sent(server)) == 1
    assert isinstance(e.value.errors[0], UnexpectedResponseError)


@pytest.mark.parametrize("value", ["inf", "1e400", "-3"])
def test_a_retry_after_that_is_no_wait_falls_back_to_the_backoff(
    model: InferenceEndpointsImageGeneration, server: LocalServer, value: str
) -> None:
    server.script(Reply.json({"error": "busy"}, 429, headers={"Retry-After": value}), path=ENDPOINT)
    start = time.monotonic()
    model.generate(["a cat"])
    assert time.monotonic() - start < 5
    assert len(sent(server)) == 2


def test_a_retry_after_beyond_max_retry_after_ends_the_attempts(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    busy = Reply.json({"error": "busy"}, 429, headers={"Retry-After": "3600"})
    server.script(busy, path=ENDPOINT)
    with pytest.raises(GenerationError, match=r"RetryAfterTooLongError: .* wait 3600 s"):
        model.generate(["a cat"])
    assert len(sent(server)) == 1


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ("ConnectError", True),
        ("ReadTimeout", True),
        ("RemoteProtocolError", True),
        ("UnsupportedProtocol", False),
        ("LocalProtocolError", False),
    ],
)
def test_transport_errors_retried_only_when_transient(
    model: InferenceEndpointsImageGeneration, error: str, retryable: bool
) -> None:
    import httpx2

    assert model.is_retryable(getattr(httpx2, error)("boom")) is retryable


# -- the token -----------------------------------------------------------------------------


def test_environment_token_is_not_sent_to_another_host(
    make_model: ModelFactory, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    model = make_model()
    assert model.api_key is not None and model.api_key.get_secret_value() == ENV_TOKEN
    model.generate(["a cat"])
    [request] = sent(server)
    assert "authorization" not in request.headers
    assert ENV_TOKEN not in json.dumps(request.headers)


def test_explicit_key_is_sent(
    make_model: ModelFactory, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    make_model(api_key="hf_explicit").generate(["a cat"])
    [request] = sent(server)
    assert request.headers["authorization"] == "Bearer hf_explicit"


def test_key_set_as_runtime_parameter_is_explicit(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    model = InferenceEndpointsImageGeneration(base_url=server.url + ENDPOINT)
    model.set_runtime_parameters({"api_key": "hf_runtime"})
    with model:
        model.generate(["a cat"])
    assert sent(server)[0].headers["authorization"] == "Bearer hf_runtime"


@pytest.mark.parametrize("api_key", [None, ""])
def test_explicitly_empty_key_sends_no_token(
    make_model: ModelFactory, server: LocalServer, monkeypatch: pytest.MonkeyPatch, api_key: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    make_model(api_key=api_key).generate(["a cat"])
    assert "authorization" not in sent(server)[0].headers


@pytest.mark.parametrize("via", ["dict", "json", "yaml"])
def test_reloaded_model_keeps_the_environment_keys_provenance(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, via: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    original = InferenceEndpointsImageGeneration(base_url=server.url + ENDPOINT)
    source: Any = original.dump()
    if via != "dict":
        source = original.save(tmp_path / f"model.{via}")
    clone = imgen.load_model(source)
    assert clone.api_key.get_secret_value() == ENV_TOKEN  # type: ignore[attr-defined]
    with clone:
        clone.generate(["a cat"])
    assert "authorization" not in sent(server)[0].headers


def test_a_stored_token_is_treated_like_the_environment_one(
    make_model: ModelFactory, server: LocalServer
) -> None:
    from imgen.keys import set_key

    set_key("hf-inference", "hf_stored")  # what `imgen keys set hf-inference` does

    model = make_model()
    model.generate(["a cat"])
    with InferenceEndpointsImageGeneration(
        base_url="https://abc123.us-east-1.aws.endpoints.huggingface.cloud"
    ) as trusted:
        assert trusted._client is not None and trusted._client.token == "hf_stored"

    assert model.api_key is not None and model.api_key.get_secret_value() == "hf_stored"
    assert "authorization" not in sent(server)[0].headers  # another host: withheld
    assert "hf_stored" not in repr(model) + json.dumps(model.dump())


def test_environment_token_goes_to_hugging_face_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hugging Face is unreachable from the tests, so look at the client load() built.
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    with InferenceEndpointsImageGeneration(
        base_url="https://abc123.us-east-1.aws.endpoints.huggingface.cloud"
    ) as model:
        assert model._client is not None
        assert model._client.token == ENV_TOKEN
        assert "authorization" not in model._client.headers


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://router.huggingface.co/hf-inference/models/x", True),
        ("https://huggingface.co/api", True),
        ("https://hf.co/x", True),
        ("https://abc.us-east-1.aws.endpoints.huggingface.cloud", True),
        ("https://ABC.Endpoints.HuggingFace.Cloud./gen", True),
        ("http://router.huggingface.co/x", False),  # the token would travel in clear
        ("https://someone.hf.space/gen", False),  # Spaces run their owner's code
        ("https://other.huggingface.cloud/gen", False),
        ("https://huggingface.co.evil.example/gen", False),
        ("https://evilhuggingface.co/gen", False),
        ("https://huggingface.co@evil.example/gen", False),
        ("http://127.0.0.1:8080/gen", False),
    ],
)
def test_which_hosts_count_as_hugging_face(url: str, trusted: bool) -> None:
    assert is_hugging_face_url(url) is trusted


def test_key_never_leaks(
    make_model: ModelFactory, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hf_do_not_leak_me"

    def echo_the_header(request: RecordedRequest) -> Reply:
        return Reply.json({"error": f"bad token in {request.headers['authorization']}"}, 401)

    server.route("POST", ENDPOINT, echo_the_header)
    model = make_model(api_key=secret)
    shown = [json.dumps(model.dump()), repr(model), str(model)]
    with pytest.raises(GenerationError) as caught:
        model.generate(["a cat"])
    shown += [str(caught.value), str(caught.value.errors[0])]
    assert "bad token in Bearer ***" in shown[-1]
    for text in shown:
        assert secret not in text
    with pytest.raises(ConfigurationError) as bad_config:
        InferenceEndpointsImageGeneration(model="a/b", base_url=server.url, api_key=secret)
    assert secret not in str(bad_config.value)


def test_a_refused_request_chains_nothing_that_holds_the_token(
    make_model: ModelFactory, server: LocalServer
) -> None:
    secret = "hf_do_not_leak_me"
    server.route(
        "POST",
        ENDPOINT,
        lambda request: Reply.json({"error": f"bad {request.headers['authorization']}"}, 401),
    )
    with pytest.raises(GenerationError) as caught:
        make_model(api_key=secret).generate(["a cat"])
    error = caught.value.errors[0]
    assert isinstance(error, InferenceRequestError)
    # huggingface_hub's error (which quotes the token) used to be the __cause__.
    assert error.__cause__ is None and error.__context__ is None
    assert secret not in exception_text(caught.value)


def test_a_long_error_body_is_cut_short_and_the_token_masked_even_at_the_cut(
    make_model: ModelFactory, server: LocalServer
) -> None:
    secret = "hf_do_not_leak_me"
    # The token straddles the point where the message is cut.
    body = "x" * 390 + secret + "y" * 100_000
    server.route("POST", ENDPOINT, lambda request: Reply.json({"error": body}, 400))
    with pytest.raises(GenerationError) as caught:
        make_model(api_key=secret).generate(["a cat"])
    error = str(caught.value.errors[0])
    assert "rejected the request (400): xxx" in error
    assert len(error) < 600
    assert secret[:6] not in error
    assert len(str(caught.value)) < 800


def test_the_saved_login_is_masked_too(
    model: InferenceEndpointsImageGeneration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no api_key, huggingface_hub sends the saved login to Hugging Face hosts; a server
    # there that echoes it must not get it into the error.
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    saved = "hf_saved_login_0123456789"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    (tmp_path / "token").write_text(saved)
    request = httpx2.Request("POST", "https://router.huggingface.co/x")
    response = httpx2.Response(401, json={"error": f"bad token {saved}"}, request=request)
    error = model._request_error(HfHubHTTPError(f"401: bad token {saved}", response=response))
    assert saved not in str(error)
    assert "bad token ***" in str(error)


@pytest.mark.parametrize("prompt", ["a \ud800 cat", "\udfff"])
def test_a_prompt_no_request_can_carry_is_refused_before_any_request(
    model: InferenceEndpointsImageGeneration, server: LocalServer, prompt: str
) -> None:
    with pytest.raises(InvalidInputError, match=r"inputs\[0\] holds a lone surrogate"):
        model.generate([prompt])
    assert server.requests == []


def test_rejected_withheld_token_explains_why(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    server.script(Reply.json({"error": "Unauthorized"}, status=401), path=ENDPOINT)
    with pytest.raises(GenerationError, match=r"set api_key=\.\.\. on the model"):
        model.generate(["a cat"])
    assert len(sent(server)) == 1


# -- resolution by name --------------------------------------------------------------------


def test_spec_sets_the_hub_model_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)
    model = imgen.get_model("hf-inference:black-forest-labs/FLUX.1-schnell", provider="fal-ai")
    assert isinstance(model, InferenceEndpointsImageGeneration)
    assert (model.model, model.base_url, model.provider) == (
        "black-forest-labs/FLUX.1-schnell",
        None,
        "fal-ai",
    )
    assert model.model_name == "black-forest-labs/FLUX.1-schnell"
    with model:  # creating the client sends nothing
        assert model.is_loaded


# -- input validation and configuration ----------------------------------------------------


def test_hub_model_without_any_token_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    model = imgen.get_model("hf-inference:org/model")
    with pytest.raises(MissingCredentialsError, match="HF_TOKEN"):
        model.load()


def test_offline_mode_is_refused_at_load(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = InferenceEndpointsImageGeneration(base_url=server.url + ENDPOINT)
    with pytest.raises(ConfigurationError, match="HF_HUB_OFFLINE"):
        model.load()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "needs model"),
        ({"model": "a/b", "base_url": "http://127.0.0.1:1/x"}, "not both"),
        ({"base_url": "http://127.0.0.1:1/x", "provider": "fal-ai"}, "Hub model ids only"),
    ],
)
def test_exactly_one_of_model_and_base_url(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        InferenceEndpointsImageGeneration(**fields)


def test_the_rule_holds_on_assignment() -> None:
    model = InferenceEndpointsImageGeneration(model="a/b")
    with pytest.raises(ConfigurationError, match="not both"):
        model.base_url = "http://127.0.0.1:1/x"
    assert model.base_url is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "https://127.0.0.1:1/x"}, "pass a server URL as base_url"),
        ({"model": " "}, "not empty"),
        ({"base_url": "127.0.0.1:8080/x"}, "http:// or https://"),
        ({"base_url": "HTTPS://example.com/x"}, "http:// or https://"),
        ({"model": "a/b", "provider": "fal"}, "Did you mean 'fal-ai'"),
        ({"model": "a/b", "provider": "groq"}, "not a text-to-image provider"),
        ({"model": "a/b", "image_format": "gif"}, "image_format"),
    ],
)
def test_bad_fields_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        InferenceEndpointsImageGeneration(**fields)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 0}, "height"),
        ({"width": -8}, "width"),
        ({"width": 8.5}, "width"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"seed": -1}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"extra_body": "not a mapping"}, "extra_body"),
        ({"extra_body": {"seed": 1, "width": 8}}, "may not set seed, width"),
        ({"heigth": 64}, "Did you mean 'height'"),
        # Values JSON cannot carry used to fail only at request time.
        ({"guidance_scale": float("inf")}, "guidance_scale=inf"),
        ({"extra_body": {"x": float("nan")}}, "extra_body must be JSON data"),
        ({"extra_body": {"x": b"bytes"}}, "extra_body must be JSON data"),
        ({"negative_prompt": "no \ud800"}, "negative_prompt holds a lone surrogate"),
    ],
)
def test_bad_kwargs_are_rejected_before_any_request(
    model: InferenceEndpointsImageGeneration,
    server: LocalServer,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        model.generate(["a cat"], **kwargs)
    assert server.requests == []


def test_importing_and_building_load_nothing_heavy() -> None:
    probe = (
        "import json, sys, imgen\n"
        "import imgen_hf_inference\n"
        "imgen.get_model('hf-inference:org/model')\n"
        "imgen_hf_inference.InferenceEndpointsImageGeneration(base_url='http://127.0.0.1:1/x')\n"
        "print(json.dumps([m for m in ('huggingface_hub', 'PIL') if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_no_request_to_the_hub_behind_the_users_back(server: LocalServer, tmp_path: Path) -> None:
    # A fresh process, telemetry not disabled by anyone but the backend, the Hub's address
    # pointed at the local server: any hidden request would land there.
    server.route("GET", "/api/agent-harnesses", lambda request: Reply.json({}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update({"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path)})
    script = (
        "import imgen\n"
        f"with imgen.get_backend('hf-inference')(base_url={server.url + ENDPOINT!r}) as model:\n"
        "    model.generate(['a cat'])\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert [request.path for request in server.requests] == [ENDPOINT]


# -- batches, event loops, lifecycle -------------------------------------------------------


def test_record_keeps_the_other_inputs(make_model: ModelFactory, server: LocalServer) -> None:
    def refuse_dogs(request: RecordedRequest) -> Reply:
        prompt = request.json()["inputs"]
        if "dog" in prompt:
            return Reply.json({"error": "no dogs allowed"}, status=400)
        image = fake_image(prompt, 0, 8, 8, "png")
        return Reply(body=image, headers={"Content-Type": "image/png"})

    server.route("POST", ENDPOINT, refuse_dogs)
    outputs = make_model(on_error="record").generate(["a cat", "a dog", "a bird"])
    assert [len(output[0]["images"]) for output in outputs] == [1, 0, 1]
    assert "no dogs allowed" in outputs[1][0]["error"]
    assert len(sent(server)) == 3


def test_works_across_separate_event_loops(model: InferenceEndpointsImageGeneration) -> None:
    # The client is bound to one loop; the model keeps it on its own, whoever calls.
    for _ in range(2):
        [[output]] = asyncio.run(model.agenerate_outputs(["a cat"]))
        assert len(output["images"]) == 1


def test_unload_then_generate_loads_again(
    model: InferenceEndpointsImageGeneration, server: LocalServer
) -> None:
    model.generate(["a cat"])
    model.unload()
    assert not model.is_loaded
    model.generate(["a cat"])
    assert model.is_loaded
    assert len(sent(server)) == 2


def test_dropping_a_used_model_without_unload_is_silent() -> None:
    script = (
        "import asyncio, gc, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from conftest import ENDPOINT, answer_with_png\n"
        "from imgen.testing import LocalServer\n"
        "import imgen\n"
        "with LocalServer() as server:\n"
        "    server.route('POST', ENDPOINT, answer_with_png)\n"
        "    def make():\n"
        "        return imgen.get_model('hf-inference', base_url=server.url + ENDPOINT)\n"
        "    m = make(); m.generate(['a', 'b'], num_generations=2)\n"
        "    m = make()  # the first model is dropped, never unloaded\n"
        "    async def some_other_loop():\n"
        "        for _ in range(20):\n"
        "            gc.collect()  # as the collector may, while any loop runs\n"
        "            await asyncio.sleep(0.01)\n"
        "    asyncio.run(some_other_loop())\n"
        "print('done')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr == ""
