"""OpenAIImageGeneration against the fake Images API: requests sent, outputs, faults, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import imgen
from imgen.errors import (
    GenerationError,
    InvalidInputError,
    MissingCredentialsError,
    RequestRefusedError,
    RetryAfterTooLongError,
    UnexpectedResponseError,
)
from imgen.images import decode_bytes, detect_format, encode_bytes
from imgen.testing import Delay, Reply, Reset, exception_text
from imgen_openai import OpenAIImageGeneration, OpenAIRequestError

MakeModel = Callable[..., OpenAIImageGeneration]


def only_error(raised: pytest.ExceptionInfo[GenerationError]) -> BaseException:
    """The one per-input error of a one-prompt batch."""
    assert list(raised.value.errors) == [0]
    return raised.value.errors[0]


def api_error(status: int, code: str, message: str, **headers: str) -> Reply:
    """An error reply shaped like the OpenAI API's."""
    body = {"error": {"message": message, "type": "error", "param": None, "code": code}}
    return Reply.json(body, status=status, headers=headers)


# -- what is sent ------------------------------------------------------------------------


def test_sends_only_the_parameters_that_are_set(model: OpenAIImageGeneration, api: Any) -> None:
    model.generate(["a red fox"])
    model.generate(
        ["a grey owl"],
        num_generations=2,
        size="1024x1536",
        quality="low",
        background="transparent",
        output_format="webp",
        output_compression=0,
        moderation="low",
        user="user-7",
    )

    assert api.bodies() == [
        {"model": "gpt-image-1", "prompt": "a red fox", "n": 1},
        {
            "model": "gpt-image-1",
            "prompt": "a grey owl",
            "n": 2,
            "size": "1024x1536",
            "quality": "low",
            "background": "transparent",
            "output_format": "webp",
            "output_compression": 0,
            "moderation": "low",
            "user": "user-7",
        },
    ]


def test_sends_the_key_organization_and_timeout(
    make_model: MakeModel, api: Any, api_key: str
) -> None:
    make_model(organization="org-abc", timeout=7.5).generate(["a red fox"])

    headers = api.generations[0].headers
    assert headers["authorization"] == f"Bearer {api_key}"
    assert headers["openai-organization"] == "org-abc"
    assert headers["x-stainless-read-timeout"] == "7.5"


def test_sdk_retries_are_off(make_model: MakeModel, api: Any) -> None:
    api.server.script(*[api_error(500, "server_error", "boom")] * 5, path="/v1/images/generations")

    with pytest.raises(GenerationError):
        make_model(max_retries=0).generate(["a red fox"])

    assert len(api.generations) == 1
    assert api.generations[0].headers["x-stainless-retry-count"] == "0"


# -- what comes back ---------------------------------------------------------------------


def test_returns_base64_images_format_and_revised_prompts(
    model: OpenAIImageGeneration,
) -> None:
    outputs = model.generate(["a red fox", "a grey owl"], num_generations=3)

    assert [len(output) for output in outputs] == [1, 1]
    fox, owl = outputs[0][0], outputs[1][0]
    assert fox["format"] == owl["format"] == "png"
    assert fox["revised_prompts"] == ["revised: a red fox"] * 3
    assert owl["revised_prompts"] == ["revised: a grey owl"] * 3
    images = [decode_bytes(b64) for b64 in fox["images"] + owl["images"]]
    assert {detect_format(data) for data in images} == {"png"}
    assert len(set(images)) == 6


def test_format_comes_from_the_response(model: OpenAIImageGeneration) -> None:
    [[result]] = model.generate(["a red fox"], output_format="jpeg")

    assert result["format"] == "jpeg"
    assert detect_format(decode_bytes(result["images"][0])) == "jpeg"


def photo(image_format: str) -> bytes:
    """A noisy 32x32 image: what a lossy format would visibly change if it re-encoded it."""
    import io
    import random

    from PIL import Image

    pixels = Image.frombytes("RGB", (32, 32), random.Random(0).randbytes(32 * 32 * 3))
    buffer = io.BytesIO()
    pixels.save(buffer, format=image_format.upper(), quality=70)
    return buffer.getvalue()


