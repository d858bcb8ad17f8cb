"""The async batch engine: bounded concurrency, retries, fan-out and partial results.

`AsyncImageGenerationModel.agenerate_outputs` hands a validated batch to `run_batch`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from imgen.errors import GenerationError
from imgen.outputs import Output, check_output, failure_record, merge_outputs
from imgen.retry import RetryPolicy

__all__ = ["run_batch"]

# call(position, n, index): one attempt at n images for inputs[position]; index is the first
# image's position among the prompt's num_generations (0 unless the batch fans out).
Call = Callable[[int, int, int], Awaitable[Any]]


async def run_batch(
    call: Call,
    inputs: Sequence[str],
    num_generations: int,
    *,
    fan_out: bool,
    max_concurrency: int,
    timeout: float | None,
    policy: RetryPolicy,
    is_retryable: Callable[[BaseException], bool],
    on_error: Literal["raise", "record"],
    logger: logging.Logger,
) -> list[Output]:
    """Generate for every input, at most `max_concurrency` calls in flight.

    Args:
        call: Makes one attempt: `call(position, n, index)` returns the output of
            `inputs[position]` for `n` images, starting at image `index` of the prompt.
        inputs: The prompts.
        num_generations: Images per prompt.
        fan_out: Make `num_generations` calls of one image each and merge them.
        max_concurrency: Calls in flight at once; a call waiting out a backoff holds no slot.
        timeout: Seconds per attempt, or None.
        policy: Backoff and retry count.
        is_retryable: Which failures are worth another attempt.
        on_error: "raise" raises `GenerationError` holding the completed results; "record"
            returns an error record in place of each failed input.
        logger: Receives a line per retry.

    Returns:
        One output per input, in input order.
    """
    slots = asyncio.Semaphore(max_concurrency)

    async def attempt(position: int, n: int, index: int = 0) -> Any:
        retry = 0
        while True:
            async with slots:
                try:
                    async with asyncio.timeout(timeout):
                        return await call(position, n, index)
                except Exception as exc:
                    error = exc
            if retry >= policy.max_retries or not is_retryable(error):
                raise error
            wait = policy.delay(retry, error)
            retry += 1
            logger.warning(
                "Retry %d/%d in %.2fs after %s: %s",
                retry,
                policy.max_retries,
                wait,
                type(error).__name__,
                error,
            )
            await asyncio.sleep(wait)

    async def fan_out_one(position: int) -> Output:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(attempt(position, 1, k)) for k in range(num_generations)]
        return merge_outputs([check_output(t.result(), 1) for t in tasks])

    results: list[Output | None] = [None] * len(inputs)
    errors: dict[int, BaseException] = {}
    split = fan_out and num_generations > 1

    async def settle(index: int) -> None:
        try:
            if split:
                results[index] = await fan_out_one(index)
            else:
                results[index] = check_output(
                    await attempt(index, num_generations), num_generations
                )
        except Exception as exc:
            # A TaskGroup wraps failures; report the first real one.
            while isinstance(exc, ExceptionGroup):
                exc = exc.exceptions[0]
            errors[index] = exc

    await asyncio.gather(*(settle(i) for i in range(len(inputs))))
    if errors and on_error == "raise":
        raise GenerationError(results, errors)
    return [r if r is not None else failure_record(errors[i]) for i, r in enumerate(results)]
