"""The async engine: bounded concurrency, retries, Retry-After, fan-out, partial results."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest

from core_backends import Fatal, ProbeModel
from imgen.errors import GenerationError, RetryableError
from imgen.outputs import merge_outputs
from imgen.retry import RetryPolicy, is_transient, retry_after_of


def test_in_flight_calls_never_exceed_max_concurrency() -> None:
    model = ProbeModel(delay=0.005, max_concurrency=7)
    outputs = model.generate([f"prompt {i}" for i in range(200)])
    assert len(outputs) == 200
    assert model._peak == 7  # reached, never passed


def test_outputs_stay_in_input_order_whatever_finishes_first() -> None:
    model = ProbeModel(max_concurrency=16)
    prompts = [f"p{i}" for i in range(50)]
    outputs = model.generate(prompts)
    expected = [ProbeModel().generate([p])[0][0]["images"] for p in prompts]
    assert [o[0]["images"] for o in outputs] == expected


def test_transient_failures_are_retried_until_success() -> None:
    model = ProbeModel(script={"flaky": ["transient", "transient"]}, max_retries=3)
    outputs = model.generate(["flaky", "steady"])
    assert len(outputs[0][0]["images"]) == 1
    assert model._attempts == {"flaky": 3, "steady": 1}


def test_attempts_never_exceed_one_plus_max_retries() -> None:
    model = ProbeModel(script={"doomed": ["transient"] * 10}, max_retries=2)
    with pytest.raises(GenerationError) as caught:
        model.generate(["doomed"])
    assert model._attempts["doomed"] == 3
    assert isinstance(caught.value.errors[0], RetryableError)


def test_non_retryable_errors_fail_at_once() -> None:
    model = ProbeModel(script={"bad": ["fatal", "fatal"]}, max_retries=5)
    with pytest.raises(GenerationError) as caught:
        model.generate(["bad"])
    assert model._attempts["bad"] == 1
    assert isinstance(caught.value.errors[0], Fatal)


def test_retry_after_is_honoured() -> None:
    model = ProbeModel(script={"slow down": ["wait:0.3"]})
    start = time.perf_counter()
    model.generate(["slow down"])
    assert time.perf_counter() - start >= 0.3
    assert model._attempts["slow down"] == 2


def test_timeout_bounds_each_attempt_and_is_retried() -> None:
    class SlowThenFast(ProbeModel):
        async def agenerate(
            self, input: str, num_generations: int = 1, tag: str = "", count: int = 0
        ) -> list[dict[str, Any]]:
            """Sleep on the first attempt only.

            Args:
                input: The prompt.
                num_generations: Images to make.
                tag: Unused.
                count: Unused.
            """
            self.delay = 5.0 if not self._attempts[input] else 0.0
            return await super().agenerate(input, num_generations, tag, count)

    model = SlowThenFast(timeout=0.1)
    start = time.perf_counter()
    model.generate(["x"])
    assert time.perf_counter() - start < 2
    assert model._attempts["x"] == 2


def test_generation_error_keeps_completed_results() -> None:
    model = ProbeModel(script={"b": ["fatal"]})
    with pytest.raises(GenerationError) as caught:
        model.generate(["a", "b", "c"], num_generations=2)
    error = caught.value
    assert error.results[1] is None
    assert [len(r[0]["images"]) for r in (error.results[0], error.results[2])] == [2, 2]
    assert set(error.errors) == {1}
    assert "1 of 3 inputs failed" in str(error)


def test_record_mode_returns_error_records_in_place() -> None:
    model = ProbeModel(script={"b": ["fatal"]}, on_error="record")
    outputs = model.generate(["a", "b", "c"])
    assert outputs[1] == [{"images": [], "error": "Fatal: fatal failure for b"}]
    assert len(outputs[0][0]["images"]) == len(outputs[2][0]["images"]) == 1


class FanOutProbe(ProbeModel):
    _num_generations_param_supported: ClassVar[bool] = False


def test_fan_out_makes_single_calls_and_merges_them() -> None:
    model = FanOutProbe()
    outputs = model.generate(["a", "b"], num_generations=3, tag="t")
    assert [n for _, n, _ in model._calls] == [1] * 6
    merged = outputs[0][0]
    assert len(merged["images"]) == 3
    assert merged["tag"] == "t"  # equal scalars stay scalars
    assert merged["seeds"] == [0, 0, 0]  # lists concatenate


def test_fan_out_failure_fails_that_input_only() -> None:
    model = FanOutProbe(script={"b": ["fatal"]}, on_error="record")
    outputs = model.generate(["a", "b"], num_generations=2)
    assert len(outputs[0][0]["images"]) == 2
    assert outputs[1][0]["error"].startswith("Fatal")


def test_contract_violation_by_a_backend_is_reported() -> None:
    class Short(ProbeModel):
        async def agenerate(
            self, input: str, num_generations: int = 1, tag: str = "", count: int = 0
        ) -> list[dict[str, Any]]:
            """Return one image too few.

            Args:
                input: The prompt.
                num_generations: Images asked.
                tag: Unused.
                count: Unused.
            """
            out = await super().agenerate(input, num_generations, tag, count)
            out[0]["images"].pop()
            return out

    with pytest.raises(GenerationError, match="returned 1 images where num_generations=2"):
        Short().generate(["x"], num_generations=2)


def test_merge_outputs_keeps_differing_scalars_as_a_list() -> None:
    merged = merge_outputs([[{"images": ["a"], "x": 1}], [{"images": ["b"], "x": 2}]])
    assert merged == [{"images": ["a", "b"], "x": [1, 2]}]


class _Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class _HTTPError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, headers or {})


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (_HTTPError(429), True),
        (_HTTPError(408), True),
        (_HTTPError(409), True),
        (_HTTPError(503), True),
        (_HTTPError(400), False),
        (_HTTPError(401), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (ValueError("nope"), False),
    ],
)
def test_default_retry_classification(exc: BaseException, retryable: bool) -> None:
    assert is_transient(exc) is retryable


def test_retry_after_header_forms() -> None:
    assert retry_after_of(_HTTPError(429, {"retry-after": "7"})) == 7.0
    assert retry_after_of(_HTTPError(429, {"retry-after-ms": "250"})) == 0.25
    assert retry_after_of(_HTTPError(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_of(_HTTPError(429, {"retry-after": "soon"})) is None
    assert retry_after_of(RetryableError("x", retry_after=1.5)) == 1.5


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(max_retries=10, initial_delay=1.0, max_delay=8.0)
    error = RuntimeError("x")
    for retry, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [policy.delay(retry, error) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


class SeededFanOut(FanOutProbe):
    def fan_out_kwargs(self, kwargs: dict[str, Any], index: int) -> dict[str, Any]:
        return {**kwargs, "count": kwargs.get("count", 0) + index}


def test_fan_out_kwargs_vary_each_single_call_and_retry_it_alone() -> None:
    model = SeededFanOut(script={"a": ["transient"]})
    model.generate(["a"], num_generations=3, count=10)
    counts = sorted(extra["count"] for _, _, extra in model._calls)
    # One of the three calls failed once and was retried with its own kwargs.
    assert counts in ([10, 10, 11, 12], [10, 11, 11, 12], [10, 11, 12, 12])
    assert model._attempts["a"] == 4