def test_b64_images_pass_through_as_sent_in_their_real_format(
    model: OpenAIImageGeneration, api: Any
) -> None:
    sent_b64 = encode_bytes(photo("jpeg"))
    # The response claims png: the bytes say jpeg, and the bytes are what the user gets.
    reply = {"created": 0, "output_format": "png", "data": [{"b64_json": sent_b64}]}
    api.server.script(Reply.json(reply))
    [[result]] = model.generate(["a red fox"])
    assert result["images"] == [sent_b64]
    assert result["format"] == "jpeg"


def test_downloaded_images_pass_through_as_sent_in_their_real_format(
    model: OpenAIImageGeneration, api: Any
) -> None:
    webp = photo("webp")
    api.server.route("GET", "/images/photo", lambda request: Reply(body=webp))
    reply = {"created": 0, "data": [{"url": api.server.url + "/images/photo"}]}
    api.server.script(Reply.json(reply))
    [[result]] = model.generate(["a red fox"], response_format="url")
    assert [decode_bytes(b64) for b64 in result["images"]] == [webp]
    assert result["format"] == "webp"


def test_a_format_the_bytes_do_not_tell_comes_from_the_response(
    model: OpenAIImageGeneration, api: Any
) -> None:
    svg = encode_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    reply = {"created": 0, "output_format": "svg", "data": [{"b64_json": svg}]}
    api.server.script(Reply.json(reply))
    [[result]] = model.generate(["a red fox"], output_format="svg")
    assert result == {"images": [svg], "format": "svg", "revised_prompts": [None]}


def test_url_mode_downloads_each_image(model: OpenAIImageGeneration, api: Any) -> None:
    [[result]] = model.generate(["a red fox"], num_generations=2, response_format="url")

    assert api.bodies()[0]["response_format"] == "url"
    assert sorted(r.path for r in api.downloads) == ["/images/0.png", "/images/1.png"]
    assert [decode_bytes(b64) for b64 in result["images"]] == list(api.served.values())
    assert result["format"] == "png"  # detected from the bytes: the response names none
    assert result["revised_prompts"] == ["revised: a red fox"] * 2


def test_dall_e_2_urls_are_downloaded_by_default(make_model: MakeModel, api: Any) -> None:
    [[result]] = make_model(model="dall-e-2").generate(["a red fox"], num_generations=2)

    assert api.bodies() == [{"model": "dall-e-2", "prompt": "a red fox", "n": 2}]
    assert len(api.downloads) == 2
    assert [decode_bytes(b64) for b64 in result["images"]] == list(api.served.values())


def test_dall_e_3_fans_out_single_image_requests(make_model: MakeModel, api: Any) -> None:
    [[result]] = make_model(model="dall-e-3").generate(
        ["a red fox"], num_generations=3, quality="hd", style="natural"
    )

    expected = {"model": "dall-e-3", "prompt": "a red fox", "n": 1}
    assert api.bodies() == [{**expected, "quality": "hd", "style": "natural"}] * 3
    assert len(api.downloads) == 3
    assert len(set(result["images"])) == 3
    assert result["revised_prompts"] == ["revised: a red fox"] * 3
    assert result["format"] == "png"


def test_dall_e_3_retries_only_the_failed_image(make_model: MakeModel, api: Any) -> None:
    api.server.script(api_error(500, "server_error", "boom"))

    [[result]] = make_model(model="dall-e-3", max_retries=1).generate(
        ["a red fox"], num_generations=3, response_format="b64_json"
    )

    assert len(api.generations) == 4  # three requests, and one retry of the one that failed
    assert len(set(result["images"])) == 3
    assert result["revised_prompts"] == ["revised: a red fox"] * 3


def test_dall_e_3_images_share_the_concurrency_limit(make_model: MakeModel, api: Any) -> None:
    api.server.script(Delay(0.2), Delay(0.2), Delay(0.2))

    start = time.perf_counter()
    make_model(model="dall-e-3", max_concurrency=1).generate(
        ["a red fox"], num_generations=3, response_format="b64_json"
    )

    assert time.perf_counter() - start >= 0.6  # one request at a time


