"""Retry-After the engine will not obey: non-finite, negative, or longer than max_retry_after."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from core_backends import ProbeModel
from imgen.errors import GenerationError, InvalidInputError, RetryableError, RetryAfterTooLongError
from imgen.retry import RetryPolicy, retry_after_of


def refused_with(header: str, value: str) -> Exception:
    """An error carrying a response with one header, as SDK errors carry theirs."""
    error = Exception("HTTP 429")
    error.response = SimpleNamespace(status_code=429, headers={header: value})  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf", "1e400", "nan", "NaN", "-5"])
@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
def test_non_finite_and_negative_retry_after_are_ignored(header: str, value: str) -> None:
    assert retry_after_of(refused_with(header, value)) is None


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 10**400])
def test_non_finite_retry_after_attributes_are_ignored(value: float) -> None:
    assert retry_after_of(RetryableError("busy", retry_after=value)) is None


def test_an_infinite_retry_after_falls_back_to_the_backoff() -> None:
    # It used to log "Retry 1/1 in infs" and sleep forever.
    model = ProbeModel(script={"busy": ["wait:inf"]}, max_retries=1)
    start = time.monotonic()
    [[output]] = model.generate(["busy"])
    assert time.monotonic() - start < 5
    assert model._attempts["busy"] == 2
    assert len(output["images"]) == 1


def test_a_retry_after_beyond_max_retry_after_ends_the_attempts() -> None:
    model = ProbeModel(script={"busy": ["wait:86400"]}, max_retries=3)
    assert model.max_retry_after == 60
    start = time.monotonic()
    with pytest.raises(GenerationError) as raised:
        model.generate(["busy"])
    assert time.monotonic() - start < 5
    assert model._attempts["busy"] == 1
    error = raised.value.errors[0]
    assert isinstance(error, RetryAfterTooLongError)
    assert (error.retry_after, error.max_retry_after) == (86400, 60)
    assert "wait 86400 s" in str(error) and "max_retry_after=60" in str(error)
    assert isinstance(error.__cause__, RetryableError)  # what the service answered


def test_max_retry_after_is_a_runtime_parameter() -> None:
    model = ProbeModel(script={"busy": ["wait:0.2"]})
    model.set_runtime_parameters({"max_retry_after": 0.1})
    with pytest.raises(GenerationError, match="RetryAfterTooLongError"):
        model.generate(["busy"])

    patient = ProbeModel(script={"busy": ["wait:0.2"]}, max_retry_after=1)
    [[output]] = patient.generate(["busy"])
    assert patient._attempts["busy"] == 2
    assert len(output["images"]) == 1
    assert any(i["name"] == "max_retry_after" for i in patient.get_runtime_parameters_info())


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), None])
def test_max_retry_after_must_be_a_finite_wait(value: float | None) -> None:
    with pytest.raises(InvalidInputError, match="max_retry_after="):
        ProbeModel(max_retry_after=value)


def test_policy_honours_a_retry_after_within_the_limit() -> None:
    policy = RetryPolicy(max_retries=3, max_retry_after=10)
    assert policy.delay(0, RetryableError("busy", retry_after=10)) == 10
    with pytest.raises(RetryAfterTooLongError):
        policy.delay(0, RetryableError("busy", retry_after=10.5))