# -- faults and retries ------------------------------------------------------------------


def test_429_waits_for_retry_after(model: OpenAIImageGeneration, api: Any) -> None:
    api.server.script(api_error(429, "rate_limit_exceeded", "slow down", **{"Retry-After": "0.3"}))

    start = time.perf_counter()
    [[result]] = model.generate(["a red fox"])

    assert time.perf_counter() - start >= 0.3
    assert len(api.generations) == 2
    assert len(result["images"]) == 1


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400", "-3"])
def test_a_retry_after_that_is_no_wait_falls_back_to_the_backoff(
    model: OpenAIImageGeneration, api: Any, value: str
) -> None:
    api.server.script(api_error(429, "rate_limit_exceeded", "slow down", **{"Retry-After": value}))

    start = time.monotonic()
    [[result]] = model.generate(["a red fox"])

    assert time.monotonic() - start < 5  # it used to sleep forever on "inf"
    assert len(api.generations) == 2
    assert len(result["images"]) == 1


def test_a_retry_after_beyond_max_retry_after_ends_the_attempts(
    make_model: MakeModel, api: Any
) -> None:
    api.server.script(api_error(429, "rate_limit_exceeded", "slow down", **{"Retry-After": "90"}))

    with pytest.raises(GenerationError) as raised:
        make_model(max_retries=3).generate(["a red fox"])

    assert len(api.generations) == 1
    error = only_error(raised)
    assert isinstance(error, RetryAfterTooLongError)
    assert "wait 90 s" in str(error) and "max_retry_after=60" in str(error)
    assert "slow down" in str(error)


def test_exhausted_quota_is_not_retried(model: OpenAIImageGeneration, api: Any) -> None:
    api.server.script(api_error(429, "insufficient_quota", "You exceeded your current quota."))

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    assert len(api.generations) == 1
    assert "insufficient_quota" in str(only_error(raised))


def test_500_then_success_is_retried(model: OpenAIImageGeneration, api: Any) -> None:
    api.server.script(api_error(500, "server_error", "boom"))

    [[result]] = model.generate(["a red fox"])

    assert len(api.generations) == 2
    assert len(result["images"]) == 1


def test_500_forever_stops_after_max_retries(model: OpenAIImageGeneration, api: Any) -> None:
    failure = api_error(500, "server_error", "The server had an error", **{"x-request-id": "r1"})
    api.server.script(*[failure] * 5)

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    assert len(api.generations) == 3  # 1 + max_retries=2
    error = only_error(raised)
    assert isinstance(error, OpenAIRequestError)
    assert (error.status_code, error.code, error.request_id) == (500, "server_error", "r1")
    assert "500 server_error" in str(error) and "The server had an error" in str(error)


def test_content_policy_refusal_fails_at_once_with_the_api_message(
    model: OpenAIImageGeneration, api: Any
) -> None:
    with pytest.raises(GenerationError) as raised:
        model.generate([f"a {api.refused_word} thing"])

    assert len(api.generations) == 1
    error = only_error(raised)
    assert isinstance(error, OpenAIRequestError)
    assert (error.status_code, error.code) == (400, "content_policy_violation")
    assert str(error) == (
        "OpenAI rejected the request (400 content_policy_violation): "
        "Your request was rejected by the safety system."
    )
    assert "content_policy_violation" in str(raised.value)


@pytest.mark.parametrize("status", [403, 404, 422])
def test_other_client_errors_fail_at_once(
    model: OpenAIImageGeneration, api: Any, status: int
) -> None:
    api.server.script(api_error(status, "nope", "Not for you."))

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    assert len(api.generations) == 1
    assert str(only_error(raised)) == f"OpenAI rejected the request ({status} nope): Not for you."


def test_401_names_the_fix_and_never_the_key(
    model: OpenAIImageGeneration, api: Any, api_key: str
) -> None:
    # The server echoes the key, as some proxies do; the error must not.
    api.server.script(api_error(401, "invalid_api_key", f"Incorrect API key provided: {api_key}"))

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    assert len(api.generations) == 1
    assert str(only_error(raised)) == (
        "OpenAI rejected the API key (401 invalid_api_key): Incorrect API key provided: ***. "
        "Check the api_key field or the OPENAI_API_KEY environment variable."
    )
    assert api_key not in str(raised.value)


def test_a_refused_request_chains_nothing_that_holds_the_key(
    model: OpenAIImageGeneration, api: Any, api_key: str
) -> None:
    api.server.script(api_error(401, "invalid_api_key", f"Incorrect API key provided: {api_key}"))

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    error = only_error(raised)
    # The SDK's error, whose text quotes the key, used to stay reachable as __context__.
    assert error.__context__ is None and error.__cause__ is None
    assert api_key not in exception_text(raised.value)


@pytest.mark.parametrize(
    ("reply", "content_type"),
    [
        (
            Reply(
                body=b"<html><body>Sign in to the Wi-Fi</body></html>",
                headers={"Content-Type": "text/html"},
            ),
            "text/html",
        ),
        (
            Reply(
                body=b'{"created": 1, "data": [{"b64_json": "iVBO',
                headers={"Content-Type": "application/json"},
            ),
            "application/json",
        ),
        (Reply.json({"data": "no list"}), "application/json"),
        (Reply.json([1, 2]), "application/json"),
        # The SDK builds replies unchecked: this used to be blamed on the caller
        # (InvalidInputError, exit code 2).
        (Reply.json({"data": [{"b64_json": 5}]}), "application/json"),
    ],
    ids=["html page", "cut-off json", "data not a list", "json list", "b64_json not a string"],
)
def test_a_reply_that_is_no_images_api_response_is_named_as_such(
    model: OpenAIImageGeneration, api: Any, reply: Reply, content_type: str
) -> None:
    api.server.script(reply)

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    error = only_error(raised)
    assert isinstance(error, UnexpectedResponseError)
    message = str(error)
    assert "/v1/images/generations answered 200" in message
    assert content_type in message
    assert "not an Images API response" in message
    assert len(api.generations) == 1  # not retried


def test_slow_answer_times_out_and_is_retried(make_model: MakeModel, api: Any) -> None:
    api.server.script(Delay(5.0))

    start = time.perf_counter()
    [[result]] = make_model(timeout=0.5).generate(["a red fox"])

    assert 0.5 <= time.perf_counter() - start < 5.0
    assert len(api.generations) == 2
    assert len(result["images"]) == 1


def test_reset_connection_is_retried(model: OpenAIImageGeneration, api: Any) -> None:
    api.server.script(Reset())

    [[result]] = model.generate(["a red fox"])

    assert len(api.generations) == 2
    assert len(result["images"]) == 1


def test_failed_download_is_retried(model: OpenAIImageGeneration, api: Any) -> None:
    api.server.script(Reply(status=503), path="/images/0.png")

    [[result]] = model.generate(["a red fox"], response_format="url")

    assert len(api.generations) == 2
    assert [r.path for r in api.downloads] == ["/images/0.png", "/images/1.png"]
    assert decode_bytes(result["images"][0]) == api.served[api.server.url + "/images/1.png"]


def test_missing_download_fails_at_once(model: OpenAIImageGeneration, api: Any) -> None:
    api.server.script(Reply(status=404), path="/images/0.png")

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"], response_format="url")

    assert len(api.generations) == 1
    assert "404" in str(only_error(raised))


def test_a_failed_download_names_the_url_without_its_query_and_chains_nothing(
    model: OpenAIImageGeneration, api: Any
) -> None:
    signature = "sig=secret-signature-0123"
    url = api.server.url + f"/images/gone.png?{signature}"
    api.server.script(Reply.json({"created": 0, "data": [{"url": url}]}))

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"], response_format="url")

    error = only_error(raised)
    assert isinstance(error, RequestRefusedError) and error.status_code == 404
    assert str(error) == (
        "Downloading an image OpenAI sent as a URL failed: "
        f"{api.server.url}/images/gone.png answered 404 Not Found."
    )
    assert error.__cause__ is None and error.__context__ is None
    assert signature not in exception_text(raised.value)


def test_a_long_error_message_is_cut_short_and_the_key_masked_even_at_the_cut(
    model: OpenAIImageGeneration, api: Any, api_key: str
) -> None:
    # The key straddles the point where the message is cut.
    message = "x" * 390 + api_key + "y" * 100_000
    api.server.script(api_error(400, "invalid_request", message))

    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    error = str(only_error(raised))
    assert len(error) < 500
    assert error.startswith("OpenAI rejected the request (400 invalid_request): xxx")
    assert api_key[:4] not in error
    assert len(str(raised.value)) < 800


# -- input validation and credentials ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"quality": "ultra"}, "quality"),
        ({"output_compression": 101}, "output_compression"),
        ({"output_compression": -1}, "output_compression"),
        ({"size": "big"}, "size"),
        ({"style": "dramatic"}, "style"),
        ({"response_format": "png"}, "response_format"),
        ({"qualty": "low"}, "Did you mean 'quality'"),
    ],
)
def test_bad_kwargs_are_rejected_before_any_request(
    model: OpenAIImageGeneration, api: Any, kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        model.generate(["a red fox"], **kwargs)

    assert api.server.requests == []


@pytest.mark.parametrize("fields", [{}, {"api_key": ""}])
def test_missing_key_fails_before_any_request(api: Any, fields: dict[str, Any]) -> None:
    model = OpenAIImageGeneration(base_url=api.base_url, **fields)

    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        model.load()
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        model.generate(["a red fox"])

    assert not model.is_loaded
    assert api.server.requests == []


def test_key_and_base_url_come_from_the_environment(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)

    with OpenAIImageGeneration() as model:
        model.generate(["a red fox"])

    assert model.base_url == api.base_url
    assert api.generations[0].headers["authorization"] == "Bearer sk-from-env"


def test_a_stored_key_is_used_when_the_environment_has_none(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgen.keys import set_key

    set_key("openai", "sk-stored")  # what `imgen keys set openai` does

    with OpenAIImageGeneration(base_url=api.base_url) as model:
        model.generate(["a red fox"])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")  # the environment comes first
    with OpenAIImageGeneration(base_url=api.base_url) as model:
        model.generate(["a red fox"])

    sent = [request.headers["authorization"] for request in api.generations]
    assert sent == ["Bearer sk-stored", "Bearer sk-from-env"]
    assert "sk-stored" not in repr(model) + json.dumps(model.dump())


def test_imgen_keys_set_then_generate_sends_the_stored_key(
    api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from imgen.cli import main

    def cli(*args: str, input: str | None = None) -> str:
        result = CliRunner().invoke(main, list(args), input=input)
        assert result.exit_code == 0, result.output
        return result.output

    cli("keys", "set", "openai", input="sk-stored-by-cli\n")  # stdin, not a terminal
    monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
    generate = ("generate", "openai:gpt-image-1", "a red fox", "-o", str(tmp_path), "--json")
    shown = cli(*generate)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")  # the environment comes first
    shown += cli(*generate) + cli("logs", "--json") + cli("keys", "list")

    sent = [request.headers["authorization"] for request in api.generations]
    assert sent == ["Bearer sk-stored-by-cli", "Bearer sk-from-env"]
    assert "sk-stored-by-cli" not in shown


def test_key_never_leaks(
    make_model: MakeModel,
    api: Any,
    api_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = make_model(max_retries=1)
    api.server.script(*[api_error(500, "server_error", f"bad key {api_key}")] * 2)

    with caplog.at_level(logging.WARNING), pytest.raises(GenerationError) as raised:
        model.generate(["a red fox"])

    shown = [
        json.dumps(model.dump()),
        repr(model),
        str(model),
        model.save(tmp_path / "model.json").read_text(),
        model.save(tmp_path / "model.yaml").read_text(),
        str(raised.value),
        "".join(traceback.format_exception(only_error(raised))),
        caplog.text,
    ]
    assert "Retry 1/1" in caplog.text  # the retry was logged, with the masked message
    assert "***" in str(only_error(raised))
    for text in shown:
        assert api_key not in text


def test_a_prompt_no_request_can_carry_is_refused_before_any_request(
    model: OpenAIImageGeneration, api: Any
) -> None:
    with pytest.raises(InvalidInputError, match=r"inputs\[0\] holds a lone surrogate"):
        model.generate(["a \ud800 fox"])
    with pytest.raises(InvalidInputError, match="user holds a lone surrogate"):
        model.generate(["a fox"], user="id-\udfff")

    assert api.server.requests == []


# -- resolution by name ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "model_id"),
    [
        ("openai:gpt-image-1", "gpt-image-1"),
        ("openai:gpt-image-1.5", "gpt-image-1.5"),
        ("gpt-image-1", "gpt-image-1"),
        ("dall-e-2", "dall-e-2"),
        ("dall-e-3", "dall-e-3"),
    ],
)
def test_resolves_by_name_and_alias(api: Any, api_key: str, spec: str, model_id: str) -> None:
    with imgen.get_model(spec, api_key=api_key, base_url=api.base_url) as model:
        [[result]] = model.generate(["a red fox"], num_generations=2)

    assert isinstance(model, OpenAIImageGeneration)
    assert model.model == model_id
    assert {body["model"] for body in api.bodies()} == {model_id}
    assert len(result["images"]) == 2


# -- batches, event loops, lifecycle -------------------------------------------------------


def test_record_keeps_the_other_inputs(make_model: MakeModel, api: Any) -> None:
    model = make_model(on_error="record")

    outputs = model.generate(["a red fox", f"a {api.refused_word} thing", "a grey owl"])

    assert [len(output[0]["images"]) for output in outputs] == [1, 0, 1]
    assert outputs[1][0]["error"].startswith("OpenAIRequestError: OpenAI rejected the request")
    assert "content_policy_violation" in outputs[1][0]["error"]


def test_raise_keeps_the_completed_results(model: OpenAIImageGeneration, api: Any) -> None:
    with pytest.raises(GenerationError) as raised:
        model.generate(["a red fox", f"a {api.refused_word} thing"])

    assert raised.value.results[1] is None
    assert raised.value.results[0][0]["revised_prompts"] == ["revised: a red fox"]


@pytest.mark.asyncio
async def test_awaitable_from_the_callers_loop(model: OpenAIImageGeneration) -> None:
    outputs = await model.agenerate_outputs(["a red fox", "a grey owl"], num_generations=2)

    assert [len(output[0]["images"]) for output in outputs] == [2, 2]


def test_works_across_separate_event_loops(model: OpenAIImageGeneration) -> None:
    # An SDK client is bound to the loop it first ran on; the model keeps it on its own loop.
    for _ in range(2):
        outputs = asyncio.run(model.agenerate_outputs(["a red fox"]))
        assert len(outputs[0][0]["images"]) == 1


def test_unload_then_generate_loads_again(model: OpenAIImageGeneration, api: Any) -> None:
    model.generate(["a red fox"])
    model.unload()
    assert not model.is_loaded

    model.generate(["a grey owl"])

    assert model.is_loaded
    assert [body["prompt"] for body in api.bodies()] == ["a red fox", "a grey owl"]


def test_dropping_a_used_model_without_unload_is_silent() -> None:
    # The SDK's client closes itself from its finaliser on whichever loop is running then; it
    # used to find its connections on the model's closed loop and print "Task exception was
    # never retrieved ... Event loop is closed".
    script = (
        "import asyncio, gc, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from conftest import FakeImagesAPI\n"
        "from imgen.testing import LocalServer\n"
        "import imgen\n"
        "with LocalServer() as server:\n"
        "    api = FakeImagesAPI(server)\n"
        "    def make():\n"
        "        return imgen.get_model('gpt-image-1', api_key='sk-x', base_url=api.base_url)\n"
        "    m = make(); m.generate(['a', 'b'])\n"
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


def test_model_module_imports_no_sdk() -> None:
    probe = (
        "import json, sys, imgen_openai.model, imgen_openai.plugin\n"
        "print(json.dumps([m for m in ('openai', 'httpx2', 'PIL') if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
